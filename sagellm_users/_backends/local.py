"""A client for an engine running in-process (in a child the worker owns), no HTTP.

It offers what every backend client offers (``stream``, ``generate``,
``generate_batch``, ``health_check``), so the users, the metrics and the reports treat an
in-process engine like any server. Each output chunk carries the engine's own timestamp
and exact token counts, so TTFT and per-token ITL are the engine's, not the pipe's.
"""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter
from typing import Any

from gevent.queue import Empty, Queue

from sagellm_users._backends.base import (
    Api,
    Chunk,
    Completion,
    GenerationRequest,
    HealthStatus,
    HttpTimes,
    Usage,
    collect_completion,
)
from sagellm_users._backends.batch import BatchMixin
from sagellm_users._backends.engine_process import EngineExited, EngineProcess
from sagellm_users._backends.http import Timeouts
from sagellm_users._closing import Closeable
from sagellm_users._errors import ConfigError, EngineError, ReadTimeout, TotalTimeout

__all__ = ["LocalEngineClient", "LocalStream"]

_APIS: tuple[Api, ...] = ("chat", "completions")


def _message(request: GenerationRequest) -> dict[str, Any]:
    return {
        "api": request.api,
        "prompt": request.prompt,
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "min_tokens": request.min_tokens,
        "temperature": request.temperature,
        "ignore_eos": request.ignore_eos,
        "extra": request.extra_body,
    }


class LocalStream(Closeable):
    """One request on the engine; see :class:`sagellm_users._backends.base.ResponseStream`.

    ``t_send`` is taken here just before the request is written to the engine's pipe;
    every chunk's ``t`` is the engine's stamp of that output. Closing a stream that has
    not finished aborts the request in the engine.
    """

    __slots__ = (
        "_engine",
        "_finished",
        "_request",
        "_rid",
        "_timeouts",
        "connect_s",
        "status",
        "t_done",
        "t_send",
    )
    times: HttpTimes | None = None
    """No HTTP in process: no phases."""

    def __init__(self, engine: EngineProcess, request: GenerationRequest, timeouts: Timeouts):
        self._engine = engine
        self._request = request
        self._timeouts = timeouts
        self._rid: int | None = None
        self._finished = False
        self.t_send: float | None = None
        self.connect_s: float | None = None
        self.t_done: float | None = None
        self.status: int | None = None

    def __iter__(self) -> Iterator[Chunk]:
        engine = self._engine
        request = self._request
        try:
            self.t_send = perf_counter()
            self._rid, channel = engine.open_request(_message(request))
            if request.stream:
                yield from self._outputs(channel)
            else:
                yield from self._whole(channel)
        finally:
            self.close()
            if self.t_done is None:
                self.t_done = perf_counter()

    def _next(self, channel: Queue[Any], deadline: float | None) -> dict[str, Any]:
        wait = self._timeouts.read
        if deadline is not None:
            left = deadline - perf_counter()
            if left <= 0:
                raise TotalTimeout(f"the request took longer than {self._timeouts.total:g} s")
            wait = min(wait, left)
        try:
            item = channel.get(timeout=wait)
        except Empty:
            if deadline is not None and perf_counter() >= deadline:
                raise TotalTimeout(
                    f"the request took longer than {self._timeouts.total:g} s"
                ) from None
            raise ReadTimeout(f"the engine sent nothing for {wait:g} s") from None
        if isinstance(item, EngineExited):
            raise EngineError(item.message)
        message: dict[str, Any] = item
        if message["ev"] == "error":
            self.t_done = float(message["t"])
            raise EngineError(
                f"the engine refused the request: {message.get('class')}: {message.get('message')}"
            )
        return message

    def _deadline(self) -> float | None:
        total = self._timeouts.total
        return None if total is None else perf_counter() + total

    def _outputs(self, channel: Queue[Any]) -> Iterator[Chunk]:
        deadline = self._deadline()
        while True:
            message = self._next(channel, deadline)
            if message["ev"] == "end":
                self._finished = True
                self.t_done = float(message["t"])
                return
            n = int(message["n"])
            text = message["text"]
            token = n > 0 or bool(text)
            yield Chunk(
                float(message["t"]),
                text,
                has_output=token,
                step=token,
                n_tokens=n,
                usage=Usage(message["pt"], message["ct"]),
                finish_reason=message["fin"],
            )

    def _whole(self, channel: Queue[Any]) -> Iterator[Chunk]:
        """``--no-stream``: the engine still streams; the caller sees one answer at the end."""
        texts: list[str] = []
        last: dict[str, Any] | None = None
        reason: str | None = None
        deadline = self._deadline()
        while True:
            message = self._next(channel, deadline)
            if message["ev"] == "end":
                break
            texts.append(message["text"])
            reason = message["fin"] or reason
            last = message
        self._finished = True
        self.t_done = t = float(message["t"])
        usage = Usage(last["pt"], last["ct"]) if last is not None else None
        text = "".join(texts)
        yield Chunk(
            t,
            text,
            has_output=bool(last and last["ct"]) or bool(text),
            usage=usage,
            finish_reason=reason,
        )

    def close(self) -> None:
        rid, self._rid = self._rid, None
        if rid is not None:
            self._engine.close_request(rid, abort=not self._finished)


class LocalEngineClient(BatchMixin, Closeable):
    """A client for one in-process engine; many clients may share one engine.

    Closing a client never stops the engine: the engine belongs to whoever started it
    (the test's runtime, or your code via :class:`EngineProcess`).
    """

    def __init__(self, engine: EngineProcess, timeouts: Timeouts | None = None) -> None:
        self.engine = engine
        self.backend = f"{engine.spec.engine}-local"
        self.timeouts = timeouts or Timeouts()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engine.spec.engine!r}, {self.engine.spec.model!r})"

    def endpoint_path(self, api: Api) -> str:
        if api not in _APIS:
            raise ConfigError(
                f"an in-process engine has no {api!r} API: choose chat or completions"
            )
        return f"in-process {api}"

    def stream(self, request: GenerationRequest) -> LocalStream:
        self.endpoint_path(request.api)
        return LocalStream(self.engine, request, self.timeouts)

    def generate(self, request: GenerationRequest) -> Completion:
        return collect_completion(self.stream(request))

    def list_models(self) -> list[str]:
        info = self.engine.info
        return [info.model] if info is not None else []

    def health_check(self) -> HealthStatus:
        started = perf_counter()
        info = self.engine.info
        endpoint = f"{self.engine.spec.engine} in-process ({self.engine.spec.model})"
        healthy = info is not None and self.engine.alive
        error = None
        if not healthy:
            error = (
                "the engine is not running"
                if info is not None
                else "the engine has not started (EngineProcess.start / wait_ready)"
            )
        return HealthStatus(
            healthy,
            endpoint,
            self.list_models(),
            (perf_counter() - started) * 1e3,
            error=error,
            version=info.version if info is not None else None,
            pool=self.pool(),
        )

    def pool(self) -> dict[str, int | bool]:
        """Requests in flight on the engine (there is no connection pool)."""
        return {"in_flight": self.engine.in_flight, "alive": self.engine.alive}

    def close(self) -> None:
        """Nothing to release: the engine outlives its clients."""
