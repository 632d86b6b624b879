"""Start the mock server as a child process and wait until it is ready to serve.

Used by the locustfiles' embedded default target and by tests. Readiness is the server's
one JSON line on stdout, read with ``selectors`` and a deadline (no sleeping, no polling of
the port). Stderr is drained by a thread into a bounded tail, reported if startup fails.
The child runs with ``--exit-on-stdin-eof`` and a pipe as its stdin, so it exits when this
process does, however this process ends. It runs in its own session, so a Ctrl-C in the
terminal reaches only this process, which stops the server when it is done with it (a load
test's in-flight requests are then cancelled, not cut by a server that died first).

Works unchanged in a gevent monkey-patched process (as under Locust): ``selectors``,
``subprocess`` and ``threading`` are then gevent's cooperative versions.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["MockServerProcess", "MockServerStartError"]

_TAIL_LINES = 40
#: The directory holding the ``sagellm_users`` package, so the child imports this copy
#: even when the package is not installed.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class MockServerStartError(RuntimeError):
    """The mock server exited or timed out before reporting ready."""

    def __init__(self, message: str, *, stderr_tail: str = "", returncode: int | None = None):
        detail = message
        if stderr_tail.strip():
            detail += "\n--- mock server stderr (tail) ---\n" + stderr_tail.rstrip()
        super().__init__(detail)
        self.stderr_tail = stderr_tail
        self.returncode = returncode


class MockServerProcess:
    """A mock server in a child process: ``start()`` returns its URL, ``stop()`` ends it.

    ``extra_args`` are passed to ``python -m sagellm_users.mock_server`` after
    ``--port 0 --exit-on-stdin-eof``. Usable as a context manager.
    """

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        startup_timeout: float = 20.0,
        python: str = sys.executable,
    ) -> None:
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.python = python
        self.url: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._drain: threading.Thread | None = None

    @property
    def command(self) -> list[str]:
        """The command line the child is started with."""
        return [
            self.python,
            "-m",
            "sagellm_users.mock_server",
            "--port",
            "0",
            "--exit-on-stdin-eof",
            *self.extra_args,
        ]

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr."""
        return "".join(self._tail)

    def start(self) -> str:
        """Spawn the server, wait for its ready line, return (and store) its URL."""
        if self.process is not None:
            raise RuntimeError("MockServerProcess.start() called twice")
        env = dict(os.environ)
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + old if old else "")
        deadline = time.monotonic() + self.startup_timeout
        proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.process = proc
        assert proc.stderr is not None
        self._drain = threading.Thread(
            target=self._drain_stderr, args=(proc.stderr,), name="mock-server-stderr", daemon=True
        )
        self._drain.start()
        try:
            url = self._parse_ready(self._read_ready_line(proc, deadline))
        except BaseException:
            self.stop()
            raise
        self.url = url
        return url

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate the server (kill it if it lingers); idempotent. Returns its exit code."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._drain is not None:
            self._drain.join(timeout=2.0)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return proc.returncode

    def __enter__(self) -> MockServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # internals ----------------------------------------------------------------------------

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                self._tail.append(raw.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass

    def _fail(self, reason: str) -> MockServerStartError:
        proc = self.process
        assert proc is not None
        self.stop(timeout=2.0)
        return MockServerStartError(
            f"mock server ({' '.join(self.command)}) {reason} (exit status {proc.returncode})",
            stderr_tail=self.stderr_tail(),
            returncode=proc.returncode,
        )

    def _read_ready_line(self, proc: subprocess.Popen[bytes], deadline: float) -> bytes:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._fail(f"did not report ready within {self.startup_timeout:g} s")
                if not sel.select(remaining):
                    continue
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise self._fail("exited before it was ready")
                buf += chunk
        return buf.split(b"\n", 1)[0]

    def _parse_ready(self, line: bytes) -> str:
        try:
            doc: Any = json.loads(line)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("event") != "ready":
            raise self._fail(f"printed {line[:200]!r} instead of its ready line")
        url = doc.get("url")
        if not isinstance(url, str):
            raise self._fail(f"sent a ready line without a url: {line[:200]!r}")
        return url
