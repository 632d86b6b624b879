"""Timer-driven generation of one request: the mock's hot path.

A generation is admitted by :class:`~.capacity.Admission`, waits its TTFT, then emits one
token per timer callback. There is no coroutine per token and no sleep loop: each token is
one :meth:`.pacer.Pacer.call_at` (one asyncio timer shared by the process) on an absolute
schedule (first token at ``t_admit + ttft``, every next
deadline is the previous *deadline* plus the gap, never "now" plus the gap), so late
callbacks do not accumulate drift. With ``--tbt-per-running-ms`` each gap also grows with
the number of running sequences, read when the gap is scheduled.

Accuracy: asyncio sleeps in epoll with millisecond granularity rounded up and the pacer
groups deadlines into quarter-millisecond ticks, so an event is written 0-1.25 ms after its
deadline (more under CPU overload); because deadlines are absolute,
this lateness never accumulates and mean gaps stay exact. ``--send-timestamps`` reports the
real send times.

Flow control: a token is one ``write(2)`` on the socket while asyncio's transport holds
nothing unsent (see ``HttpConnection.stream_write``), else it goes through
``transport.write``. When a client stops reading, asyncio buffers what it cannot send; the
buffer is bounded by the rest of that one response (``max_tokens`` events of a few hundred
bytes), so the mock keeps its timing honest instead of stalling every stream on one slow
reader.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

import orjson

from .capacity import Admission
from .faults import Fault
from .metrics import EngineHistograms
from .pacer import Pacer
from .proxy_wire import DONE_CHUNK, PING_CHUNK
from .simulation import TOKEN_TEXT, Plan
from .wire import (
    DONE_AND_END,
    END_OF_BODY,
    TokenEncoder,
    error_body,
    http_chunk,
    simple_response,
)

__all__ = ["BufferedGeneration", "Engine", "Generation", "StreamingGeneration"]

_QUEUED, _RUNNING, _DONE, _PINGING = 0, 1, 2, 3

PING_S = 0.01
"""Seconds between the comment pings of a ``done_pings`` fault: far more often than any
read timeout, so only ending the request at ``[DONE]`` lets a client finish."""

#: vLLM's message for a generation that fails inside the engine.
ENGINE_ERROR_MESSAGE = "Internal server error"

#: Builds a non-streaming body from (text, completion_tokens, t_send).
BodyRenderer = Callable[[str, int, float], bytes]

#: What a ``malformed`` fault sends in place of a token: an event whose JSON stops short.
MALFORMED_EVENT = http_chunk(b'data: {"id":"mock-malformed","choices":[{"index":0,"delta":\n\n')
#: What follows the last token (and usage) when a fault spoils the end of a stream.
_BAD_ENDS = {
    Fault.NO_DONE: END_OF_BODY,
    Fault.NO_USAGE: DONE_AND_END,
    Fault.DONE_NO_END: DONE_CHUNK,
    Fault.DONE_PINGS: DONE_CHUNK,
}
#: A token whose text holds bytes that are not UTF-8 (a JSON string literal, quotes included).
NON_UTF8_WORD = b'" \xff\xfe\xfd"'


@dataclass(frozen=True, slots=True)
class Engine:
    """What every generation of one server process shares: the clock, the capacity, the
    metrics, and how much each running sequence slows every token gap."""

    pacer: Pacer
    admission: Admission
    histograms: EngineHistograms
    per_running_s: float = 0.0
    huge_event_bytes: int = 10_000_000
    """Text length of a ``huge_event`` token."""
    trickle_s: float = 1.0
    """Seconds between the bytes of a trickled body."""


class Generation(Protocol):
    """What a connection needs from the generation it is serving."""

    def cancel(self) -> None: ...


class _Timed:
    """Admission, scheduling and cancellation shared by both response styles."""

    __slots__ = (
        "_admission",
        "_close",
        "_deadline",
        "_done",
        "_engine",
        "_gap",
        "_hist",
        "_index",
        "_pacer",
        "_per_running_s",
        "_plan",
        "_rest",
        "_state",
        "_t_first",
        "_t_received",
        "_write",
    )

    def __init__(
        self,
        *,
        engine: Engine,
        t_received: float,
        plan: Plan,
        write: Callable[[bytes], None],
        done: Callable[[int], None],
        close: Callable[[], None],
    ) -> None:
        # The engine's parts are copied into slots: the per-token path reads them directly.
        self._engine = engine
        self._close = close
        self._rest = b""  # what a trickle has yet to send
        self._pacer = engine.pacer
        self._admission = engine.admission
        self._hist = engine.histograms
        self._per_running_s = engine.per_running_s
        self._t_received = t_received
        self._plan = plan
        self._write = write
        self._done = done
        self._state = _QUEUED
        self._deadline = 0.0
        self._gap = 0.0  # the scheduled gap before the next token: its inter-token latency
        self._index = 0
        self._t_first = 0.0

    @property
    def cancelled(self) -> bool:
        """True once cancelled (or finished): admission skips it in its queue."""
        return self._state == _DONE

    def admit(self) -> None:
        """Called by :class:`Admission` when a slot is ours: start the TTFT clock."""
        self._state = _RUNNING
        self._hist.queue.observe(perf_counter() - self._t_received)
        self._deadline = self._pacer.time() + self._plan.ttft_s
        self._pacer.call_at(self._deadline, self._tick)

    def cancel(self) -> None:
        """The client went away: give the slot back; the pending tick will find us done."""
        if self._state == _DONE:
            return
        if self._state == _RUNNING:
            self._admission.release()
        self._state = _DONE

    def _schedule(self, after_index: int) -> None:
        plan = self._plan
        gaps = plan.gaps_s
        gap = plan.tbt_s if gaps is None else gaps[after_index]
        if self._per_running_s:
            gap += self._per_running_s * self._admission.running
        self._gap = gap
        self._deadline += gap
        self._pacer.call_at(self._deadline, self._tick)

    def _complete(self, status: int) -> None:
        self._state = _DONE
        self._admission.release()
        self._done(status)

    # faults -----------------------------------------------------------------------------

    def _stall(self) -> None:
        """Send nothing more and keep the connection open: the slot is freed (the "engine"
        moved on) but the response never ends, until the client gives up and closes."""
        self._state = _DONE
        self._admission.release()

    def _cut(self, data: bytes) -> None:
        """Send ``data`` and close the connection, the response unfinished."""
        self._write(data)
        self._close()
        self._complete(200)

    def _trickle(self, data: bytes) -> None:
        """Send ``data`` one byte per ``trickle_s``, then end the response."""
        self._rest = data
        self._deadline = self._pacer.time()
        self._trickle_tick()

    def _trickle_tick(self) -> None:
        if self._state != _RUNNING:
            return  # the client left
        rest = self._rest
        self._write(rest[:1])
        self._rest = rest = rest[1:]
        if rest:
            self._deadline += self._engine.trickle_s
            self._pacer.call_at(self._deadline, self._trickle_tick)
            return
        self._finished_ok(self._plan.n_tokens, perf_counter())
        self._complete(200)

    def _finished_ok(self, n_tokens: int, t: float) -> None:
        """Count a response that generated ``n_tokens`` (the last at ``t``) as finished;
        under speculative decoding ``n_tokens`` counts steps, each one or more tokens."""
        self._admission.finished += 1
        tokens = self._plan.tokens_done(n_tokens)
        self._admission.generated_tokens += tokens - n_tokens  # each step counted one
        self._hist.finished(self._t_received, self._t_first or t, t, tokens)

    def _tick(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class StreamingGeneration(_Timed):
    """Writes one SSE event (one HTTP chunk) per token as its deadline passes."""

    __slots__ = ("_enc", "_include_usage", "_sent")

    def __init__(
        self,
        *,
        engine: Engine,
        t_received: float,
        plan: Plan,
        write: Callable[[bytes], None],
        done: Callable[[int], None],
        close: Callable[[], None],
        encoder: TokenEncoder,
        include_usage: bool,
        sent: list[float] | None = None,
    ) -> None:
        super().__init__(
            engine=engine, t_received=t_received, plan=plan, write=write, done=done, close=close
        )
        self._enc = encoder
        self._include_usage = include_usage
        self._sent = sent  # --send-log: perf_counter() just before each output write

    def _tick(self) -> None:
        if self._state != _RUNNING:
            return  # cancelled while this tick was pending
        i = self._index
        plan = self._plan
        n = i + 1
        if 0 < i != plan.error_at and n < plan.n_tokens:
            # The hot path: a mid-stream token. Scheduling is inlined on purpose.
            if self._sent is not None:
                self._sent.append(perf_counter())
            self._write(self._enc.next_token(plan.words[i], n))
            self._hist.itl.observe(self._gap)
            self._admission.generated_tokens += 1
            self._index = n
            gaps = plan.gaps_s
            gap = plan.tbt_s if gaps is None else gaps[i]
            if self._per_running_s:
                gap += self._per_running_s * self._admission.running
            self._gap = gap
            self._deadline += gap
            self._pacer.call_at(self._deadline, self._tick)
            return
        self._edge_tick(i, n)

    def _edge_tick(self, i: int, n: int) -> None:
        """First token (with the role chunk), last token (with usage), or the fault."""
        plan = self._plan
        if i == plan.error_at:
            self._fault(i, n)
            return
        enc = self._enc
        word = plan.words[i]
        if n == plan.n_tokens:
            t = perf_counter()
            data = enc.final_token(word, n, plan.finish_reason, t)
            if i == 0:
                data = enc.preamble(t) + data
                self._t_first = t
            else:
                self._hist.itl.observe(self._gap)
            if self._include_usage:
                data += enc.usage(n, t)
            if self._sent is not None:
                self._sent.append(perf_counter())
            self._write(data + enc.end_of_stream)
            self._admission.generated_tokens += 1
            self._finished_ok(n, t)
            self._complete(200)
            return
        t = perf_counter()
        self._t_first = t
        data = enc.preamble(t) + enc.token(word, n, t)
        if self._sent is not None:
            self._sent.append(perf_counter())
        self._write(data)
        self._admission.generated_tokens += 1
        self._index = n
        self._schedule(i)

    def _fault(self, i: int, n: int) -> None:
        """Token ``i`` is where the plan's fault strikes (see :mod:`.faults`)."""
        plan = self._plan
        fault = plan.fault
        enc = self._enc
        t = perf_counter()
        head = b""
        if i == 0:
            head = enc.preamble(t)
            self._t_first = t
        last = n == plan.n_tokens
        if fault is Fault.STREAM:
            self._write(
                head
                + enc.error(ENGINE_ERROR_MESSAGE, "InternalServerError", 500, t)
                + enc.end_of_stream
            )
            self._complete(200)
        elif fault is Fault.STALL:
            self._write(head)
            self._stall()
        elif fault is Fault.CUT:
            event = enc.token(plan.words[i], n, t)
            self._cut(head + event[: len(event) // 2])
        elif fault is Fault.TRICKLE:
            self._trickle(self._whole_body(t))
        elif fault in _BAD_ENDS:
            self._end_badly(head, i, n, t)
        else:  # a bad token in place of token i; the stream goes on
            if fault is Fault.MALFORMED:
                event = MALFORMED_EVENT
            elif fault is Fault.NON_UTF8:
                event = enc.token(NON_UTF8_WORD, n, t)
            else:  # Fault.HUGE_EVENT
                huge = orjson.dumps(" " + "x" * (self._engine.huge_event_bytes - 1))
                event = enc.token(huge, n, t)
            self._write(head + event)
            self._admission.generated_tokens += 1
            if last:
                self._write((enc.usage(n, t) if self._include_usage else b"") + enc.end_of_stream)
                self._finished_ok(n, t)
                self._complete(200)
                return
            self._index = n
            self._schedule(i)

    def _end_badly(self, head: bytes, i: int, n: int, t: float) -> None:
        """The last token, then a wrong end: no ``[DONE]`` (``no_done``), no usage
        (``no_usage``), or ``[DONE]`` and then no end at all (``done_no_end``,
        ``done_pings``): the slot is freed (generation is over) and the connection stays
        busy, with a ping every :data:`PING_S` for ``done_pings``, until the client closes
        it (which cancels this generation and so ends the pings)."""
        plan = self._plan
        fault = plan.fault
        enc = self._enc
        data = head + enc.final_token(plan.words[i], n, plan.finish_reason, t)
        if self._include_usage and fault is not Fault.NO_USAGE:
            data += enc.usage(n, t)
        end = _BAD_ENDS[fault]
        if end is DONE_AND_END:  # the stream's own end: no [DONE] where its API sends none
            end = enc.end_of_stream
        self._write(data + end)
        self._admission.generated_tokens += 1
        self._finished_ok(n, t)
        if fault in (Fault.NO_DONE, Fault.NO_USAGE):
            self._complete(200)
            return
        self._admission.release()
        if fault is Fault.DONE_NO_END:
            self._state = _DONE
            return
        self._state = _PINGING
        self._deadline = self._pacer.time()
        self._ping_tick()

    def _ping_tick(self) -> None:
        if self._state != _PINGING:
            return  # the client left
        self._write(PING_CHUNK)
        self._deadline += PING_S
        self._pacer.call_at(self._deadline, self._ping_tick)

    def _whole_body(self, t: float) -> bytes:
        """Every event of the response at once (for a trickle)."""
        plan = self._plan
        enc = self._enc
        n_tokens = plan.n_tokens
        words = plan.words
        parts = [enc.preamble(t)]
        parts += [enc.token(words[k], k + 1, t) for k in range(n_tokens - 1)]
        parts.append(enc.final_token(words[-1], n_tokens, plan.finish_reason, t))
        if self._include_usage:
            parts.append(enc.usage(n_tokens, t))
        parts.append(enc.end_of_stream)
        self._admission.generated_tokens += n_tokens
        return b"".join(parts)


class BufferedGeneration(_Timed):
    """A non-streaming response: the whole body once the last token's time has come.

    Without ``--tbt-per-running-ms`` the end time is known at admission, so a single timer
    is used; otherwise it ticks per token like a stream (the gaps depend on the load).
    """

    __slots__ = ("_keep_alive", "_render", "_target")

    def __init__(
        self,
        *,
        engine: Engine,
        t_received: float,
        plan: Plan,
        write: Callable[[bytes], None],
        done: Callable[[int], None],
        close: Callable[[], None],
        render: BodyRenderer,
        keep_alive: bool,
    ) -> None:
        super().__init__(
            engine=engine, t_received=t_received, plan=plan, write=write, done=done, close=close
        )
        self._render = render
        self._keep_alive = keep_alive
        # Index of the event that ends the response: the error, else the last token.
        self._target = plan.error_at if plan.error_at >= 0 else plan.n_tokens - 1

    def admit(self) -> None:
        if self._per_running_s:
            super().admit()
            return
        plan = self._plan
        gaps = plan.gaps_s
        target = self._target
        decode = target * plan.tbt_s if gaps is None else sum(gaps[:target])
        self._state = _RUNNING
        now = perf_counter()
        self._hist.queue.observe(now - self._t_received)
        self._t_first = now + plan.ttft_s
        self._index = target
        self._deadline = self._pacer.time() + plan.ttft_s + decode
        self._pacer.call_at(self._deadline, self._tick)

    def _tick(self) -> None:
        if self._state != _RUNNING:
            return  # cancelled while this tick was pending
        i = self._index
        if i < self._target:
            if i == 0:
                self._t_first = perf_counter()
            self._index = i + 1
            self._schedule(i)
            return
        plan = self._plan
        fault = plan.fault if i == plan.error_at else Fault.NONE
        if fault is Fault.STREAM:
            body = error_body(ENGINE_ERROR_MESSAGE, "InternalServerError", 500)
            self._write(simple_response(500, body, keep_alive=self._keep_alive))
            self._complete(500)
            return
        if fault is Fault.STALL:
            self._stall()
            return
        text = "".join([TOKEN_TEXT[w] for w in plan.words])
        if fault is Fault.HUGE_EVENT:
            text = " " + "x" * (self._engine.huge_event_bytes - 1)
        t = perf_counter()
        body = _faulty_body(self._render(text, plan.n_tokens, t), fault)
        extra: tuple[tuple[bytes, bytes], ...] = ()
        if plan.fault is Fault.GZIP:  # a whole-response fault: no error_at
            body = gzip.compress(body)
            extra = ((b"content-encoding", b"gzip"),)
        response = simple_response(200, body, keep_alive=self._keep_alive, extra=extra)
        self._admission.generated_tokens += plan.n_tokens
        if fault is Fault.CUT:
            self._cut(response[: len(response) - len(body) // 2])
            return
        if fault is Fault.TRICKLE:
            head = len(response) - len(body)
            self._write(response[:head])
            self._trickle(response[head:])
            return
        self._write(response)
        self._finished_ok(plan.n_tokens, t)
        self._complete(200)


def _faulty_body(body: bytes, fault: Fault) -> bytes:
    """A non-streamed body as ``fault`` spoils it (unchanged for the others)."""
    if fault is Fault.MALFORMED:
        return body[: len(body) // 2]
    if fault is Fault.NON_UTF8:
        for key in (b'"content":"', b'"text":"'):
            at = body.find(key)
            if at >= 0:
                at += len(key)
                return body[:at] + NON_UTF8_WORD[1:-1] + body[at:]
    if fault is Fault.NO_USAGE:
        doc = orjson.loads(body)
        doc.pop("usage", None)
        meta = doc.get("meta_info")
        if isinstance(meta, dict):  # LMDeploy's /generate keeps its counts here
            meta.pop("completion_tokens", None)
        return orjson.dumps(doc)
    return body
