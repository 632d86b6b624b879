"""Reading a gevent socket at the cost of one system call per read.

Why: a streamed LLM response arrives one small SSE event at a time, and gevent's
``socket.recv`` pays for each event three times over: a speculative ``recv`` that fails
with EAGAIN (a system call plus an exception), a ``Timeout`` object created, started and
cancelled around the wait, and the wait itself. Profiled at 25k events/s that was half of
the client's CPU. Here a read *waits first* when the last read drained the socket (the
usual case between tokens), then makes one ``recv`` on the underlying non-blocking socket;
and timeouts are not armed per read but by one lazy timer per request (see
:class:`~sagellm_users._backends.http.HttpExchange`), which wakes the reader only when a
deadline really passed.

Each read lands in one buffer per event loop and is copied out at its exact size. Why not
``recv(size)``: that allocates ``size`` bytes (64 KiB) for every read and shrinks the block
to the few hundred bytes an event has; at 20,000 reads a second the C heap fragments around
those remnants and never gives the space back (the soak's resident memory grew by 100
MiB/hour that way, against a flat line now). Copying out before anything else can run on
the loop makes one buffer safe for every reader on it.

Only plain TCP gevent sockets qualify (TLS needs the SSL layer's own reads); anything else
returns ``None`` from :meth:`CooperativeReader.for_socket` and keeps the portable path. The
module touches three attributes of gevent's socket (``_sock``, ``_read_event``, ``hub``),
stable across gevent 20-26; the tests run both paths.
"""

from __future__ import annotations

import socket
import ssl
import weakref
from collections.abc import Callable
from typing import Any

from gevent import getcurrent
from gevent import ssl as gssl

__all__ = ["READ_BUFFER_BYTES", "CooperativeReader", "Expired"]

READ_BUFFER_BYTES = 65536
"""The most one read returns (one per event loop: a loop runs one reader at a time)."""

_buffers: weakref.WeakKeyDictionary[Any, memoryview] = weakref.WeakKeyDictionary()
"""Event loop (gevent hub, one per OS thread) -> its read buffer."""


def _buffer_for(hub: Any) -> memoryview:
    view = _buffers.get(hub)
    if view is None:
        view = _buffers[hub] = memoryview(bytearray(READ_BUFFER_BYTES))
    return view


class Expired(Exception):
    """Internal: thrown into a waiting reader when its request's deadline passed."""


class CooperativeReader:
    """Reads one connection for one request; owns that request's deadline timer."""

    __slots__ = (
        "_buffer",
        "_drained",
        "_hub",
        "_owner",
        "_raw",
        "_switch",
        "_timer",
        "_watcher",
        "expired",
    )

    def __init__(self, raw: socket.socket, watcher: Any, hub: Any) -> None:
        self._raw = raw
        self._watcher = watcher
        self._hub = hub
        self._buffer = _buffer_for(hub)
        self._timer: Any = None
        self._owner: Any = None
        self._switch: Callable[[], Any] | None = None
        self._drained = True
        """The last read left nothing behind: wait before reading again."""
        self.expired = False

    @classmethod
    def for_socket(cls, sock: socket.socket) -> CooperativeReader | None:
        """A reader for a plain gevent TCP socket, else None (use ``sock.recv``)."""
        if isinstance(sock, ssl.SSLSocket | gssl.SSLSocket):
            return None
        raw = getattr(sock, "_sock", None)
        watcher = getattr(sock, "_read_event", None)
        hub = getattr(sock, "hub", None)
        if raw is None or watcher is None or hub is None or not hasattr(hub, "wait"):
            return None
        return cls(raw, watcher, hub)

    def recv(self, size: int) -> bytes:
        """One read of up to ``size`` bytes (at most :data:`READ_BUFFER_BYTES`); raises
        :class:`Expired` after :meth:`expire`."""
        raw, buffer = self._raw, self._buffer
        size = min(size, READ_BUFFER_BYTES)
        if self._drained:
            self._wait()
        while True:
            try:
                count = raw.recv_into(buffer, size)
            except BlockingIOError:
                self._wait()
                continue
            self._drained = count < size
            # Copied out before this greenlet can yield: the buffer is the loop's, not ours.
            return buffer[:count].tobytes()

    def _wait(self) -> None:
        """Sleep until the socket is readable: ``Hub.wait`` without its ``Waiter``.

        ``Hub.wait`` allocates a Waiter, a bound method and an argument tuple per wait; at
        thousands of open streams those live until the next token and are what Python's
        young-generation collections keep scanning (GC pauses of 16-18 ms at 5,000
        streams). The owning greenlet's ``switch`` is bound once instead. A stray switch
        into this greenlet is harmless: the read that follows sees EAGAIN and waits again;
        :meth:`expire` still reaches the waiter through ``Hub.cancel_wait``."""
        if self.expired:
            raise Expired
        current = getcurrent()
        if current is not self._owner:
            self._owner = current
            self._switch = current.switch
        watcher = self._watcher
        watcher.start(self._switch)
        try:
            self._hub.switch()
        finally:
            watcher.stop()

    # -- the request's deadline ------------------------------------------------------------
    def arm(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in the event loop after ``seconds`` (replacing any earlier)."""
        self.disarm()
        timer = self._hub.loop.timer(max(0.0, seconds))
        timer.start(callback)
        self._timer = timer

    def disarm(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    def expire(self) -> None:
        """From the timer: the deadline passed; wake the reader if it is waiting."""
        self.expired = True
        self.disarm()
        if self._watcher.callback is not None:
            self._hub.cancel_wait(self._watcher, Expired())
