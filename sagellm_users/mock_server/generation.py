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

from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

from .capacity import Admission
from .metrics import EngineHistograms
from .pacer import Pacer
from .simulation import TOKEN_TEXT, Plan
from .wire import DONE_AND_END, TokenEncoder, error_body, simple_response

__all__ = ["BufferedGeneration", "Engine", "Generation", "StreamingGeneration"]

_QUEUED, _RUNNING, _DONE = 0, 1, 2

#: vLLM's message for a generation that fails inside the engine.
ENGINE_ERROR_MESSAGE = "Internal server error"

#: Builds a non-streaming body from (text, completion_tokens, t_send).
BodyRenderer = Callable[[str, int, float], bytes]


@dataclass(frozen=True, slots=True)
class Engine:
    """What every generation of one server process shares: the clock, the capacity, the
    metrics, and how much each running sequence slows every token gap."""

    pacer: Pacer
    admission: Admission
    histograms: EngineHistograms
    per_running_s: float = 0.0


class Generation(Protocol):
    """What a connection needs from the generation it is serving."""

    def cancel(self) -> None: ...


class _Timed:
    """Admission, scheduling and cancellation shared by both response styles."""

    __slots__ = (
        "_admission",
        "_deadline",
        "_done",
        "_gap",
        "_hist",
        "_index",
        "_pacer",
        "_per_running_s",
        "_plan",
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
    ) -> None:
        # The engine's parts are copied into slots: the per-token path reads them directly.
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
        encoder: TokenEncoder,
        include_usage: bool,
        sent: list[float] | None = None,
    ) -> None:
        super().__init__(engine=engine, t_received=t_received, plan=plan, write=write, done=done)
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
        enc = self._enc
        if i == plan.error_at:
            t = perf_counter()
            self._write(
                enc.error(ENGINE_ERROR_MESSAGE, "InternalServerError", 500, t) + DONE_AND_END
            )
            self._complete(200)
            return
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
            self._write(data + DONE_AND_END)
            self._admission.generated_tokens += 1
            self._admission.finished += 1
            self._hist.finished(self._t_received, self._t_first, t, n)
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
        render: BodyRenderer,
        keep_alive: bool,
    ) -> None:
        super().__init__(engine=engine, t_received=t_received, plan=plan, write=write, done=done)
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
        if i == plan.error_at:
            body = error_body(ENGINE_ERROR_MESSAGE, "InternalServerError", 500)
            self._write(simple_response(500, body, keep_alive=self._keep_alive))
            self._complete(500)
            return
        text = "".join([TOKEN_TEXT[w] for w in plan.words])
        t = perf_counter()
        body = self._render(text, plan.n_tokens, t)
        self._write(simple_response(200, body, keep_alive=self._keep_alive))
        self._admission.generated_tokens += plan.n_tokens
        self._admission.finished += 1
        self._hist.finished(self._t_received, self._t_first or t, t, plan.n_tokens)
        self._complete(200)
