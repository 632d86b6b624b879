"""A small HTTP/1.1 client built for timing streamed responses.

Why not ``requests`` or geventhttpclient: both buffer the body (``iter_content``/``read(n)``
wait for n bytes and merge SSE events, which destroys inter-token timing) and spend more CPU
per event. This client reads the socket directly, parses with llhttp (``httptools``), and
stamps every read with ``perf_counter()`` before any other work, so each event's time is the
moment its bytes were read. It opens gevent's sockets (what Locust's monkey-patching installs
anyway), so the same code is cooperative in a load test and in a plain script, where
``generate_batch`` runs requests concurrently on a gevent pool.

Connections are pooled per transport (one per concurrent request, as the load needs; at
most ``max_idle`` kept idle) and reused when a response was read to its end. Every transport
exception is mapped to :mod:`sagellm_users._errors` here and in :mod:`.exchange`, nowhere
else.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter

from gevent import socket as gsocket
from gevent import ssl as gssl
from gevent.monkey import get_original

from sagellm_users._backends.endpoint import Timeouts, parse_base_url, tls_context
from sagellm_users._backends.exchange import HttpExchange, os_reason
from sagellm_users._backends.http_core import encode_request, header_block
from sagellm_users._closing import Closeable
from sagellm_users._errors import ConfigError, ConnectError, ConnectTimeout
from sagellm_users._limits import ReadLimits
from sagellm_users._redact import register_header_secrets

__all__ = ["HttpExchange", "HttpTransport", "PoolState", "Timeouts", "parse_base_url"]

_poll = get_original("select", "poll")
"""The original ``poll`` (never yields to the hub; unlike ``select()`` it takes any file
descriptor, and thousands of users put most connections above 1023)."""
_READABLE = select.POLLIN


@dataclass(frozen=True, slots=True)
class PoolState:
    """A transport's connections right now, and how many it has opened in its life."""

    idle: int
    in_use: int
    opened: int
    max_idle: int
    closed: bool


class HttpTransport(Closeable):
    """A pool of keep-alive connections to one origin.

    The pool holds at most ``max_idle`` idle connections (a connection released beyond that
    is closed), so however long a client lives, what it keeps is bounded by that and by the
    requests in flight.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        max_idle: int = 256,
        limits: ReadLimits | None = None,
    ) -> None:
        if max_idle < 0:
            raise ConfigError(f"max_idle must be >= 0, got {max_idle}")
        self.origin = parse_base_url(base_url)
        self.timeouts = timeouts or Timeouts()
        self.limits = limits or ReadLimits()
        self.max_idle = max_idle
        self._idle: list[socket.socket] = []
        self._in_use = 0
        self._opened = 0
        self._closed = False
        self._ssl: ssl.SSLContext | None = None
        if self.origin.scheme == "https":
            # gevent's, so TLS connections are cooperative with or without monkey-patching
            self._ssl = tls_context(verify, gssl.SSLContext)
        register_header_secrets(headers or {})  # an echo of any of them is scrubbed from errors
        self._header_block = header_block(self.origin.host_header, headers)

    def __repr__(self) -> str:  # never shows headers: they may hold an API key
        o = self.origin
        return f"HttpTransport({o.scheme}://{o.host_header}{o.prefix}, idle={len(self._idle)})"

    def url(self, path: str) -> str:
        return self.origin.url(path)

    def full_path(self, path: str) -> str:
        """See :meth:`Origin.target`."""
        return self.origin.target(path)

    def exchange(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpExchange:
        """Prepare a request; no I/O happens until :meth:`HttpExchange.send`."""
        if self._closed:
            raise ConnectError("transport is closed")
        request = encode_request(method, self.full_path(path), self._header_block, headers, body)
        return HttpExchange(self, request)

    def pool_state(self) -> PoolState:
        return PoolState(len(self._idle), self._in_use, self._opened, self.max_idle, self._closed)

    def open_connections(self, count: int) -> None:
        """Open up to ``count`` idle connections now (an eager pool start), so the first
        requests do not pay for connection setup; raises like a request would."""
        for _ in range(min(count, self.max_idle) - len(self._idle)):
            self._idle.append(self._connect()[0])

    def _acquire(self) -> tuple[socket.socket, float | None, float | None]:
        """A pooled connection (setup times None) or a new one, with its setup seconds (TCP
        connect plus TLS handshake) and, over https, the handshake's part of them.

        An idle connection with anything to read has been closed (or reset) by the server,
        or holds bytes nobody asked for: it is dropped before use, so a request is never
        sent on a connection already known to be dead and never needs a silent resend."""
        idle = self._idle
        while idle:
            sock = idle.pop()
            poller = _poll()  # cheaper than MSG_PEEK, whose idle case raises (bench/)
            poller.register(sock.fileno(), _READABLE)
            if poller.poll(0):  # readable, hung up or in error
                sock.close()
                continue
            self._in_use += 1
            return sock, None, None
        return self._acquire_new()

    def _acquire_new(self) -> tuple[socket.socket, float, float | None]:
        started = perf_counter()
        sock, tls_s = self._connect()
        self._in_use += 1
        return sock, perf_counter() - started, tls_s

    def _connect(self) -> tuple[socket.socket, float | None]:
        """A new connection and its TLS handshake's seconds (None over plain TCP)."""
        o = self.origin
        try:
            sock: socket.socket = gsocket.create_connection(
                (o.host, o.port), timeout=self.timeouts.connect
            )
        except TimeoutError:
            raise ConnectTimeout(
                f"connecting to {o.host_header} took longer than {self.timeouts.connect:g} s"
            ) from None
        except socket.gaierror as exc:
            raise ConnectError(f"cannot resolve host {o.host!r}: {exc.strerror}") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {o.host_header}: {os_reason(exc)}") from None
        tls_s: float | None = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                started = perf_counter()
                sock = self._ssl.wrap_socket(sock, server_hostname=o.host)
                tls_s = perf_counter() - started
        except TimeoutError:
            sock.close()
            raise ConnectTimeout(f"TLS handshake with {o.host_header} timed out") from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise ConnectError(f"TLS handshake with {o.host_header} failed: {exc}") from None
        self._opened += 1
        return sock, tls_s

    def _release(self, sock: socket.socket) -> None:
        """A request is done with ``sock`` and the connection can serve another."""
        self._in_use -= 1
        if self._closed or len(self._idle) >= self.max_idle:
            sock.close()
        else:
            self._idle.append(sock)

    def _discard(self, sock: socket.socket) -> None:
        """A request is done with ``sock`` and the connection cannot be reused."""
        self._in_use -= 1
        sock.close()

    def close(self) -> None:
        """Close idle connections now; busy ones close when their response ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()
