"""OpenAI-compatible ``/v1/chat/completions`` and ``/v1/completions``, streamed or not, and
the newer APIs vLLM serves beside them: OpenAI's Responses (``/v1/responses``, see
:mod:`.responses`) and Anthropic's Messages (``/v1/messages``, see :mod:`.messages`).

Works against vLLM, LMDeploy, sageLLM's gateway, SGLang, TGI's OpenAI routes and OpenAI
itself. Streaming requests always ask for ``stream_options.include_usage`` so output tokens
are counted by the server, not guessed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from time import perf_counter
from typing import Any, ClassVar

import orjson

from sagellm_users._backends.answer import (
    DONE_GRACE_S,
    ErrorBody,
    EventParser,
    event_reader,
    status_error,
)
from sagellm_users._backends.base import (
    Api,
    Chunk,
    Completion,
    GenerationRequest,
    HealthStatus,
    Usage,
    collect_completion,
)
from sagellm_users._backends.batch import BatchMixin
from sagellm_users._backends.http import HttpExchange, HttpTransport, Timeouts
from sagellm_users._backends.json_event import load_object
from sagellm_users._backends.json_event import raise_error_object as _raise_error_object
from sagellm_users._backends.messages import (
    build_messages_payload,
    parse_messages_body,
    parse_messages_event,
)
from sagellm_users._backends.responses import (
    build_responses_payload,
    parse_responses_body,
    parse_responses_event,
)
from sagellm_users._closing import Closeable
from sagellm_users._errors import (
    ConfigError,
    HTTPStatusError,
    LLMError,
    MalformedEventError,
    excerpt,
)
from sagellm_users._limits import ReadLimits

__all__ = [
    "OpenAIClient",
    "OpenAIStream",
    "build_payload",
    "load_object",
    "parse_event",
    "parse_model_list",
]

_PATHS: dict[str, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}
_JSON = {"Content-Type": "application/json"}
_STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}


def build_payload(
    request: GenerationRequest, *, min_tokens_field: str = "min_tokens"
) -> dict[str, Any]:
    """The JSON body for ``request``; ``extra_body`` is applied last and wins.

    ``min_tokens_field`` is the server's name for a minimum output length (vLLM's
    ``min_tokens``, LMDeploy's ``min_new_tokens``).
    """
    payload: dict[str, Any] = {"model": request.model}
    if request.api == "chat":
        messages = request.messages
        if messages is None:
            messages = [{"role": "user", "content": request.prompt or ""}]
        payload["messages"] = messages
    else:
        payload["prompt"] = request.prompt if request.prompt is not None else request.prompt_text()
    if request.max_tokens is not None:
        payload["max_tokens"] = request.max_tokens
    if request.min_tokens is not None:
        payload[min_tokens_field] = request.min_tokens
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.ignore_eos:
        payload["ignore_eos"] = True
    payload["stream"] = request.stream
    if request.stream:
        payload["stream_options"] = {"include_usage": True}
    payload.update(request.extra_body)
    return payload


def _usage(raw: Any) -> Usage | None:
    """OpenAI's usage object, with the details vLLM fills when asked: reasoning tokens (a
    server with a reasoning parser) and cached prompt tokens (a server started with
    ``--enable-prompt-tokens-details``)."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    usage = Usage(
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )
    out_details, in_details = raw.get("completion_tokens_details"), raw.get("prompt_tokens_details")
    if out_details or in_details:
        reasoning = _detail(out_details, "reasoning_tokens")
        cached = _detail(in_details, "cached_tokens")
        usage = Usage(usage.prompt_tokens, usage.completion_tokens, reasoning, cached)
    return usage


def _detail(details: Any, key: str) -> int | None:
    value = details.get(key) if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_event(data: bytes, t: float) -> Chunk:
    """One SSE event's JSON (chat or completions) as a :class:`Chunk` stamped ``t``.

    This runs once per streamed event, the client's hottest path: each choice is read in one
    pass (its text, whether it is a decode step, its finish reason), and a well-formed event
    costs two Python calls (this one and :func:`_read_streamed_choices`) beside the JSON
    parser's.
    """
    try:
        obj = _loads(data)
    except orjson.JSONDecodeError:
        obj = load_object(data, "stream event")  # raises, naming what is wrong
    if type(obj) is not dict:
        obj = load_object(data, "stream event")
    if "error" in obj or obj.get("object") == "error":
        _raise_error_object(obj)
    rid = obj.get("id")
    chunk = Chunk(t, response_id=rid if isinstance(rid, str) else None)
    usage = obj.get("usage")
    if usage:
        chunk.usage = _usage(usage)
    choices = obj.get("choices")
    if not choices:
        return chunk  # a usage-only event (``choices: []``): no decode step
    if type(choices) is not list:
        raise MalformedEventError(f"'choices' is not a list: {excerpt(data)!r}")
    _read_streamed_choices(choices, chunk, data)
    return chunk


