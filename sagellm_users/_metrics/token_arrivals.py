"""Output tokens counted in the time bucket they arrived in, not their request's end.

Why: closed-loop users that start together finish together; counting each request's tokens
in the second it ended drew a square wave (every token in the seconds where requests
ended, 0 tok/s in between) while tokens flowed steadily all along.

How, without adding work per streamed chunk: a request is *watched* from its send (one
dict entry per request) while the user's hot loop appends a ``perf_counter()`` stamp per
decode step to ``record.t_out`` as it always did. Whoever is about to close or ship
buckets *scans* the watched requests: each one's steps since the last scan count one
token each in the bucket of their arrival (wall time ``wall_start + (t - t_start)``).
A scan costs a few bisections per request that got steps since the last one, not a loop
over its tokens: about 1 us per streaming request (5,000 streams: about 5 ms a second).

At the request's end its last steps are counted, then the steps are *reconciled* with the
request's token count (the server's usage, else the estimate): the difference goes to the
bucket of the last step (several tokens per step, as with speculative decoding, or a whole
non-streamed reply in one step). When usage counts fewer tokens than steps (a step that
carried no token, such as a final chunk with only ``finish_reason``), the difference comes
off the last step's bucket, never more than the request's steps there (and on a worker,
not from steps it already shipped to the master); the rest stays counted one per step.

Every request's tokens count, whatever its outcome: a failed or cancelled request's tokens
did arrive. (The report's totals count successful requests only; see the timeline.)
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable

from sagellm_users._metrics.record import RequestRecord

__all__ = ["StreamingRequests", "TokenSink", "bucket_key", "count_steps", "reconcile"]

TokenSink = Callable[[int, int], None]
"""Where counted tokens go: ``(bucket key, tokens)``; tokens may be negative (reconciling)."""
Counts = dict[int, int]
"""Tokens by bucket key, gathered over many requests and handed to the sink once a key."""


def bucket_key(wall: float, width: float) -> int:
    """The bucket of wall time ``wall``: ``floor(wall / width)``, robust to float noise."""
    return math.floor(wall / width + 1e-9)


def count_steps(record: RequestRecord, seen: int, width: float, counts: Counts) -> int:
    """Count the steps of ``record`` from index ``seen`` on, one token each in the bucket
    it arrived in; return how many steps are counted now."""
    t_out = record.t_out
    end = len(t_out)
    if seen >= end:
        return seen
    offset = record.wall_start - record.t_start  # perf_counter() -> wall clock
    i = seen
    while i < end:
        key = bucket_key(t_out[i] + offset, width)
        j = bisect_left(t_out, (key + 1) * width - offset, i + 1, end)
        counts[key] = counts.get(key, 0) + j - i
        i = j
    return end


def reconcile(record: RequestRecord, width: float, counts: Counts) -> None:
    """Bring the request's counted steps to its token count (see the module's note)."""
    t_out = record.t_out
    extra = record.output_tokens - len(t_out)
    if extra == 0:
        return
    if not t_out:
        if extra > 0:  # counted but never seen streaming: at the request's end
            key = bucket_key(record.wall_done, width)
            counts[key] = counts.get(key, 0) + extra
        return
    offset = record.wall_start - record.t_start
    key = bucket_key(t_out[-1] + offset, width)
    if extra < 0:
        in_last = len(t_out) - bisect_left(t_out, key * width - offset)
        extra = -min(-extra, in_last)
    counts[key] = counts.get(key, 0) + extra


class _Watched:
    __slots__ = ("record", "seen")

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        self.seen = 0
        """Steps already counted (or forgotten by a reset)."""


class StreamingRequests:
    """The requests being streamed, and how many of each one's steps are counted."""

    __slots__ = ("_watched",)

    def __init__(self) -> None:
        self._watched: dict[int, _Watched] = {}
        """By ``id(record)``: records compare by value, and the entry keeps it alive."""

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, record: RequestRecord) -> None:
        self._watched.setdefault(id(record), _Watched(record))

    def scan(self, width: float, sink: TokenSink) -> None:
        """Count every watched request's steps that arrived since the last scan."""
        counts: Counts = {}
        for watched in self._watched.values():
            if watched.seen < len(watched.record.t_out):
                watched.seen = count_steps(watched.record, watched.seen, width, counts)
        for key, tokens in counts.items():
            sink(key, tokens)

    def finish(self, record: RequestRecord, width: float, sink: TokenSink) -> None:
        """The request ended: its last steps, then the reconciliation with its usage. A
        request never watched has all its steps counted now."""
        watched = self._watched.pop(id(record), None)
        seen = 0 if watched is None else watched.seen
        counts: Counts = {}
        count_steps(record, seen, width, counts)
        reconcile(record, width, counts)
        for key, tokens in counts.items():
            sink(key, tokens)

    def forget_counted(self) -> None:
        """A stats reset: the steps that arrived before it are not counted again (their
        buckets are gone); the later ones still are."""
        for watched in self._watched.values():
            watched.seen = len(watched.record.t_out)
