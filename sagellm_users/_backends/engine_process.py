"""The parent's end of the engine host: one child process per in-process engine.

The child (:mod:`sagellm_users._engine_host`) runs the engine unpatched; this side spawns
it, reads its pipe from one greenlet (a cooperative read: the worker's other greenlets keep
running while the pipe is empty), and routes each output to the request it belongs to.
Output timestamps come from the child and are trusted only after a check at start that
the child's ``perf_counter()`` is this process's: the ready message's stamp must fall
between the spawn and its arrival here.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import gevent
import orjson
from gevent import subprocess as gsubprocess
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.os import make_nonblocking, nb_read, nb_write
from gevent.queue import Queue

from sagellm_users import _engine_host as engine_host
from sagellm_users._closing import Closeable
from sagellm_users._engine_host.wire import LineSplitter, encode
from sagellm_users._errors import EngineError, EngineStartError

__all__ = ["ENGINES", "EngineExited", "EngineInfo", "EngineProcess", "EngineSpec"]

ENGINES = ("lmdeploy", "sagellm", "vllm")
"""Engines the host can run (see ``_engine_host.host.ADAPTERS``)."""

_LOG_TAIL_LINES = 15


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Which engine to run, on which model, with which arguments and interpreter.

    ``engine_args`` go to the engine's own configuration (vLLM's ``AsyncEngineArgs``,
    LMDeploy's engine config); ``python`` is the interpreter the child runs under (one
    that can import the engine); ``log_path`` receives the child's stdout and stderr.
    """

    engine: str
    model: str
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    python: str = sys.executable
    log_path: str | None = None

    def key(self) -> str:
        return orjson.dumps(
            [self.engine, self.model, dict(self.engine_args), self.python],
            option=orjson.OPT_SORT_KEYS,
        ).decode()


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What the child said when its engine was ready."""

    engine: str
    version: str
    model: str
    pid: int
    start_s: float
    """Seconds from spawn to ready: the model load."""


class EngineExited:
    """Put on every open request's channel when the child ends."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class EngineProcess(Closeable):
    """Owns one engine child: start, route outputs, abort, stop."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.info: EngineInfo | None = None
        self.log_path = spec.log_path or str(
            Path(tempfile.gettempdir()) / f"sagellm-engine-{spec.engine}-{os.getpid()}.log"
        )
        self._proc: Any = None
        self._fd_to_child = -1
        self._fd_from_child = -1
        self._write_lock = Semaphore()
        self._channels: dict[int, Queue[Any]] = {}
        self._ids = itertools.count(1)
        self._ready = Event()
        self._fatal: str | None = None
        self._exit_message: str | None = None
        self._reader: gevent.Greenlet[[], None] | None = None
        self._spawned_at = 0.0
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the child; returns at once (see :meth:`wait_ready`)."""
        if self._proc is not None:
            return
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        host_dir = str(Path(engine_host.__file__).parent)
        argv = [
            self.spec.python,
            "-c",
            engine_host.BOOTSTRAP,
            host_dir,
            "--engine",
            self.spec.engine,
            "--model",
            self.spec.model,
            "--engine-args",
            orjson.dumps(dict(self.spec.engine_args)).decode(),
            "--fd-in",
            str(to_child_r),
            "--fd-out",
            str(from_child_w),
        ]
        try:
            log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
        except OSError as exc:
            raise EngineStartError(
                f"cannot write the engine log {self.log_path!r}: {exc}"
            ) from None
        try:
            self._spawned_at = perf_counter()
            self._proc = gsubprocess.Popen(
                argv,
                stdin=gsubprocess.DEVNULL,
                stdout=log,
                stderr=gsubprocess.STDOUT,
                pass_fds=(to_child_r, from_child_w),
                start_new_session=True,  # Ctrl-C reaches Locust, which stops the engine in order
            )
        except OSError as exc:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise EngineStartError(
                f"cannot run the engine's interpreter {self.spec.python!r}: {exc}; "
                "check --engine-python"
            ) from None
        finally:
            log.close()
        os.close(to_child_r)
        os.close(from_child_w)
        make_nonblocking(to_child_w)
        make_nonblocking(from_child_r)
        self._fd_to_child, self._fd_from_child = to_child_w, from_child_r
        self._reader = gevent.spawn(self._read_loop)

    def wait_ready(self, timeout: float) -> EngineInfo:
        """Block (cooperatively) until the engine has loaded; raise why it did not."""
        self._ready.wait(timeout)
        if self.info is not None:
            return self.info
        if self._fatal is not None:
            raise EngineStartError(f"the {self.spec.engine} engine did not start: {self._fatal}")
        if self._exit_message is not None:
            raise EngineStartError(
                f"the {self.spec.engine} engine process ended before it was ready "
                f"({self._exit_message}); last lines of {self.log_path}:\n{self.log_tail()}"
            )
        self.stop()
        raise EngineStartError(
            f"the {self.spec.engine} engine was not ready after {timeout:g} s "
            f"(raise --engine-start-timeout); last lines of {self.log_path}:\n{self.log_tail()}"
        )

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the child to shut its engine down; after ``timeout``, kill its process group."""
        proc = self._proc
        if proc is None or self._stopped:
            return
        self._stopped = True
        if proc.poll() is None:
            with contextlib.suppress(EngineError):
                self._send({"op": "shutdown"})
            try:
                proc.wait(timeout=timeout)
            except gsubprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except gsubprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
        # The engine's own subprocesses (vLLM's EngineCore) share the child's session.
        _signal_group(proc.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=5)
        for fd in (self._fd_to_child, self._fd_from_child):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd_to_child = self._fd_from_child = -1

    def close(self) -> None:
        self.stop()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            with open(self.log_path, "rb") as log:
                tail = deque(log, maxlen=lines)
        except OSError:
            return "(no log)"
        return b"".join(tail).decode("utf-8", "replace").rstrip() or "(empty log)"

    # -- requests ----------------------------------------------------------------------------
    def open_request(self, message: dict[str, Any]) -> tuple[int, Queue[Any]]:
        """Send one ``generate`` message; its outputs arrive on the returned queue."""
        if self._exit_message is not None:
            raise EngineError(self._died_message())
        rid = next(self._ids)
        channel: Queue[Any] = Queue()
        self._channels[rid] = channel
        message["op"] = "generate"
        message["id"] = rid
        try:
            self._send(message)
        except EngineError:
            self._channels.pop(rid, None)
            raise
        return rid, channel

    def close_request(self, rid: int, abort: bool) -> None:
        """Forget a request; ``abort`` tells the engine to stop generating it."""
        if self._channels.pop(rid, None) is not None and abort and self.alive:
            with contextlib.suppress(EngineError):
                self._send({"op": "abort", "id": rid})

    @property
    def in_flight(self) -> int:
        return len(self._channels)

    # -- pipes -------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        data = memoryview(encode(message))
        with self._write_lock:
            fd = self._fd_to_child
            if fd < 0:
                raise EngineError(self._died_message())
            try:
                while data:
                    data = data[nb_write(fd, data) :]
            except OSError as exc:  # EPIPE: the child is gone
                raise EngineError(f"cannot reach the engine process: {exc}") from None

    def _read_loop(self) -> None:
        splitter = LineSplitter()
        fd = self._fd_from_child
        try:
            while True:
                data = nb_read(fd, 1 << 16)
                if not data:
                    break
                for line in splitter.feed(data):
                    self._dispatch(orjson.loads(line))
        except OSError:
            pass
        finally:
            self._on_child_exit()

    def _dispatch(self, message: dict[str, Any]) -> None:
        ev = message.get("ev")
        if ev == "ready":
            t = float(message["t"])
            if not self._spawned_at <= t <= perf_counter():
                self._fatal = (
                    "its perf_counter() clock is not this process's, so its timestamps "
                    "cannot be compared with the send times here"
                )
                self._ready.set()
                return
            self.info = EngineInfo(
                engine=str(message.get("engine", self.spec.engine)),
                version=str(message.get("version", "")),
                model=str(message.get("model", self.spec.model)),
                pid=int(message.get("pid", 0)),
                start_s=t - self._spawned_at,
            )
            self._ready.set()
        elif ev == "fatal":
            self._fatal = str(message.get("message", "unknown reason"))
            self._ready.set()
        else:
            channel = self._channels.get(message.get("id", -1))
            if channel is not None:
                channel.put(message)

    def _on_child_exit(self) -> None:
        proc = self._proc
        code = proc.wait() if proc is not None else None
        self._exit_message = f"exit code {code}"
        self._ready.set()
        died = EngineExited(self._died_message())
        for channel in list(self._channels.values()):
            channel.put(died)

    def _died_message(self) -> str:
        return (
            f"the {self.spec.engine} engine process ended ({self._exit_message}); "
            f"last lines of {self.log_path}: {self.log_tail(3)}"
        )


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
