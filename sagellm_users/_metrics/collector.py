"""Aggregates finished :class:`RequestRecord` objects per (User class, request name).

The collector knows metrics, nothing about backends or Locust. One lives per Locust
environment (never module-global). Everything in it merges: a worker ships what it gathered
since its last report (:meth:`MetricsCollector.drain`) and the master folds it in
(:meth:`MetricsCollector.merge_wire`), so the master's numbers are what one process would
have computed over every request (counts exact, percentiles numpy's linear percentiles of
every sample within max(0.1%, 0.05 ms); see :mod:`sagellm_users._metrics.distribution`).

Times of the measurement window are wall-clock seconds (``time.time()``), the one clock
that workers on different machines share (given NTP); durations come from perf_counter().
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagellm_users._metrics.arrivals import ArrivalStats
from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.record import PHASES, RequestRecord

if TYPE_CHECKING:
    from sagellm_users._metrics.slo import GoodRequest

__all__ = [
    "DISTRIBUTIONS",
    "PHASE_DISTRIBUTIONS",
    "TIMING_METRICS",
    "EndpointStats",
    "MetricsCollector",
    "StatsKey",
]

TIMING_METRICS = ("ttft", "ttst", "ttfo", "tbt", "itl", "tpot", "e2e")
"""Timing distributions every :class:`EndpointStats` keeps, in seconds."""
MISMATCH_EXAMPLES = 10
"""Requests whose length differs from what they asked, kept as examples per endpoint."""
PHASE_DISTRIBUTIONS = tuple(f"phase_{name}" for name in PHASES)
"""The HTTP phases of successful requests (seconds), one distribution each."""
_PHASE_PROPERTIES = tuple((f"phase_{name}", f"{name}_phase") for name in PHASES)
DISTRIBUTIONS = (
    *TIMING_METRICS,
    "itl_reasoning",
    "itl_answer",
    "reasoning_tokens",
    "itl_per_token",
    "input_tokens",
    "output_tokens",
    *PHASE_DISTRIBUTIONS,
)
_COUNTERS = (
    "requests",
    "succeeded",
    "failed",
    "cancelled",
    "total_input_tokens",
    "total_output_tokens",
    "output_tokens_estimated",
    "output_tokens_tokenized",
    "stopped_at_limit",
    "empty_answers",
    "length_mismatches",
    "input_tokens_estimated",
    "reasoning_requests",
    "total_reasoning_tokens",
    "reasoning_tokens_estimated",
    "reasoning_usage_zero",
    "cache_reported",
    "cache_prompt_tokens",
    "total_cached_tokens",
    "decode_steps",
    "step_tokens",
    "good",
    "retried",
    "retries",
    "backoffs",
    "backoff_ms",
)

StatsKey = tuple[str, str]
"""(User class name, request name)."""


@dataclass
class EndpointStats:
    """Counters and distributions for one key (or several merged)."""

    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    failure_examples: dict[str, str] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    backends: set[str] = field(default_factory=set)
    ttft: Distribution = field(default_factory=Distribution)
    ttst: Distribution = field(default_factory=Distribution)
    """Time to the second decode step."""
    ttfo: Distribution = field(default_factory=Distribution)
    """Time to the answer's first token, over requests that reasoned first."""
    itl_reasoning: Distribution = field(default_factory=Distribution.for_gaps)
    itl_answer: Distribution = field(default_factory=Distribution.for_gaps)
    """ITL of the reasoning and of the answer after it, over requests that reasoned."""
    reasoning_tokens: Distribution = field(default_factory=Distribution)
    """Reasoning tokens per request, over requests that reasoned."""
    tbt: Distribution = field(default_factory=Distribution)
    itl: Distribution = field(default_factory=Distribution.for_gaps)
    itl_per_token: Distribution = field(default_factory=Distribution.for_gaps)
    tpot: Distribution = field(default_factory=Distribution)
    e2e: Distribution = field(default_factory=Distribution)
    input_tokens: Distribution = field(default_factory=Distribution)
    output_tokens: Distribution = field(default_factory=Distribution)
    phase_connect: Distribution = field(default_factory=Distribution)
    """TCP connect of the requests that opened a connection (see RequestRecord)."""
    phase_tls: Distribution = field(default_factory=Distribution)
    phase_send: Distribution = field(default_factory=Distribution)
    phase_wait: Distribution = field(default_factory=Distribution)
    phase_first_byte: Distribution = field(default_factory=Distribution)
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    output_tokens_estimated: int = 0
    """Successful requests whose output count is a chunk count, not the server's usage."""
    output_tokens_tokenized: int = 0
    """Successful requests without usage whose output a local tokenizer counted."""
    stopped_at_limit: int = 0
    """Successful requests that said ``"stop"`` with exactly ``max_tokens`` out."""
    empty_answers: int = 0
    """Successful requests with no output at all: no token, no usage counting one."""
    length_mismatches: int = 0
    """Successful requests whose length differs from what ignore_eos / min_tokens asked."""
    length_mismatch_examples: list[str] = field(default_factory=list)
    """The first few of them (``#ID: how``), at most :data:`MISMATCH_EXAMPLES`."""
    input_tokens_estimated: int = 0
    reasoning_requests: int = 0
    """Successful requests whose model reasoned (reasoning deltas, or usage saying so)."""
    total_reasoning_tokens: int = 0
    reasoning_tokens_estimated: int = 0
    """Requests that reasoned whose reasoning count is their reasoning steps: the server
    gave no (believable) ``completion_tokens_details.reasoning_tokens``."""
    reasoning_usage_zero: int = 0
    """Requests that streamed reasoning while the server's usage counted none (see
    :attr:`RequestRecord.reasoning_usage_contradicted`)."""
    cache_reported: int = 0
    """Successful requests whose usage said how many prompt tokens the cache served."""
    cache_prompt_tokens: int = 0
    """The prompt tokens of those requests (the base of the cache hit share)."""
    total_cached_tokens: int = 0
    decode_steps: int = 0
    """Decode steps of successful streamed requests (chunks that were steps)."""
    step_tokens: int = 0
    """Output tokens of those requests: over ``decode_steps``, the tokens a step carried."""
    step_sizes: Counter[int] = field(default_factory=Counter)
    """Steps by the tokens they carried, when usage came with every chunk: several tokens
    a step is speculative decoding, or a server that fell behind its engine."""
    good: int = 0
    """Successful requests that met every per-request SLO (see _metrics.slo)."""
    retried: int = 0
    """Requests sent more than once (``--retries``), whatever their outcome."""
    retries: int = 0
    """Attempts after the first, all requests together."""
    retry_failures: Counter[str] = field(default_factory=Counter)
    """How the retried attempts failed (``"HTTPStatusError 429"``: count)."""
    backoffs: int = 0
    """Waits users took after connection errors in a row (_users.connect_backoff)."""
    backoff_ms: int = 0
    """Their total length, all users together."""
    first_send: float | None = None
    """Wall-clock time of the first send."""
    last_done: float | None = None
    """Wall-clock time of the last completion (cancelled requests excluded)."""

    def add(self, record: RequestRecord) -> None:
        self.requests += 1
        self.backends.add(record.backend)
        if record.model:
            self.models.add(record.model)
        sent = record.wall_send
        if self.first_send is None or sent < self.first_send:
            self.first_send = sent
        if record.retry_errors:
            self.retried += 1
            self.retries += len(record.retry_errors)
            self.retry_failures.update(record.retry_errors)
        if record.backoff_s:
            self.backoffs += 1
            self.backoff_ms += round(record.backoff_s * 1e3)
        if record.status == "cancelled":
            self.cancelled += 1
            return
        done = record.wall_done
        if self.last_done is None or done > self.last_done:
            self.last_done = done
        if record.status == "error":
            self.failed += 1
            error_class = record.error_class or "Error"
            self.failures[error_class] += 1
            self.failure_examples.setdefault(error_class, record.error_message or "")
            return
        self.succeeded += 1
        self._add_tokens(record)
        for name in ("ttft", "ttst", "ttfo", "tbt", "tpot", "e2e"):
            value = getattr(record, name)
            if value is not None:
                getattr(self, name).add(value)
        self.itl.extend(record.itl)
        self.itl_per_token.extend(record.itl_per_token)
        self._add_reasoning_and_cache(record)

    def _add_reasoning_and_cache(self, record: RequestRecord) -> None:
        """A successful request's reasoning, and what the server's prefix cache served."""
        if record.reasoned:
            self.reasoning_requests += 1
            n = record.reasoning_tokens
            self.total_reasoning_tokens += n
            self.reasoning_tokens.add(n)
            if record.reasoning_tokens_source != "usage":
                self.reasoning_tokens_estimated += 1
            if record.reasoning_usage_contradicted:
                self.reasoning_usage_zero += 1
            self.itl_reasoning.extend(record.itl_reasoning)
            self.itl_answer.extend(record.itl_answer)
        if record.stream and record.t_out:
            self.decode_steps += len(record.t_out)
            self.step_tokens += record.output_tokens
            if record.tokens_per_chunk is not None:
                self.step_sizes.update(record.tokens_per_chunk)
        if record.usage_cached_tokens is not None:
            self.cache_reported += 1
            self.cache_prompt_tokens += record.input_tokens
            self.total_cached_tokens += record.usage_cached_tokens
        if record.t_sent is not None:  # over HTTP
            for name, prop in _PHASE_PROPERTIES:
                value = getattr(record, prop)
                if value is not None:
                    getattr(self, name).add(value)

    def _keep_examples(self, examples: Iterable[str]) -> None:
        room = MISMATCH_EXAMPLES - len(self.length_mismatch_examples)
        if room > 0:
            self.length_mismatch_examples.extend(itertools.islice(examples, room))

    def _add_tokens(self, record: RequestRecord) -> None:
        """A successful request's token counts, and where they came from."""
        n_in, n_out = record.input_tokens, record.output_tokens
        self.total_input_tokens += n_in
        self.total_output_tokens += n_out
        self.input_tokens.add(n_in)
        self.output_tokens.add(n_out)
        if record.stopped_at_limit:
            self.stopped_at_limit += 1
        if n_out == 0:
            self.empty_answers += 1
        mismatch = record.length_mismatch
        if mismatch is not None:
            self.length_mismatches += 1
            if len(self.length_mismatch_examples) < MISMATCH_EXAMPLES:
                self.length_mismatch_examples.append(f"#{record.request_id}: {mismatch}")
        source = record.output_tokens_source
        if source == "tokenizer":
            self.output_tokens_tokenized += 1
        elif source != "usage":
            self.output_tokens_estimated += 1
        if record.input_tokens_source != "usage":
            self.input_tokens_estimated += 1

    def merge(self, other: EndpointStats) -> None:
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.update(other.failures)
        self.retry_failures.update(other.retry_failures)
        self.step_sizes.update(other.step_sizes)
        self.models |= other.models
        self.backends |= other.backends
        for key, message in other.failure_examples.items():
            self.failure_examples.setdefault(key, message)
        self._keep_examples(other.length_mismatch_examples)
        for name in DISTRIBUTIONS:
            getattr(self, name).merge(getattr(other, name))
        if other.first_send is not None and (
            self.first_send is None or other.first_send < self.first_send
        ):
            self.first_send = other.first_send
        if other.last_done is not None and (
            self.last_done is None or other.last_done > self.last_done
        ):
            self.last_done = other.last_done

    @property
    def window(self) -> float:
        """Seconds from the first send to the last completion."""
        if self.first_send is None or self.last_done is None:
            return 0.0
        return max(0.0, self.last_done - self.first_send)

    @property
    def tokens_per_step(self) -> float | None:
        """Output tokens per decode step of streamed requests (1 without speculative
        decoding, when the client sees every step)."""
        return self.step_tokens / self.decode_steps if self.decode_steps else None

    @property
    def cache_hit_share(self) -> float | None:
        """Of the prompt tokens of requests whose usage said, the share the server's prefix
        cache served; None when no usage said."""
        if not self.cache_prompt_tokens:
            return None
        return self.total_cached_tokens / self.cache_prompt_tokens

    @property
    def error_rate(self) -> float:
        done = self.succeeded + self.failed
        return self.failed / done if done else 0.0

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        data["failures"] = dict(self.failures)
        data["retry_failures"] = dict(self.retry_failures)
        data["step_sizes"] = {str(size): n for size, n in self.step_sizes.items()}
        data["failure_examples"] = dict(self.failure_examples)
        data["length_mismatch_examples"] = list(self.length_mismatch_examples)
        data["models"] = sorted(self.models)
        data["backends"] = sorted(self.backends)
        data["first_send"] = self.first_send
        data["last_done"] = self.last_done
        for name in DISTRIBUTIONS:
            data[name] = getattr(self, name).to_wire()
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EndpointStats:
        stats = cls()
        stats.merge_wire(data)
        return stats

    def merge_wire(self, data: dict[str, Any]) -> None:
        """Fold in another's :meth:`to_wire` form: ``merge(from_wire(data))`` with nothing
        built in between (the master's path for every worker report)."""
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + int(data.get(name, 0)))
        for table, name in ((self.failures, "failures"), (self.retry_failures, "retry_failures")):
            for error, count in data.get(name, {}).items():
                table[str(error)] += int(count)
        for size, n in data.get("step_sizes", {}).items():
            self.step_sizes[int(size)] += int(n)
        self.models.update(map(str, data.get("models", ())))
        self.backends.update(map(str, data.get("backends", ())))
        for error, message in data["failure_examples"].items():
            self.failure_examples.setdefault(str(error), str(message))
        self._keep_examples(map(str, data.get("length_mismatch_examples", ())))
        for name in DISTRIBUTIONS:
            getattr(self, name).merge_wire(data[name])
        first_send, last_done = data["first_send"], data["last_done"]
        if first_send is not None and (self.first_send is None or first_send < self.first_send):
            self.first_send = first_send
        if last_done is not None and (self.last_done is None or last_done > self.last_done):
            self.last_done = last_done


