"""What happened over time: one point per time bucket, of the requests that ended in it
and the output tokens that arrived in it.

Why bucket where the load is generated, by each request's wall-clock end: a master gets
its workers' results in reports every few seconds, and bucketing by arrival at the master
would pile three seconds into one and leave two empty. Each process puts its own records
in buckets of raw, mergeable data (:class:`Bucket`); a worker ships them with its report and
the master merges them bucket by bucket, so every point is what one process would have
seen over all the workers' requests.

A bucket stays open while more of its requests can still arrive: locally until a second
after its end, on a master until every worker has reported past its end (or has been
silent for :data:`REPORTER_TIMEOUT_S`). Then it is closed into a compact point (counts,
rates, a few percentiles) and its raw data is freed: memory grows by one small point per
bucket. Past ``max_points`` points the bucket width doubles and neighbouring points merge:
counts exactly, percentiles as count-weighted means of the two (an approximation only
runs longer than ``max_points`` seconds see, and documented in the report).

Output tokens count in the bucket each decode step arrived in, reconciled with the
request's usage at its end (see :mod:`sagellm_users._metrics.token_arrivals`), so
``output_tokens`` / ``output_tok_s`` / ``total_tok_s`` say what flowed in each second,
also while long requests are still streaming. They count every request's tokens, failed
and cancelled ones too (those tokens did arrive), and warm-up, like the rest of the
timeline: their sum can exceed the report's total, which counts measured successful
requests only. ``completed_output_tokens`` is the other view, the successful requests'
tokens in the bucket of their end: what the report's total sums (warm-up aside).

Gauges (users, requests in flight) are sampled, not summed: the last sample taken during a
bucket is its value, and a bucket with gauges but no completions is a point too (a second
in which eight long requests were all still streaming is not a gap).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sagellm_users._metrics.bins import COARSE
from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._metrics.token_arrivals import StreamingRequests, bucket_key

__all__ = [
    "MAX_POINTS",
    "POINT_PERCENTILES",
    "REPORTER_TIMEOUT_S",
    "SETTLE_S",
    "Bucket",
    "Timeline",
]

MAX_POINTS = 1800
"""Closed points kept before the width doubles: half an hour of one-second points."""
SETTLE_S = 1.0
"""How long after a bucket's end its last requests may still be on their way to the record."""
REPORTER_TIMEOUT_S = 10.0
"""A worker silent this long no longer holds buckets open (it stopped or it is gone)."""

POINT_PERCENTILES: dict[str, tuple[str, tuple[float, ...]]] = {
    "ttft": ("ttft", (50.0, 90.0, 99.0)),
    "itl": ("itl", (50.0, 99.0)),
    "tpot": ("tpot", (50.0, 90.0)),
    "e2el": ("e2e", (50.0, 99.0)),
    "lag": ("lag", (99.0,)),
}
"""Point field prefix -> (bucket distribution, percentiles kept), e.g. ``ttft_p99_ms``."""

_PERCENTILE_KEYS: tuple[tuple[str, str, tuple[tuple[float, str], ...]], ...] = tuple(
    (prefix, source, tuple((p, f"{prefix}_p{p:g}_ms") for p in percentiles))
    for prefix, (source, percentiles) in POINT_PERCENTILES.items()
)
"""(prefix, source, ((percentile, point key), ...)): the keys made once, so the points of
a long run share their key strings instead of holding a dozen copies each."""

_COUNTS = (
    "requests",
    "completed",
    "failed",
    "input_tokens",
    "output_tokens",
    "completed_output_tokens",
)
"""A bucket's counters: summed when buckets merge."""

_WEIGHTS = {"ttft": "completed", "tpot": "completed", "e2el": "completed", "itl": "itl_count"}
"""The count each percentile is weighted by when two points merge."""


