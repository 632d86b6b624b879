"""Aggregates finished :class:`RequestRecord` objects per request name.

The collector knows metrics, nothing about backends or Locust. One lives per Locust
environment (never module-global), fed by the users of that environment.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sagellm_users.metrics.distribution import Distribution
from sagellm_users.metrics.record import RequestRecord

__all__ = ["TIMING_METRICS", "EndpointStats", "MetricsCollector"]

TIMING_METRICS = ("ttft", "tbt", "itl", "tpot", "e2e")
"""Timing distributions every :class:`EndpointStats` keeps, in seconds."""


@dataclass
class EndpointStats:
    """Counters and distributions for one request name (or for all of them)."""

    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    failure_examples: dict[str, str] = field(default_factory=dict)
    ttft: Distribution = field(default_factory=Distribution)
    tbt: Distribution = field(default_factory=Distribution)
    itl: Distribution = field(default_factory=Distribution)
    itl_per_token: Distribution = field(default_factory=Distribution)
    tpot: Distribution = field(default_factory=Distribution)
    e2e: Distribution = field(default_factory=Distribution)
    input_tokens: int = 0
    output_tokens: int = 0
    output_tokens_estimated: int = 0
    """Successful requests whose output count is a chunk count, not the server's usage."""
    first_send: float | None = None
    last_done: float | None = None

    def add(self, record: RequestRecord) -> None:
        self.requests += 1
        start = record.t_send if record.t_send is not None else record.t_start
        if self.first_send is None or start < self.first_send:
            self.first_send = start
        if record.status == "cancelled":
            self.cancelled += 1
            return
        end = record.t_done if record.t_done is not None else start
        if self.last_done is None or end > self.last_done:
            self.last_done = end
        if record.status == "error":
            self.failed += 1
            error_class = record.error_class or "Error"
            self.failures[error_class] += 1
            self.failure_examples.setdefault(error_class, record.error_message or "")
            return
        self.succeeded += 1
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        if record.output_tokens_source != "usage":
            self.output_tokens_estimated += 1
        for name in ("ttft", "tbt", "tpot", "e2e"):
            value = getattr(record, name)
            if value is not None:
                getattr(self, name).add(value)
        self.itl.extend(record.itl)
        self.itl_per_token.extend(record.itl_per_token)

    def merge(self, other: EndpointStats) -> None:
        self.requests += other.requests
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.cancelled += other.cancelled
        self.failures.update(other.failures)
        for key, message in other.failure_examples.items():
            self.failure_examples.setdefault(key, message)
        for name in (*TIMING_METRICS, "itl_per_token"):
            getattr(self, name).merge(getattr(other, name))
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.output_tokens_estimated += other.output_tokens_estimated
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
    def error_rate(self) -> float:
        done = self.succeeded + self.failed
        return self.failed / done if done else 0.0


class MetricsCollector:
    """Per-name :class:`EndpointStats`, in first-seen order."""

    def __init__(self) -> None:
        self._by_name: dict[str, EndpointStats] = {}

    def add(self, record: RequestRecord) -> None:
        stats = self._by_name.get(record.name)
        if stats is None:
            stats = self._by_name[record.name] = EndpointStats()
        stats.add(record)

    @property
    def by_name(self) -> dict[str, EndpointStats]:
        return dict(self._by_name)

    def total(self) -> EndpointStats:
        total = EndpointStats()
        for stats in self._by_name.values():
            total.merge(stats)
        return total

    def reset(self) -> None:
        self._by_name.clear()
