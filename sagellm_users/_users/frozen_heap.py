"""Keeps the cyclic garbage collector from pausing the event loop while users run."""

from __future__ import annotations

import gc

from sagellm_users._users.service import Service

__all__ = ["GEN1_THRESHOLD", "GEN2_THRESHOLD", "FrozenHeap"]

GEN1_THRESHOLD = 0
"""What survives one young collection moves to the old generation (see FrozenHeap)."""
GEN2_THRESHOLD = 1000
"""Full collections 100x rarer than Python's default (10) while users run."""


class FrozenHeap(Service):
    """Keeps the cyclic GC from pausing the event loop once every user is running.

    Thousands of users mean millions of long-lived objects (greenlets, clients, options)
    and thousands of in-flight requests whose objects live for seconds; each collection
    walks the objects of the generations it collects, stamping every chunk read meanwhile
    that late. Measured at 5,000 streams (bench/load_bench.py --suite, scenario "scale"):

    * ``gc.freeze()`` moves what exists once spawning completes into a generation the
      collector skips, and a higher third threshold makes full collections rare: full
      collections of 100-300 ms every few seconds are gone (event delay p99 282 -> 8-11 ms);
    * a middle threshold of 0 sends what survives one young collection straight to the
      old generation. With Python's 10, the middle generation gathered every in-flight
      request's objects (~40,000) and each of its collections paused 16-18 ms; now a young
      collection walks what was allocated since the previous one (p99 6.8 -> 2.5 ms, and
      1.5 -> 0.7 ms once reads stopped allocating per wait).

    Nothing is leaked: requests' objects are freed by reference counting as before, cycles
    by the (rarer) full collections. All of it is undone when the test stops, back to the
    thresholds in force when the heap was frozen."""

    def __init__(self) -> None:
        self._saved: tuple[int, int, int] | None = None

    def all_spawned(self) -> None:
        self.freeze()

    def stop(self) -> None:
        self.thaw()

    def freeze(self) -> None:
        if self._saved is None:
            self._saved = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(self._saved[0], GEN1_THRESHOLD, GEN2_THRESHOLD)

    def thaw(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
        gc.unfreeze()