def _read_streamed_choices(choices: list[Any], chunk: Chunk, data: bytes) -> None:
    """Each choice in one pass: its text, whether it is a decode step, its finish reason;
    non-text output (reasoning, tools, token ids) still counts as output."""
    texts: list[str] = []
    for choice in choices:
        if type(choice) is not dict:
            raise MalformedEventError(f"a choice is not an object: {excerpt(data)!r}")
        reason = choice.get("finish_reason")
        token_ids = choice.get("token_ids")
        delta = choice.get("delta")
        if type(delta) is dict:
            content = delta.get("content")
            if content:
                texts.append(content)
                chunk.step = True
            elif (thought := delta.get("reasoning") or delta.get("reasoning_content")) or (
                token_ids or delta.get("tool_calls")
            ):
                chunk.has_output = chunk.step = True
                chunk.reasoning = bool(thought) or chunk.reasoning
            elif content is None and reason:
                pass  # the end alone, no token: OpenAI's `"delta": {}`, or sageLLM's gateway's
                # `"content": null`; vLLM's last step carries its token (`"content": ""`
                # for EOS)
            elif "role" not in delta or reason:
                chunk.step = True
                # empty reasoning: a reasoning token whose text is held back
                chunk.reasoning = (
                    delta.get("reasoning") == ""
                    or delta.get("reasoning_content") == ""
                    or chunk.reasoning
                )
            # else chat's opening chunk: the role and no token. vLLM sends it as the first
            # token arrives, ahead of that token's own chunk, so it is neither TTFT nor a
            # decode step; a chunk naming the role beside output or a finish reason is a step.
        else:  # completions: the text, if any, is the choice's own
            chunk.step = True
            text = choice.get("text")
            if text:
                texts.append(text)
        if token_ids:
            chunk.has_output = True
        if reason:
            chunk.finish_reason = reason
    if texts:
        chunk.text = texts[0] if len(texts) == 1 else "".join(texts)
        chunk.has_output = True


_loads = orjson.loads


def _response_id(obj: dict[str, Any]) -> str | None:
    rid = obj.get("id")
    return rid if isinstance(rid, str) else None


def _read_choice(
    choice: dict[str, Any], chunk: Chunk, texts: list[str], key: str = "delta"
) -> None:
    """Collect one choice's text; non-text output (reasoning, tools) still counts.

    Chat puts the output under ``delta`` when streamed and ``message`` when not;
    completions put it in ``text`` either way.
    """
    delta = choice.get(key)
    if isinstance(delta, dict):
        content = delta.get("content")
        if content:
            texts.append(content)
        elif delta.get("reasoning_content") or delta.get("reasoning") or delta.get("tool_calls"):
            chunk.has_output = True
    else:
        text = choice.get("text")
        if text:
            texts.append(text)
    if choice.get("token_ids"):
        chunk.has_output = True
    reason = choice.get("finish_reason")
    if reason:
        chunk.finish_reason = reason


def _parse_body(data: bytes, t: float) -> Chunk:
    """A non-streamed answer: the whole text arrives at once, as one chunk."""
    obj = load_object(data, "response body")
    _raise_error_object(obj)
    chunk = Chunk(t, usage=_usage(obj.get("usage")), response_id=_response_id(obj))
    texts: list[str] = []
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict):
            _read_choice(choice, chunk, texts, key="message")
    chunk.text = "".join(texts)
    chunk.has_output = chunk.has_output or bool(texts)
    return chunk


def parse_model_list(body: bytes) -> list[str]:
    """Model ids from an OpenAI model list (``GET /v1/models``), in the server's order."""
    try:
        data = orjson.loads(body).get("data")
        return [str(item["id"]) for item in data]
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        raise MalformedEventError(
            f"/v1/models did not return an OpenAI model list: {excerpt(body)!r}"
        ) from None


