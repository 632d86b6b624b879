"""The measurement window: which requests count, from when.

A load test's first seconds are not steady state: connections open, caches warm, users are
still being spawned. ``--warmup 30s`` (or ``--warmup 200req``) leaves that out of the report,
and ``--measure-after-spawn`` starts measuring only once every user runs. A request counts
when it was sent at or after the window's start; excluded requests still go to the records
file (marked ``warmup``) and to Locust's live rows. The window ends at the last completion.

Each process applies its window by its own clock: in distributed runs a time warm-up starts
at each worker's test start, a request warm-up counts each worker's own requests, and the
master reports the earliest start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sagellm_users._errors import ConfigError

__all__ = ["MeasurementWindow", "Warmup", "parse_warmup"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|req|requests?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Warmup:
    """Seconds after the test starts, or a number of finished requests, left unmeasured."""

    seconds: float = 0.0
    requests: int = 0

    def __str__(self) -> str:
        if self.requests:
            return f"{self.requests} requests"
        return f"{self.seconds:g} s" if self.seconds else "none"


def parse_warmup(text: str) -> Warmup:
    """``30s``, ``2m``, ``1h``, ``45`` (seconds) or ``200req`` (requests); ``""`` is none."""
    if not text.strip():
        return Warmup()
    match = _PATTERN.match(text)
    if match is None:
        raise ConfigError(
            f"--warmup: cannot read {text!r}; give a time (30s, 2m) or requests (200req)"
        )
    number, unit = match.group(1), (match.group(2) or "s").lower()
    if unit.startswith("req"):
        if "." in number:
            raise ConfigError(f"--warmup: a request count must be whole, got {text!r}")
        return Warmup(requests=int(number))
    return Warmup(seconds=float(number) * _UNITS[unit])


class MeasurementWindow:
    """Decides, request by request, whether it is measured; remembers when measuring began."""

    def __init__(self, warmup: Warmup, after_spawn: bool = False) -> None:
        self.warmup = warmup
        self.after_spawn = after_spawn
        self.start: float | None = None
        """Wall-clock start of measuring; None while measuring from the first request."""
        self._waiting = after_spawn or warmup.seconds > 0
        self._requests_left = warmup.requests

    @property
    def active(self) -> bool:
        """Whether a warm-up or spawn wait applies at all (else every request counts)."""
        return self.after_spawn or bool(self.warmup.seconds) or bool(self.warmup.requests)

    def test_started(self, now: float) -> None:
        if not self.after_spawn and self.warmup.seconds:
            self.start = now + self.warmup.seconds
            self._waiting = False

    def spawning_complete(self, now: float) -> None:
        if self.after_spawn and self._waiting:
            self.start = now + self.warmup.seconds
            self._waiting = False

    def measuring(self, now: float) -> bool:
        """Whether the window is open at wall-clock ``now`` (the client's own health is
        judged over the same stretch as the requests it measured)."""
        if self._waiting or self._requests_left:
            return False
        return self.start is None or now >= self.start

    def admits(self, sent_at: float, finished_at: float, cancelled: bool) -> bool:
        """True when a request sent at ``sent_at`` (wall clock) belongs to the window."""
        if self._waiting or (self.start is not None and sent_at < self.start):
            return False
        if self._requests_left:
            if not cancelled:  # a cancelled request finished nothing: it does not count down
                self._requests_left -= 1
                if self._requests_left == 0:
                    self.start = max(self.start or 0.0, finished_at)
            return False
        return True