class Bucket:
    """The raw results of one time bucket: counters and mergeable distributions."""

    __slots__ = (
        "completed",
        "completed_output_tokens",
        "e2e",
        "failed",
        "failures",
        "input_tokens",
        "itl",
        "lag",
        "output_tokens",
        "requests",
        "tpot",
        "ttft",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.completed = 0
        self.failed = 0
        self.failures: Counter[str] = Counter()
        self.input_tokens = 0
        self.output_tokens = 0
        """Tokens that arrived in the bucket, of every request (counted by the timeline)."""
        self.completed_output_tokens = 0
        """Tokens of the successful requests that ended in the bucket."""
        self.ttft = Distribution()
        self.itl = Distribution.for_gaps(grid=COARSE)
        """Binned on the coarse grid: within the tolerance, and a tenth of the bins in a
        worker's report (see _metrics.bins)."""
        self.tpot = Distribution()
        self.e2e = Distribution()
        self.lag = Distribution()
        """The client's event-loop lag sampled during the bucket, in seconds."""

    def add(self, record: RequestRecord) -> None:
        if record.status == "cancelled":
            return  # stopped by the test, not an outcome of the server's
        self.requests += 1
        if record.status == "error":
            self.failed += 1
            self.failures[record.error_class or "Error"] += 1
            return
        self.completed += 1
        self.input_tokens += record.input_tokens
        self.completed_output_tokens += record.output_tokens
        for name in ("ttft", "tpot", "e2e"):
            value = getattr(record, name)
            if value is not None:
                getattr(self, name).add(value)
        self.itl.extend(record.itl)

    def merge(self, other: Bucket) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.update(other.failures)
        for name in ("ttft", "itl", "tpot", "e2e", "lag"):
            getattr(self, name).merge(getattr(other, name))

    def to_wire(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "failed": self.failed,
            "failures": dict(self.failures),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "completed_output_tokens": self.completed_output_tokens,
            **{
                name: getattr(self, name).to_wire()
                for name in ("ttft", "itl", "tpot", "e2e", "lag")
            },
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Bucket:
        bucket = cls()
        bucket.merge_wire(data)
        return bucket

    def merge_wire(self, data: dict[str, Any]) -> None:
        """Fold in another bucket's :meth:`to_wire` form, with nothing built in between."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + int(data[name]))
        for error, count in data["failures"].items():
            self.failures[str(error)] += int(count)
        for name in ("ttft", "itl", "tpot", "e2e", "lag"):
            getattr(self, name).merge_wire(data[name])

    def point(self, start: float, width: float, gauges: tuple[int, int] | None) -> dict[str, Any]:
        """The compact point of this bucket (times in ms, rates per second)."""
        point: dict[str, Any] = {
            "t": start,
            "users": None if gauges is None else gauges[0],
            "in_flight": None if gauges is None else gauges[1],
            "requests": self.requests,
            "completed": self.completed,
            "failed": self.failed,
            "errors": dict(self.failures),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "completed_output_tokens": self.completed_output_tokens,
            "itl_count": self.itl.count,
        }
        _add_rates(point, width)
        for _prefix, source, keys in _PERCENTILE_KEYS:
            dist: Distribution = getattr(self, source)
            for p, key in keys:
                value = dist.percentile(p)
                point[key] = None if value is None else value * 1e3
        return point


def _add_rates(point: dict[str, Any], width: float) -> None:
    """Rates of a point: output (and total) tokens by arrival, input tokens of the requests
    that completed in it (a prompt's count is known at its request's end)."""
    point["req_s"] = point["completed"] / width
    point["output_tok_s"] = point["output_tokens"] / width
    point["total_tok_s"] = (point["input_tokens"] + point["output_tokens"]) / width


def merge_points(first: dict[str, Any], second: dict[str, Any], width: float) -> dict[str, Any]:
    """Two neighbouring points as one of ``width`` seconds (see the module's note)."""
    merged: dict[str, Any] = {"t": first["t"]}
    later = second if second["users"] is not None else first
    merged["users"], merged["in_flight"] = later["users"], later["in_flight"]
    for name in (*_COUNTS, "itl_count"):
        merged[name] = first[name] + second[name]
    merged["errors"] = dict(Counter(first["errors"]) + Counter(second["errors"]))
    _add_rates(merged, width)
    for prefix, _source, keys in _PERCENTILE_KEYS:
        for _p, key in keys:
            weight = _WEIGHTS.get(prefix)
            merged[key] = _weighted(
                first[key],
                second[key],
                first[weight] if weight else 1,
                second[weight] if weight else 1,
            )
    return merged


def _weighted(a: float | None, b: float | None, wa: int, wb: int) -> float | None:
    if a is None or wa <= 0:
        return b
    if b is None or wb <= 0:
        return a
    return (a * wa + b * wb) / (wa + wb)


class Timeline:
    """Buckets of results by wall-clock time, open while they can still grow, then points."""

    def __init__(
        self,
        width: float = 1.0,
        max_points: int = MAX_POINTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_width = width
        self.max_points = max_points
        self._clock = clock
        self._streaming = StreamingRequests()
        """The requests being streamed here, whose steps count as they arrive."""
        self.reset()

    def reset(self) -> None:
        self.width = self.base_width
        self.points: list[dict[str, Any]] = []
        self.late = 0
        """Requests that arrived for a bucket already closed (left out of the points)."""
        self.late_tokens = 0
        """Output tokens that arrived for a bucket already closed (left out of the points):
        none while the requests in flight are watched and scanned before each close."""
        self._streaming.forget_counted()
        self._open: dict[int, Bucket] = {}
        self._gauges: dict[int, tuple[int, int]] = {}
        self._frontier: int | None = None
        """Buckets before this key are closed."""
        self._reporters: dict[str, tuple[float, float, int]] = {}
        """Worker -> (its clock at its last report, our clock when it arrived, its requests
        in flight then)."""

    def _key(self, wall: float) -> int:
        return bucket_key(wall, self.width)

    def _bucket(self, key: int) -> Bucket | None:
        if self._frontier is not None and key < self._frontier:
            return None
        bucket = self._open.get(key)
        if bucket is None:
            bucket = self._open[key] = Bucket()
        return bucket

    # -- feeding ----------------------------------------------------------------------------
    def watch(self, record: RequestRecord) -> None:
        """A request about to be sent: its decode steps count as they arrive (at each
        :meth:`scan`), until :meth:`add` takes its end. Costs nothing per chunk."""
        self._streaming.watch(record)

    def scan(self) -> None:
        """Count the steps that arrived since the last scan in the buckets they arrived in:
        done before buckets close, ship or are read, so no step arrives late."""
        self._streaming.scan(self.width, self._add_output)

    def _add_output(self, key: int, tokens: int) -> None:
        bucket = self._bucket(key)
        if bucket is not None:
            bucket.output_tokens = max(0, bucket.output_tokens + tokens)
        elif tokens > 0:
            self.late_tokens += tokens

    def add(self, record: RequestRecord) -> None:
        """A finished request: its outcome in the bucket of its end, its last output tokens
        in the buckets they arrived in (reconciled with its usage)."""
        self._streaming.finish(record, self.width, self._add_output)
        bucket = self._bucket(self._key(record.wall_done))
        if bucket is None:
            self.late += record.status != "cancelled"
        else:
            bucket.add(record)

    def add_lag(self, wall: float, lag_s: float) -> None:
        bucket = self._bucket(self._key(wall))
        if bucket is not None:
            bucket.lag.add(lag_s)

    def sample(self, wall: float, users: int, in_flight: int) -> None:
        """The gauges now; the last sample in a bucket is its value."""
        key = self._key(wall)
        if self._frontier is None or key >= self._frontier:
            self._gauges[key] = (users, in_flight)

    # -- shipping between processes ---------------------------------------------------------
    def drain(self, in_flight: int = 0) -> dict[str, Any]:
        """A worker's buckets since its last report, as wire data; then start empty."""
        self.scan()
        data = {
            "now": self._clock(),
            "buckets": [[key * self.width, b.to_wire()] for key, b in sorted(self._open.items())],
            "in_flight": in_flight,
        }
        self._open = {}
        return data

    def merge_wire(self, reporter: str, data: dict[str, Any]) -> None:
        """Fold in a worker's drained buckets; its clock says how far it has reported."""
        for start, wire in data.get("buckets", ()):
            bucket = self._bucket(self._key(float(start)))
            if bucket is None:
                self.late += int(wire["requests"])
                self.late_tokens += int(wire["output_tokens"])
            else:
                bucket.merge_wire(wire)
        if "now" in data:
            in_flight = int(data.get("in_flight", 0))
            self._reporters[reporter] = (float(data["now"]), self._clock(), in_flight)

    def expect(self, reporter: str) -> None:
        """A worker that has not reported yet: it holds open what ends after now, until its
        first report (or :data:`REPORTER_TIMEOUT_S`)."""
        if reporter not in self._reporters:
            now = self._clock()
            self._reporters[reporter] = (now, now, 0)

    def _active(self) -> list[tuple[float, float, int]]:
        now = self._clock()
        return [r for r in self._reporters.values() if now - r[1] <= REPORTER_TIMEOUT_S]

    def peak_users(self) -> int | None:
        """The most users sampled in the run so far (None before any sample)."""
        users = [p["users"] for p in self.points if p.get("users") is not None]
        users += [gauges[0] for gauges in self._gauges.values()]
        return max(users, default=None)

    def reported_in_flight(self) -> int:
        """Requests in flight on the workers that report, as of their last reports."""
        return sum(r[2] for r in self._active())

    # -- closing ----------------------------------------------------------------------------
    def complete_until(self) -> float:
        """Wall time before which every bucket has all its requests."""
        now = self._clock()
        bound = now - SETTLE_S
        for reported_at, _seen_at, _in_flight in self._active():
            bound = min(bound, reported_at - SETTLE_S)
        return bound

    def close_due(self) -> None:
        """Close every bucket that can no longer grow."""
        self.close(self.complete_until())

    def close(self, until: float) -> None:
        """Close the buckets that end at or before ``until`` (wall time) into points."""
        self.scan()
        end_key = bucket_key(until, self.width)  # first key not wholly before
        keys = sorted(k for k in {*self._open, *self._gauges} if k < end_key)
        for key in keys:
            self.points.append(self._point(key, self._open.pop(key, None)))
            self._gauges.pop(key, None)
        if self._frontier is None or end_key > self._frontier:
            self._frontier = end_key
        while len(self.points) > self.max_points and self._frontier % 2 == 0:
            self._coarsen()

    def _point(self, key: int, bucket: Bucket | None) -> dict[str, Any]:
        return (bucket or Bucket()).point(key * self.width, self.width, self._gauges.get(key))

    def _coarsen(self) -> None:
        """Double the width: neighbouring points, open buckets and gauges merge in pairs."""
        width = self.width * 2
        merged: dict[int, dict[str, Any]] = {}
        for old in self.points:
            key = bucket_key(old["t"], width)
            point = {**old, "t": key * width}
            previous = merged.get(key)
            merged[key] = (
                _rated(point, width) if previous is None else merge_points(previous, point, width)
            )
        self.points = [merged[key] for key in sorted(merged)]
        buckets: dict[int, Bucket] = {}
        for key, bucket in self._open.items():
            if key // 2 in buckets:
                buckets[key // 2].merge(bucket)
            else:
                buckets[key // 2] = bucket
        self._open = buckets
        gauges: dict[int, tuple[int, int]] = {}
        for key in sorted(self._gauges):
            gauges[key // 2] = self._gauges[key]
        self._gauges = gauges
        assert self._frontier is not None
        self._frontier //= 2
        self.width = width

    # -- reading ----------------------------------------------------------------------------
    def after(self, t: float) -> list[dict[str, Any]]:
        """Closed points that start after ``t``."""
        points = self.points
        low, high = 0, len(points)
        while low < high:
            middle = (low + high) // 2
            if points[middle]["t"] <= t:
                low = middle + 1
            else:
                high = middle
        return points[low:]

    def open_points(self, *, live: bool = False) -> list[dict[str, Any]]:
        """The open buckets as provisional points (they may still grow).

        ``live`` (the live page's view): on a master, a point that starts after some worker's
        last report has gauges (sampled here) but not yet that worker's requests and tokens,
        which come with its next report, seconds later. Its request figures are then None,
        unknown: zeros would draw the live throughput falling to nothing at every poll,
        and flat at zero until the first report. The final report takes every open bucket
        as it is (``live`` false): by then each worker has sent its last report."""
        self.scan()
        keys = sorted({*self._open, *self._gauges})
        points = [self._point(key, self._open.get(key)) for key in keys]
        reported = min((r[0] for r in self._active()), default=None)
        if not live or reported is None:
            return points
        return [p if p["t"] < reported else _gauges_only(p) for p in points]


def _gauges_only(point: dict[str, Any]) -> dict[str, Any]:
    """``point`` with every figure but its time and gauges unknown (None)."""
    kept = ("t", "users", "in_flight")
    return {key: value if key in kept else None for key, value in point.items()}


def _rated(point: dict[str, Any], width: float) -> dict[str, Any]:
    _add_rates(point, width)
    return point