class OpenAIStream(Closeable):
    """One request in flight; see :class:`sagellm_users._backends.base.ResponseStream`.

    The parsers default to the OpenAI formats; LMDeploy's ``/generate`` passes its own.
    """

    __slots__ = (
        "_exchange",
        "_parse_body",
        "_parse_event",
        "_stream",
        "connect_s",
        "status",
        "t_done",
        "t_send",
        "times",
    )

    def __init__(
        self,
        exchange: HttpExchange,
        stream: bool,
        event_parser: EventParser = parse_event,
        body_parser: EventParser = _parse_body,
    ) -> None:
        self._exchange = exchange
        self._stream = stream
        self._parse_event = event_parser
        self._parse_body = body_parser
        self.t_send: float | None = None
        self.connect_s: float | None = None
        self.times = exchange.times
        self.t_done: float | None = None
        self.status: int | None = None

    def __iter__(self) -> Iterator[Chunk]:
        exchange = self._exchange
        try:
            try:
                exchange.send()
            finally:
                self.t_send, self.connect_s = exchange.t_send, exchange.connect_s
            self.status = exchange.status
            if exchange.status is None or not 200 <= exchange.status < 300:
                raise status_error(
                    exchange.status, exchange.reason, exchange.headers, _read_error_body(exchange)
                )
            if self._stream:
                yield from self._iter_events(exchange, self._parse_event)
            else:
                body = exchange.read_body(exchange.limits.event)
                yield self._parse_body(body, exchange.t_done or perf_counter())
        finally:
            exchange.close()
            self.t_done = exchange.t_done or perf_counter()

    @staticmethod
    def _iter_events(exchange: HttpExchange, parse: EventParser) -> Iterator[Chunk]:
        reader = event_reader(parse, exchange.limits.event)
        feed = reader.feed
        for t, data in exchange.iter_body():
            yield from feed(t, data)
            if reader.error is not None:
                raise reader.error
            if reader.done:
                # The request is complete here, whatever follows: the connection is
                # reused only if the body's end comes promptly (see end_early).
                exchange.end_early(t, DONE_GRACE_S)
                return
        raise reader.unfinished()

    @property
    def answered(self) -> bool:
        """The stream reached ``[DONE]``: its tokens and timings are final even while the
        connection still waits for the body's end (a stop then cancels nothing)."""
        return self._exchange.answered

    def close(self) -> None:
        self._exchange.close()


def _read_error_body(exchange: HttpExchange) -> ErrorBody:
    """The start of an error body, for its excerpt (see :class:`ErrorBody`)."""
    error_body = ErrorBody(exchange.limits.error_body)
    try:
        for _, data in exchange.iter_body():
            if error_body.add(data):
                exchange.close()
                break
    except LLMError:
        pass
    return error_body


