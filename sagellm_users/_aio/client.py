"""The asyncio face of the HTTP clients, for programs outside Locust.

One :class:`AsyncClient` speaks any backend's dialect (``openai``, ``vllm``, ``sagellm``,
``lmdeploy``): the routes, payloads, event parsers and model discovery are the gevent
clients' own class methods, the bytes are parsed by the same sans-I/O core, and a request's
record is folded by the same function the Locust users use, so a TTFT here is a TTFT there.
Nothing here imports Locust or patches anything: a plain ``asyncio.run`` program can use it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, replace
from time import perf_counter
from types import TracebackType
from typing import Any, Self, TypeVar

import orjson

from sagellm_users._aio.transport import AsyncExchange, AsyncHttpTransport
from sagellm_users._backends.answer import DONE_GRACE_S, ErrorBody, event_reader, status_error
from sagellm_users._backends.base import (
    Api,
    Chunk,
    Completion,
    CompletionParts,
    GenerationRequest,
    HealthStatus,
    HttpTimes,
    batch_timeout,
    check_batch_args,
)
from sagellm_users._backends.endpoint import Timeouts
from sagellm_users._backends.lmdeploy import LMDeployClient
from sagellm_users._backends.openai import OpenAIClient
from sagellm_users._backends.sagellm import SageLLMClient
from sagellm_users._backends.vllm import VLLMClient
from sagellm_users._errors import ConfigError, HTTPStatusError, LLMError
from sagellm_users._limits import ReadLimits
from sagellm_users._metrics.folding import fold_chunks
from sagellm_users._metrics.record import RequestRecord
from sagellm_users._redact import scrub_secrets

__all__ = ["DIALECTS", "AsyncClient", "AsyncResponseStream"]

DIALECTS: dict[str, type[OpenAIClient]] = {
    "lmdeploy": LMDeployClient,
    "openai": OpenAIClient,
    "sagellm": SageLLMClient,
    "vllm": VLLMClient,
}
"""The backends an AsyncClient speaks; each class is used for its dialect only (class
methods), never instantiated here."""

T = TypeVar("T")
_JSON = {"Content-Type": "application/json"}
_STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}


class AsyncResponseStream:
    """One request in flight: ``async for chunk in stream`` sends it and yields its chunks.

    Creating one does no I/O. As the gevent stream, ``t_send``, ``connect_s``, ``t_done``
    and ``status`` stay readable after the iteration ends, also when it raised; ``model``
    is the model asked (the server's first, when the request named none). ``async with``
    closes it on the way out.
    """

    def __init__(self, client: AsyncClient, request: GenerationRequest) -> None:
        self._client = client
        self._request = request
        self._exchange: AsyncExchange | None = None
        self._chunks: AsyncIterator[Chunk] | None = None
        self.model = request.model
        self.t_send: float | None = None
        self.connect_s: float | None = None
        self.times: HttpTimes | None = None
        self.t_done: float | None = None
        self.status: int | None = None

    def __aiter__(self) -> AsyncIterator[Chunk]:
        if self._chunks is None:
            self._chunks = self._run()
        return self._chunks

    async def _run(self) -> AsyncIterator[Chunk]:
        request = self._request
        if not request.model:
            request = replace(request, model=await self._client.default_model())
            self.model = request.model
        exchange = self._exchange = self._client._exchange_for(request)
        self.times = exchange.times
        event_parser, body_parser = self._client.dialect.parsers(request.api)
        try:
            try:
                await exchange.send()
            finally:
                self.t_send, self.connect_s = exchange.t_send, exchange.connect_s
            self.status = exchange.status
            if exchange.status is None or not 200 <= exchange.status < 300:
                error_body = await _read_error_body(exchange)
                raise status_error(exchange.status, exchange.reason, exchange.headers, error_body)
            if not request.stream:
                body = await exchange.read_body(exchange.limits.event)
                yield body_parser(body, exchange.t_done or perf_counter())
                return
            reader = event_reader(event_parser, exchange.limits.event)
            async for t, data in exchange.iter_body():
                for chunk in reader.feed(t, data):
                    yield chunk
                if reader.error is not None:
                    raise reader.error
                if reader.done:
                    await exchange.end_early(t, DONE_GRACE_S)
                    return
            raise reader.unfinished()
        finally:
            exchange.close()
            self.t_done = exchange.t_done or perf_counter()

    @property
    def answered(self) -> bool:
        """``[DONE]`` was read: tokens and timings are final."""
        return self._exchange is not None and self._exchange.answered

    async def aclose(self) -> None:
        chunks = self._chunks
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()
        if self._exchange is not None:
            self._exchange.close()
        if self.t_send is not None and self.t_done is None:
            self.t_done = perf_counter()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _read_error_body(exchange: AsyncExchange) -> ErrorBody:
    error_body = ErrorBody(exchange.limits.error_body)
    try:
        async for _, data in exchange.iter_body():
            if error_body.add(data):
                exchange.close()
                break
    except LLMError:
        pass
    return error_body


class AsyncClient:
    """A client for one server, for asyncio programs::

        async with AsyncClient("http://127.0.0.1:8000", backend="vllm") as client:
            completion = await client.generate(GenerationRequest(prompt="Hi", max_tokens=16))

    The options are the gevent clients' (``api_key`` falls back to the backend's key
    variables and never appears in ``repr``, errors or logs). A client belongs to the event
    loop it first runs in.
    """

    def __init__(
        self,
        base_url: str,
        *,
        backend: str = "openai",
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        verify: bool | str = True,
        max_idle: int = 256,
        limits: ReadLimits | None = None,
        model: str | None = None,
    ) -> None:
        try:
            self.dialect = DIALECTS[backend]
        except KeyError:
            known = ", ".join(sorted(DIALECTS))
            raise ConfigError(f"unknown backend {backend!r}: choose one of {known}") from None
        self.backend = backend
        self.base_url = base_url
        self.transport = AsyncHttpTransport(
            base_url,
            timeouts=timeouts,
            headers=self.dialect.request_headers(headers, api_key),
            verify=verify,
            max_idle=max_idle,
            limits=limits,
        )
        self._model = model or None
        self._model_lock: asyncio.Lock | None = None
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r}, backend={self.backend!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close idle connections; a stream still in flight closes its own at its end."""
        self.transport.close()

    def endpoint_path(self, api: Api) -> str:
        return self.dialect.endpoint_path(api)

    async def default_model(self) -> str:
        """The model of requests that name none: the client's ``model``, else the first
        model the server lists (asked once, however many requests wait for it)."""
        if self._model is None:
            if self._model_lock is None:
                self._model_lock = asyncio.Lock()
            async with self._model_lock:
                if self._model is None:
                    self._model = self.dialect.first_model(self.base_url, await self.list_models())
        return self._model

    def stream(self, request: GenerationRequest) -> AsyncResponseStream:
        """Prepare ``request``; iterating the result sends it and yields its chunks."""
        self.dialect.endpoint_path(request.api)  # an API the backend lacks fails here
        return AsyncResponseStream(self, request)

    def _exchange_for(self, request: GenerationRequest) -> AsyncExchange:
        dialect = self.dialect
        path = dialect.endpoint_path(request.api)
        body = orjson.dumps(dialect.build_payload(request))
        headers = _STREAM_HEADERS if request.stream else _JSON
        return self.transport.exchange("POST", path, body, headers)

    async def generate(self, request: GenerationRequest) -> Completion:
        """Run ``request`` to the end: the whole text with its timings."""
        stream = self.stream(request)
        parts = CompletionParts()
        async with stream:
            async for chunk in stream:
                parts.add(chunk)
        assert stream.t_done is not None
        return parts.completion(stream.t_send, stream.t_done)

    async def measure(self, request: GenerationRequest) -> RequestRecord:
        """Run ``request`` and return its record, with every metric the load test reports
        (``ttft``, ``itl``, ``tpot``, ``e2e``, token counts), defined as there. Never
        raises for a failed request: the record's ``status`` is ``"error"`` and
        ``error_message`` says why."""
        record = RequestRecord(
            request_id=next(self._ids),
            user=type(self).__name__,
            backend=self.dialect.backend,
            api=request.api,
            name=self.dialect.endpoint_path(request.api)
            if request.api in self.dialect.PATHS
            else request.api,
            model=request.model,
            stream=request.stream,
            wall_start=time.time(),
            t_start=perf_counter(),
            prompt_chars=len(request.prompt_text()),
        )
        chunks: list[Chunk] = []
        stream: AsyncResponseStream | None = None
        try:
            stream = self.stream(request)
            async with stream:
                async for chunk in stream:
                    chunks.append(chunk)
        except (LLMError, ConfigError) as exc:
            record.status = "error"
            record.error_class = type(exc).__name__
            record.error_message = scrub_secrets(str(exc))
        finally:
            fold_chunks(chunks, record)
            if stream is not None:
                record.model = stream.model
                record.t_send = stream.t_send
                record.take_http_times(stream.connect_s, stream.times)
                record.t_done, record.http_status = stream.t_done, stream.status
            if record.t_done is None:
                record.t_done = perf_counter()
        return record

    async def generate_batch(
        self,
        requests: Iterable[GenerationRequest],
        *,
        max_concurrent: int = 8,
        timeout: float | None = None,
    ) -> list[Completion]:
        """Send ``requests``, at most ``max_concurrent`` at a time, each within ``timeout``
        seconds; the results in input order, a failure as a Completion with ``error`` set."""
        return await _run_batch(self.generate, Completion.failed, requests, max_concurrent, timeout)

    async def measure_batch(
        self,
        requests: Iterable[GenerationRequest],
        *,
        max_concurrent: int = 8,
        timeout: float | None = None,
    ) -> list[RequestRecord]:
        """:meth:`measure` over ``requests`` as :meth:`generate_batch` runs them."""

        def failed(exc: BaseException) -> RequestRecord:
            now = perf_counter()
            record = RequestRecord(
                request_id=next(self._ids),
                user=type(self).__name__,
                backend=self.dialect.backend,
                api="chat",
                name="",
                model="",
                stream=True,
                wall_start=time.time(),
                t_start=now,
                t_done=now,
                status="error",
                error_class=type(exc).__name__,
                error_message=scrub_secrets(str(exc)),
            )
            return record

        return await _run_batch(self.measure, failed, requests, max_concurrent, timeout)

    async def get(self, path: str) -> tuple[int, bytes]:
        """``GET path`` (from the server root): status and body."""
        return await self.request("GET", path)

    async def request(self, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        """One plain request (JSON ``payload`` when given): status and body."""
        body = None if payload is None else orjson.dumps(payload)
        exchange = self.transport.exchange(method, path, body, _JSON if body else None)
        try:
            await exchange.send()
            data = await exchange.read_body(exchange.limits.event)
        finally:
            exchange.close()
        return exchange.status or 0, data

    async def list_models(self) -> list[str]:
        """Model ids the server serves, in its order."""
        models: list[str] = []
        for route in self.dialect.MODEL_ROUTES:
            models = self.dialect.models_from(route, *await self.get(route))
            if models:
                break
        return models

    async def version(self) -> str | None:
        """The server's version where it has a route for it; None otherwise."""
        route = self.dialect.VERSION_ROUTE
        if route is None:
            return None
        try:
            return self.dialect.version_from(*await self.get(route))
        except LLMError:
            return None

    async def health_check(self) -> HealthStatus:
        """``/health`` when the server has it (vLLM, LMDeploy), then the model list."""
        endpoint = self.transport.url("/health")
        started = perf_counter()
        try:
            status, body = await self.get("/health")
            if status == 404:  # plain OpenAI-compatible servers have no /health
                endpoint = self.transport.url("/v1/models")
            elif status != 200:
                raise HTTPStatusError(status, "", body)
            models = await self.list_models()
        except LLMError as exc:
            ms = (perf_counter() - started) * 1e3
            return HealthStatus(False, endpoint, latency_ms=ms, error=str(exc), pool=self.pool())
        ms = (perf_counter() - started) * 1e3
        version = await self.version()
        return HealthStatus(True, endpoint, models, ms, version=version, pool=self.pool())

    def pool(self) -> dict[str, int | bool]:
        """The connection pool's state, for health checks and diagnostics."""
        return asdict(self.transport.pool_state())


async def _run_batch(
    run: Callable[[GenerationRequest], Awaitable[T]],
    failed: Callable[[BaseException], T],
    requests: Iterable[GenerationRequest],
    max_concurrent: int,
    timeout: float | None,
) -> list[T]:
    """``run`` over ``requests``, at most ``max_concurrent`` at once; results in input
    order, an exception (or the timeout) turned into a result by ``failed``."""
    check_batch_args(max_concurrent, timeout)
    slots = asyncio.Semaphore(max_concurrent)

    async def one(request: GenerationRequest) -> T:
        async with slots:
            try:
                async with asyncio.timeout(timeout):
                    result: T = await run(request)
                    return result
            except TimeoutError:
                assert timeout is not None
                return failed(batch_timeout(timeout))
            except Exception as exc:  # a batch returns failures, it never raises them
                return failed(exc)

    return list(await asyncio.gather(*(one(request) for request in requests)))
