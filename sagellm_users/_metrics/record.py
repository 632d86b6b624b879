"""One :class:`RequestRecord` per request: raw timestamps first, metrics derived from them.

Raw ``perf_counter()`` readings are kept so anyone can recompute every metric; the derived
values follow the definitions in docs/metrics.md exactly. ``t_out`` holds the decode steps:
every chunk that is one step of the request, empty ones included (vLLM sends one chunk per
step; an empty one is held-back text, of the first token too, or the EOS token), so on vLLM
``len(t_out) == N_out``:

* TTFT = first decode step - t_send
* TTST = second decode step - t_send (a server that sends its first token early and then
  stalls, or sends the role chunk's token ahead, shows here)
* ITL  = every gap between consecutive decode steps (one sample per gap)
* TBT  = mean of the request's ITL samples
* E2E  = last decode step (the ``finish_reason`` chunk included) - t_send; the stream's
  close is ``t_done``, kept apart
* TPOT = (E2E - TTFT) / (N_out - 1), only when N_out > 1

A reasoning model's first steps are its reasoning: ``reasoning_steps`` counts them and
``first_answer_step`` is the index of the answer's first step, so TTFO (time to first
output token of the answer) = that step - t_send, and the reasoning and the answer each have
their own ITL.

And before the first token, the HTTP phases (:data:`PHASES`): a new connection's TCP
connect and TLS handshake (before ``t_send``), then writing the request, waiting for the
response's headers, and from the headers to the body's first bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sagellm_users._backends.base import HttpTimes

__all__ = ["PHASES", "RequestRecord", "Status", "TokenSource"]

Status = Literal["ok", "error", "cancelled"]
TokenSource = Literal["usage", "tokenizer", "estimate", "none"]

PHASES = ("connect", "tls", "send", "wait", "first_byte")
"""The HTTP phases of a request, in order: each a :class:`RequestRecord` property
``<name>_phase`` in seconds (None where it did not happen)."""

_CHARS_PER_TOKEN = 4.0
"""Rough English average, used only when neither the server nor a tokenizer gives counts."""


@dataclass(slots=True)
class RequestRecord:
    """Everything measured about one request, in seconds of ``perf_counter()``."""

    request_id: int
    user: str
    backend: str
    api: str
    name: str
    model: str
    stream: bool
    wall_start: float
    """``time.time()`` when the request began, to line records up with server logs."""
    t_start: float
    """perf_counter() when the user began the request (before any connection setup)."""
    t_send: float | None = None
    connect_s: float | None = None
    """Seconds opening a new connection (TCP connect, and TLS handshake over https);
    None when a pooled one was reused."""
    tls_s: float | None = None
    """Of ``connect_s``, the TLS handshake's."""
    t_sent: float | None = None
    """perf_counter() when the request was all written."""
    t_headers: float | None = None
    """perf_counter() of the read that completed the response's headers."""
    t_body: float | None = None
    """perf_counter() of the first read carrying body bytes."""
    t_out: list[float] = field(default_factory=list)
    """perf_counter() of each decode step (empty ones included), in arrival order."""
    tokens_per_chunk: list[int] | None = None
    """Tokens carried by each decode step, when the server says so."""
    t_done: float | None = None
    prompt_chars: int = 0
    usage_prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None
    usage_reasoning_tokens: int | None = None
    """Of the output tokens, those the server says were reasoning."""
    usage_cached_tokens: int | None = None
    """Of the prompt tokens, those the server says it read from its prefix cache."""
    reasoning_steps: int = 0
    """Decode steps whose output was reasoning (``delta.reasoning``), not the answer."""
    first_answer_step: int | None = None
    """Index in ``t_out`` of the answer's first step; None while (or if) none came."""
    counted_output_tokens: int | None = None
    """The reply's tokens as a local tokenizer counted its text, when the server sent no
    usage (see :attr:`output_tokens`)."""
    finish_reason: str | None = None
    max_tokens: int | None = None
    """The output limit the request asked for (None: the server's default)."""
    min_tokens: int | None = None
    """The output floor the request asked for (None: none)."""
    ignore_eos: bool = False
    """Whether the request asked for exactly ``max_tokens`` (no stop at end of sequence)."""
    status: Status = "ok"
    http_status: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    warmup: bool = False
    """Left out of the report: sent before the measurement window began."""
    response_id: str | None = None
    """The server's id of the response, to line the record up with server logs."""
    start_lag_s: float | None = None
    """How late the request started after the moment it was meant to (the end of the
    user's wait): the client's own scheduling delay. None when not known."""
    intended_wall: float | None = None
    """Open-loop requests: the wall-clock time the arrival schedule meant it to start."""
    prompt_tokens: int | None = None
    """The prompt's tokens as the workload's tokenizer counted them, when it did."""
    session: str | None = None
    """Multi-turn workloads: the conversation this request belongs to."""
    turn: int | None = None
    """Multi-turn workloads: 1 for a conversation's first request, then 2, 3..."""
    prefix_group: int | None = None
    """Shared-prefix workloads: the group whose system prompt leads the request."""
    retry_errors: list[str] = field(default_factory=list)
    """``--retries``: how each earlier attempt failed (``"HTTPStatusError 429"``), in order;
    the timings above are the last attempt's."""
    retry_wait_s: float = 0.0
    """Seconds waited between attempts (Retry-After or back-off)."""
    backoff_s: float = 0.0
    """After connection errors in a row: how long the user waited after this request
    before its next (see _users.connect_backoff)."""

    def take_http_times(self, connect_s: float | None, times: HttpTimes | None) -> None:
        """The connection's setup and the exchange's phases, from a finished stream."""
        self.connect_s = connect_s
        if times is not None:
            self.tls_s, self.t_sent = times.tls_s, times.t_sent
            self.t_headers, self.t_body = times.t_headers, times.t_body

    # -- HTTP phases (seconds; docs/metrics.md) ---------------------------------------------
    @property
    def connect_phase(self) -> float | None:
        """The TCP connect of a new connection (name lookup included)."""
        if self.connect_s is None:
            return None
        return self.connect_s - (self.tls_s or 0.0)

    @property
    def tls_phase(self) -> float | None:
        return self.tls_s

    @property
    def send_phase(self) -> float | None:
        """Writing the request: long when the socket's buffer is full (a large prompt to a
        server that reads it slowly)."""
        if self.t_send is None or self.t_sent is None:
            return None
        return self.t_sent - self.t_send

    @property
    def wait_phase(self) -> float | None:
        """From the request written to its response's headers: the server's queue and,
        for servers that answer once the first token is out, its prefill."""
        if self.t_sent is None or self.t_headers is None:
            return None
        return self.t_headers - self.t_sent

    @property
    def first_byte_phase(self) -> float | None:
        """From the headers to the body's first bytes: vLLM sends its headers as it accepts
        a request, so there this is the queue and the prefill; 0 when both came together."""
        if self.t_headers is None or self.t_body is None:
            return None
        return self.t_body - self.t_headers

    @property
    def retries(self) -> int:
        """Attempts after the first."""
        return len(self.retry_errors)

    # -- token counts with their provenance ------------------------------------------------
    @property
    def output_tokens(self) -> int:
        """The server's usage, else the tokenizer's count of the reply, else the tokens the
        chunks said they carry, else one per decode step (a server that drops chunks whose
        text is empty, as sageLLM's gateway does, is undercounted by the last)."""
        if self.usage_completion_tokens is not None:
            return self.usage_completion_tokens
        if self.counted_output_tokens is not None:
            return self.counted_output_tokens
        if self.tokens_per_chunk is not None:
            return sum(self.tokens_per_chunk)
        return len(self.t_out)

    @property
    def output_tokens_source(self) -> TokenSource:
        if self.usage_completion_tokens is not None:
            return "usage"
        if self.counted_output_tokens is not None:
            return "tokenizer"
        return "estimate" if self.t_out else "none"

    @property
    def input_tokens(self) -> int:
        if self.usage_prompt_tokens is not None:
            return self.usage_prompt_tokens
        if self.prompt_tokens is not None:
            return self.prompt_tokens
        return round(self.prompt_chars / _CHARS_PER_TOKEN)

    @property
    def input_tokens_source(self) -> TokenSource:
        if self.usage_prompt_tokens is not None:
            return "usage"
        return "tokenizer" if self.prompt_tokens is not None else "estimate"

    # -- derived metrics (seconds) ----------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def length_mismatch(self) -> str | None:
        """How a successful answer's length differs from what the request asked, or None:
        ``ignore_eos`` asks for exactly ``max_tokens``, ``min_tokens`` for at least that
        many. A server (or a proxy in front of it) that drops those fields answers shorter."""
        if self.status != "ok":
            return None
        n = self.output_tokens
        source = self.output_tokens_source
        got = f"got {n}" if source in ("usage", "tokenizer") else f"got {n} ({source})"
        if self.ignore_eos and self.max_tokens is not None and n != self.max_tokens:
            return f"asked exactly {self.max_tokens} (ignore_eos), {got}"
        if self.min_tokens is not None and n < self.min_tokens:
            return f"asked at least {self.min_tokens} (min_tokens), {got}"
        return None

    @property
    def stopped_at_limit(self) -> bool:
        """Said ``"stop"`` with exactly ``max_tokens`` out: the limit ended it, or the end
        of sequence fell on the limit's last token (rare, and never with ignore_eos)."""
        return (
            self.finish_reason == "stop"
            and self.max_tokens is not None
            and self.output_tokens == self.max_tokens
        )

    @property
    def ttft(self) -> float | None:
        if self.t_send is None or not self.t_out:
            return None
        return self.t_out[0] - self.t_send

    @property
    def reasoned(self) -> bool:
        """The model reasoned before (or instead of) answering."""
        return self.reasoning_steps > 0 or bool(self.usage_reasoning_tokens)

    @property
    def reasoning_usage_contradicted(self) -> bool:
        """The server's usage says 0 reasoning tokens, yet reasoning streamed: vLLM counts
        only tokens between a ``<think>`` and a ``</think>`` the model generated, so a model
        whose template opens the reasoning in the prompt (DeepSeek R1's) always gets 0."""
        return self.usage_reasoning_tokens == 0 and self.reasoning_steps > 0

    @property
    def reasoning_tokens(self) -> int:
        """The server's count of reasoning tokens; else the tokens the reasoning steps
        carried, when usage came with every chunk (``continuous_usage_stats``); else the
        reasoning steps (one token each, as vLLM streams them unless it falls behind)."""
        usage = self.usage_reasoning_tokens
        if usage is not None and not self.reasoning_usage_contradicted:
            return usage
        counts, k = self.tokens_per_chunk, self.reasoning_steps
        if counts is not None and self.first_answer_step in (None, k) and len(counts) >= k:
            return sum(counts[:k])  # the reasoning is the stream's first k steps
        return k

    @property
    def reasoning_tokens_source(self) -> TokenSource:
        if self.usage_reasoning_tokens is not None and not self.reasoning_usage_contradicted:
            return "usage"
        if self.tokens_per_chunk is not None and self.first_answer_step in (
            None,
            self.reasoning_steps,
        ):
            return "usage" if self.reasoning_steps else "none"
        return "estimate" if self.reasoning_steps else "none"

    @property
    def ttfo(self) -> float | None:
        """Time to the answer's first token, for a request that reasoned first: TTFT is
        then the first reasoning token, and the user waits until this one."""
        k = self.first_answer_step
        if self.t_send is None or k is None or not self.reasoning_steps:
            return None
        return self.t_out[k] - self.t_send

    def _phase_gaps(self, answer: bool) -> list[float]:
        if not self.reasoning_steps:
            return []
        k = self.first_answer_step
        t = self.t_out
        if answer:
            t = [] if k is None else t[k:]
        elif k is not None:
            t = t[:k]
        return [t[i] - t[i - 1] for i in range(1, len(t))]

    @property
    def itl_reasoning(self) -> list[float]:
        """Gaps between the reasoning's steps (requests that reasoned)."""
        return self._phase_gaps(answer=False)

    @property
    def itl_answer(self) -> list[float]:
        """Gaps between the answer's steps, after the reasoning (requests that reasoned;
        the gap from the reasoning to the answer is in neither)."""
        return self._phase_gaps(answer=True)

    @property
    def ttst(self) -> float | None:
        """Time to the second decode step: None with fewer than two."""
        if self.t_send is None or len(self.t_out) < 2:
            return None
        return self.t_out[1] - self.t_send

    @property
    def e2e(self) -> float | None:
        if self.t_send is None or not self.t_out:
            return None
        return self.t_out[-1] - self.t_send

    @property
    def itl(self) -> list[float]:
        t = self.t_out
        return [t[i] - t[i - 1] for i in range(1, len(t))]

    @property
    def itl_per_token(self) -> list[float]:
        """ITL divided by the tokens of the later step, when steps carry k > 1 tokens."""
        counts, t = self.tokens_per_chunk, self.t_out
        if counts is None or len(counts) != len(t):
            return []
        return [(t[i] - t[i - 1]) / counts[i] for i in range(1, len(t)) if counts[i] > 0]

    @property
    def tbt(self) -> float | None:
        t = self.t_out
        if len(t) < 2:
            return None
        return (t[-1] - t[0]) / (len(t) - 1)

    @property
    def tpot(self) -> float | None:
        """None unless output arrived in two or more decode steps: when every token comes
        at once (non-streamed, or one big chunk) no per-token time was observed, and 0
        would read as infinitely fast decoding."""
        n_out = self.output_tokens
        if n_out <= 1 or self.t_send is None or len(self.t_out) < 2:
            return None
        return (self.t_out[-1] - self.t_out[0]) / (n_out - 1)

    @property
    def wall_send(self) -> float:
        """Wall-clock time of the send (of the start, when nothing was sent)."""
        offset = self.t_send - self.t_start if self.t_send is not None else 0.0
        return self.wall_start + offset

    @property
    def wall_done(self) -> float:
        """Wall-clock time the request ended."""
        end = self.t_done if self.t_done is not None else self.t_start
        return self.wall_start + (end - self.t_start)

    @property
    def elapsed(self) -> float:
        """Seconds from the start of the request to its end, whatever the outcome."""
        end = self.t_done if self.t_done is not None else self.t_start
        return end - (self.t_send if self.t_send is not None else self.t_start)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        """Rebuild a record from :meth:`to_json` output (a line of a records file).

        The writer's perf_counter() means nothing in another process, so times are rebuilt
        on the wall clock from ``wall_start`` and the offsets; every difference (TTFT, ITL,
        E2E) is exactly what was measured.
        """

        def seconds(key: str) -> float:
            value = data.get(key)
            return float(value) / 1e3 if value is not None else 0.0

        wall_start = float(data["wall_start"])
        has_send = data.get("t_send") is not None
        t_send = wall_start + seconds("send_delay_ms") if has_send else None
        base = t_send if t_send is not None else wall_start

        def offset(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else base + float(value) / 1e3

        source_in = data.get("input_tokens_source")
        source_out = data.get("output_tokens_source")
        done_ms = data.get("done_ms")
        return cls(
            request_id=int(data["id"]),
            user=str(data["user"]),
            backend=str(data["backend"]),
            api=str(data["api"]),
            name=str(data["name"]),
            model=str(data["model"]),
            stream=bool(data["stream"]),
            wall_start=wall_start,
            t_start=wall_start,
            t_send=t_send,
            connect_s=seconds("connect_ms") if data.get("connect_ms") is not None else None,
            tls_s=seconds("tls_ms") if data.get("tls_ms") is not None else None,
            t_sent=offset("sent_ms"),
            t_headers=offset("headers_ms"),
            t_body=offset("body_ms"),
            t_out=[base + float(ms) / 1e3 for ms in data.get("out_ms") or ()],
            tokens_per_chunk=data.get("tokens_per_chunk"),
            t_done=base + float(done_ms) / 1e3 if done_ms is not None else None,
            usage_prompt_tokens=data.get("input_tokens") if source_in == "usage" else None,
            prompt_tokens=data.get("prompt_tokens"),
            usage_completion_tokens=data.get("output_tokens") if source_out == "usage" else None,
            counted_output_tokens=data.get("output_tokens") if source_out == "tokenizer" else None,
            usage_reasoning_tokens=data.get("usage_reasoning_tokens"),
            usage_cached_tokens=data.get("cached_tokens"),
            reasoning_steps=int(data.get("reasoning_steps") or 0),
            first_answer_step=data.get("first_answer_step"),
            prompt_chars=int(data.get("prompt_chars") or 0),
            finish_reason=data.get("finish_reason"),
            max_tokens=data.get("max_tokens"),
            min_tokens=data.get("min_tokens"),
            ignore_eos=bool(data.get("ignore_eos", False)),
            status=data["status"],
            http_status=data.get("http_status"),
            error_class=data.get("error_class"),
            error_message=data.get("error"),
            warmup=bool(data.get("warmup", False)),
            response_id=data.get("response_id"),
            start_lag_s=seconds("start_lag_ms") if data.get("start_lag_ms") is not None else None,
            intended_wall=data.get("intended_wall"),
            session=data.get("session"),
            turn=data.get("turn"),
            prefix_group=data.get("prefix_group"),
            retry_errors=[str(e) for e in data.get("retry_errors") or ()],
            retry_wait_s=seconds("retry_wait_ms"),
            backoff_s=seconds("backoff_ms"),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSONL form: raw times as milliseconds after t_send, plus derived metrics."""
        base = self.t_send if self.t_send is not None else self.t_start

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1e3, 4)

        return {
            "id": self.request_id,
            "user": self.user,
            "backend": self.backend,
            "api": self.api,
            "name": self.name,
            "model": self.model,
            "stream": self.stream,
            "status": self.status,
            "wall_start": round(self.wall_start, 6),
            "t_send": self.t_send,
            "connect_ms": ms(self.connect_s),
            "tls_ms": ms(self.tls_s),
            "sent_ms": ms(None if self.t_sent is None else self.t_sent - base),
            "headers_ms": ms(None if self.t_headers is None else self.t_headers - base),
            "body_ms": ms(None if self.t_body is None else self.t_body - base),
            "send_delay_ms": ms(None if self.t_send is None else self.t_send - self.t_start),
            "out_ms": [round((t - base) * 1e3, 4) for t in self.t_out],
            "tokens_per_chunk": self.tokens_per_chunk,
            "done_ms": ms(None if self.t_done is None else self.t_done - base),
            "input_tokens": self.input_tokens,
            "input_tokens_source": self.input_tokens_source,
            "prompt_tokens": self.prompt_tokens,
            "prompt_chars": self.prompt_chars,
            "output_tokens": self.output_tokens,
            "output_tokens_source": self.output_tokens_source,
            "reasoning_tokens": self.reasoning_tokens,
            "reasoning_tokens_source": self.reasoning_tokens_source,
            "usage_reasoning_tokens": self.usage_reasoning_tokens,
            "reasoning_steps": self.reasoning_steps,
            "first_answer_step": self.first_answer_step,
            "cached_tokens": self.usage_cached_tokens,
            "finish_reason": self.finish_reason,
            "max_tokens": self.max_tokens,
            "min_tokens": self.min_tokens,
            "ignore_eos": self.ignore_eos,
            "ttft_ms": ms(self.ttft),
            "ttst_ms": ms(self.ttst),
            "ttfo_ms": ms(self.ttfo),
            "tbt_ms": ms(self.tbt),
            "tpot_ms": ms(self.tpot),
            "e2e_ms": ms(self.e2e),
            "http_status": self.http_status,
            "error_class": self.error_class,
            "error": self.error_message,
            "warmup": self.warmup,
            "response_id": self.response_id,
            "start_lag_ms": ms(self.start_lag_s),
            "intended_wall": None if self.intended_wall is None else round(self.intended_wall, 6),
            "session": self.session,
            "turn": self.turn,
            "prefix_group": self.prefix_group,
            "retries": self.retries,
            "retry_errors": self.retry_errors,
            "retry_wait_ms": ms(self.retry_wait_s),
            "backoff_ms": ms(self.backoff_s),
        }