class OpenAIClient(BatchMixin, Closeable):
    """A client for one OpenAI-compatible server.

    ``api_key`` falls back to ``OPENAI_API_KEY``; it is sent as a Bearer token and never
    appears in ``repr``, errors or logs. ``headers`` are added to every request.
    ``eager_connections`` opens that many connections now (and fails now if the server
    cannot be reached); by default the pool opens them as requests need them.
    ``max_idle`` caps the idle connections kept for reuse; ``limits`` how much of a
    response is held (:class:`~sagellm_users._limits.ReadLimits`). ``model`` is what a
    request without one asks for; by default the first model the server lists (asked once).
    """

    backend = "openai"
    API_KEY_ENVS: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    """Environment variables read, in order, when no ``api_key`` is given."""
    MIN_TOKENS_FIELD: ClassVar[str] = "min_tokens"
    PATHS: ClassVar[Mapping[str, str]] = _PATHS

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        verify: bool | str = True,
        eager_connections: int = 0,
        max_idle: int = 256,
        limits: ReadLimits | None = None,
        model: str | None = None,
    ) -> None:
        self._model = model or None
        self.transport = HttpTransport(
            base_url,
            timeouts=timeouts,
            headers=self.request_headers(headers, api_key),
            verify=verify,
            max_idle=max_idle,
            limits=limits,
        )
        self.base_url = base_url
        if eager_connections:
            self.transport.open_connections(eager_connections)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    # -- the dialect: how this server family is spoken to, shared with the asyncio client
    MODEL_ROUTES: ClassVar[tuple[str, ...]] = ("/v1/models",)
    """Routes asked in order for the served models; the first that names any answers."""
    VERSION_ROUTE: ClassVar[str | None] = None
    """A route whose JSON object has the server's ``version``, where the server has one."""
    STREAM_REFUSED: ClassVar[Mapping[str, str]] = {}
    """APIs this server family refuses to stream, each with what it answers: a streamed
    load test on one is refused before it starts."""

    @classmethod
    def endpoint_path(cls, api: Api) -> str:
        try:
            return cls.PATHS[api]
        except KeyError:
            apis = ", ".join(sorted(cls.PATHS))
            raise ConfigError(
                f"the {cls.backend} backend has no {api!r} API: choose one of {apis}"
            ) from None

    @classmethod
    def build_payload(cls, request: GenerationRequest) -> dict[str, Any]:
        """The request body in this server's dialect (the newer APIs' bodies are theirs)."""
        api = request.api
        if api == "responses":
            return build_responses_payload(request)
        if api == "messages":
            return build_messages_payload(request)
        return build_payload(request, min_tokens_field=cls.MIN_TOKENS_FIELD)

    @classmethod
    def parsers(cls, api: Api) -> tuple[EventParser, EventParser]:
        """How this server's answers on ``api`` are read: (stream event, whole body)."""
        if api == "responses":
            return parse_responses_event, parse_responses_body
        if api == "messages":
            return parse_messages_event, parse_messages_body
        return parse_event, _parse_body

    @classmethod
    def models_from(cls, route: str, status: int, body: bytes) -> list[str]:
        """The model ids in the answer to ``GET route`` (one of :attr:`MODEL_ROUTES`)."""
        if status != 200:
            raise HTTPStatusError(status, "", body)
        return parse_model_list(body)

    @classmethod
    def version_from(cls, status: int, body: bytes) -> str | None:
        """The version in the answer to ``GET VERSION_ROUTE``; None when it has none."""
        if status != 200:
            return None
        try:
            value = orjson.loads(body).get("version")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return None if value is None else str(value)

    @classmethod
    def api_key_from_env(cls) -> str | None:
        """The first of :attr:`API_KEY_ENVS` that is set."""
        return next((os.environ[v] for v in cls.API_KEY_ENVS if os.environ.get(v)), None)

    @classmethod
    def request_headers(
        cls, headers: Mapping[str, str] | None, api_key: str | None
    ) -> dict[str, str]:
        """The headers every request carries: ``headers``, with the API key (``api_key``,
        else the environment's; an empty string sends none) as a bearer token unless
        ``headers`` already authorize."""
        all_headers = dict(headers or {})
        key = cls.api_key_from_env() if api_key is None else api_key
        if key:
            all_headers.setdefault("Authorization", f"Bearer {key}")
        return all_headers

    def default_model(self) -> str:
        """The model of requests that name none: the client's ``model``, else the first
        model the server lists (asked once; every server answers ``"model": ""`` with 404)."""
        if self._model is None:
            self._model = self.first_model(self.base_url, self.list_models())
        return self._model

    @staticmethod
    def first_model(base_url: str, models: list[str]) -> str:
        """The model a request that names none is sent to: the first the server lists."""
        if not models:
            raise ConfigError(
                f"{base_url} lists no model: give the request a model, or the client one "
                "(model=...)"
            )
        return models[0]

    def stream(self, request: GenerationRequest) -> OpenAIStream:
        """Prepare ``request``; iterating the result sends it and yields its chunks."""
        if not request.model:
            request = replace(request, model=self.default_model())
        path = self.endpoint_path(request.api)
        body = orjson.dumps(self.build_payload(request))
        headers = _STREAM_HEADERS if request.stream else _JSON
        exchange = self.transport.exchange("POST", path, body, headers)
        event_parser, body_parser = self.parsers(request.api)
        return OpenAIStream(exchange, request.stream, event_parser, body_parser)

    def generate(self, request: GenerationRequest) -> Completion:
        """Run ``request`` to the end and return the whole text with its timings."""
        return collect_completion(self.stream(request))

    def get(self, path: str) -> tuple[int, bytes]:
        """``GET path`` (from the server root): status and body."""
        return self.request("GET", path)

    def request(self, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        """One plain request (JSON ``payload`` when given): status and body."""
        body = None if payload is None else orjson.dumps(payload)
        exchange = self.transport.exchange(method, path, body, _JSON if body else None)
        try:
            exchange.send()
            data = exchange.read_body(exchange.limits.event)
        finally:
            exchange.close()
        return exchange.status or 0, data

    def list_models(self) -> list[str]:
        """Model ids the server serves, in its order (see :attr:`MODEL_ROUTES`)."""
        models: list[str] = []
        for route in self.MODEL_ROUTES:
            models = self.models_from(route, *self.get(route))
            if models:
                break
        return models

    def health_check(self) -> HealthStatus:
        """``/health`` when the server has it (vLLM, LMDeploy), then the model list."""
        endpoint = self.transport.url("/health")
        started = perf_counter()
        try:
            status, body = self.get("/health")
            if status == 404:  # plain OpenAI-compatible servers have no /health
                endpoint = self.transport.url("/v1/models")
            elif status != 200:
                raise HTTPStatusError(status, "", body)
            models = self.list_models()
        except LLMError as exc:
            ms = (perf_counter() - started) * 1e3
            return HealthStatus(False, endpoint, latency_ms=ms, error=str(exc), pool=self.pool())
        ms = (perf_counter() - started) * 1e3
        return HealthStatus(True, endpoint, models, ms, version=self.version(), pool=self.pool())

    def version(self) -> str | None:
        """The server's version where it has a route for it; None otherwise."""
        if self.VERSION_ROUTE is None:
            return None
        try:
            return self.version_from(*self.get(self.VERSION_ROUTE))
        except LLMError:
            return None

    def pool(self) -> dict[str, int | bool]:
        """The connection pool's state, for health checks and diagnostics."""
        return asdict(self.transport.pool_state())

    def close(self) -> None:
        self.transport.close()