class MetricsCollector:
    """:class:`EndpointStats` per (User class, request name), in first-seen order; also per
    turn of multi-turn sessions, and how well an open-loop schedule was kept."""

    def __init__(self) -> None:
        self._stats: dict[StatsKey, EndpointStats] = {}
        self._turns: dict[int, EndpointStats] = {}
        self._groups: dict[int, EndpointStats] = {}
        self.arrivals = ArrivalStats()
        self.window_start: float | None = None
        """Wall-clock start of the measurement window when a warm-up applies, else None."""
        self.excluded = 0
        """Requests left out as warm-up."""
        self.good_request: GoodRequest | None = None
        """The per-request SLO test behind goodput, when --slo bounds a timing."""

    def add(self, record: RequestRecord) -> None:
        key = (record.user, record.name)
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = EndpointStats()
        stats.add(record)
        good = self.good_request
        is_good = good is not None and record.status == "ok" and good(record)
        if is_good:
            stats.good += 1
        for table, index in ((self._turns, record.turn), (self._groups, record.prefix_group)):
            if index is not None:  # a turn of a conversation, a shared-prefix group
                part = table.get(index)
                if part is None:
                    part = table[index] = EndpointStats()
                part.add(record)
                part.good += is_good
        if record.intended_wall is not None:
            self.arrivals.add(record)

    @property
    def by_key(self) -> dict[StatsKey, EndpointStats]:
        return dict(self._stats)

    @property
    def by_name(self) -> dict[str, EndpointStats]:
        """Per request name, all User classes merged."""
        merged: dict[str, EndpointStats] = {}
        for (_user, name), stats in self._stats.items():
            merged.setdefault(name, EndpointStats()).merge(stats)
        return merged

    @property
    def by_turn(self) -> dict[int, EndpointStats]:
        """Per turn index of multi-turn sessions (all names merged), in turn order."""
        return dict(sorted(self._turns.items()))

    @property
    def by_prefix_group(self) -> dict[int, EndpointStats]:
        """Per shared-prefix group (all names merged), in group order."""
        return dict(sorted(self._groups.items()))

    def total(self) -> EndpointStats:
        total = EndpointStats()
        for stats in self._stats.values():
            total.merge(stats)
        return total

    def window_bounds(
        self, total: EndpointStats | None = None
    ) -> tuple[float | None, float | None]:
        """Wall-clock start and end of what was measured: the window's start (or the first
        send) and the last completion. Pass ``total`` when it is already at hand."""
        total = self.total() if total is None else total
        start = self.window_start if self.window_start is not None else total.first_send
        return start, total.last_done

    def window(self, total: EndpointStats | None = None) -> float:
        """Seconds measured, from :meth:`window_bounds`."""
        start, end = self.window_bounds(total)
        if start is None or end is None:
            return 0.0
        return max(0.0, end - start)

    def reset(self) -> None:
        self._stats.clear()
        self._turns.clear()
        self._groups.clear()
        self.arrivals = ArrivalStats()
        self.excluded = 0

    def snapshot(self) -> dict[str, Any]:
        """The wire form of everything gathered, without emptying (for live views)."""
        return {
            "window_start": self.window_start,
            "excluded": self.excluded,
            "stats": [
                {"user": user, "name": name, "stats": s.to_wire()}
                for (user, name), s in self._stats.items()
            ],
            "turns": [{"turn": turn, "stats": s.to_wire()} for turn, s in self._turns.items()],
            "groups": [{"group": group, "stats": s.to_wire()} for group, s in self._groups.items()],
            "arrivals": self.arrivals.to_wire(),
        }

    def drain(self) -> dict[str, Any]:
        """Everything gathered since the last drain, as wire data; then start empty."""
        data = self.snapshot()
        self._stats = {}
        self._turns = {}
        self._groups = {}
        self.arrivals = ArrivalStats()
        self.excluded = 0
        return data

    def merge_wire(self, data: dict[str, Any]) -> None:
        """Fold in what another process drained."""
        start = data.get("window_start")
        if start is not None and (self.window_start is None or start < self.window_start):
            self.window_start = float(start)
        self.excluded += int(data.get("excluded", 0))
        for item in data.get("stats", ()):
            key = (str(item["user"]), str(item["name"]))
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = EndpointStats()
            stats.merge_wire(item["stats"])
        for table, kind in ((self._turns, "turn"), (self._groups, "group")):
            for item in data.get(kind + "s", ()):
                index = int(item[kind])
                stats = table.get(index)
                if stats is None:
                    stats = table[index] = EndpointStats()
                stats.merge_wire(item["stats"])
        if "arrivals" in data:
            self.arrivals.merge(ArrivalStats.from_wire(data["arrivals"]))
