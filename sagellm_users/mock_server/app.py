"""Routes and request handling: what vLLM's OpenAI server would answer, and when.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, OpenAI's Responses API
(``POST /v1/responses``) and Anthropic's Messages API (``POST /v1/messages``) as vLLM serves
them, ``GET /v1/models``,
``GET /health``, ``GET /metrics`` (Prometheus text with vLLM's metric names), vLLM's
``POST /tokenize`` and ``GET /version``, LMDeploy's native ``POST /generate`` and a sageLLM
gateway's ``GET /info``. Like vLLM,
``--api-key`` guards every path under ``/v1`` (401 ``{"error":"Unauthorized"}``); unknown
paths get FastAPI's 404 ``{"detail":"Not Found"}`` and known paths with the wrong method a
405 with an ``allow`` header.

Injected faults (see :mod:`.faults`): the HTTP ones (500, 429, 404, reset, 502, echo_401,
and a gateway's huge_error, endless_error, huge_header) are answered at once without taking
a capacity slot; the others are admitted and strike inside the
response (see :mod:`.generation`). Each injected fault is counted in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable

import orjson

from .capacity import Admission
from .config import MockServerConfig
from .connection import HttpConnection, Request
from .faults import HTTP_FAULTS, STREAM_ONLY_FAULTS, Fault
from .gateway import EndlessErrorBody, huge_error_response, huge_header_response
from .gateway_bodies import bad_gateway_body, echo_unauthorized_body
from .generate_wire import GenerateStreamEncoder, generate_body, lmdeploy_error_body
from .generation import BodyRenderer, BufferedGeneration, Engine, StreamingGeneration
from .info_routes import info_body, tokenize_body, version_body
from .messages_wire import MessagesStreamEncoder, anthropic_error_body, messages_body
from .metrics import METRICS_CONTENT_TYPE, EngineHistograms, render_metrics
from .pacer import Pacer
from .prefix_cache import PrefixCache, prompt_pieces
from .proxy_wire import INTERIM_RESPONSES, GzipChunks, gzip_stream_head, with_empty_data
from .reasoning import ReasoningEncoder
from .responses_wire import ResponsesStreamEncoder, responses_body
from .sagellm_gateway import (
    STREAMED_COMPLETIONS_REFUSED,
    GatewayChatEncoder,
    GatewayMetrics,
    gateway_info_body,
    gateway_root_body,
)
from .send_log import SendLog
from .simulation import Plan, Planner
from .spec_decode import SpecDecodeCounters, StepEncoder, speculate
from .validation import (
    LAST_EVENT_KINDS,
    GenerationRequest,
    RequestError,
    parse_chat_request,
    parse_completion_request,
    parse_generate_request,
    parse_messages_request,
    parse_responses_request,
    resolve_max_tokens,
    resolve_output_cap,
)
from .wire import (
    ChatStreamEncoder,
    CompletionStreamEncoder,
    StreamEncoder,
    TokenEncoder,
    chat_body,
    completion_body,
    error_body,
    simple_response,
    stream_head,
)

__all__ = ["MockApp"]

_NOT_FOUND = orjson.dumps({"detail": "Not Found"})
_NOT_ALLOWED = orjson.dumps({"detail": "Method Not Allowed"})
_UNAUTHORIZED = orjson.dumps({"error": "Unauthorized"})

Route = Callable[[HttpConnection, Request], None]
_NOT_ON_THE_GATEWAY = (b"/tokenize", b"/version", b"/generate", b"/v1/responses", b"/v1/messages")
_GATEWAY_FAULTS = frozenset({Fault.HUGE_ERROR, Fault.ENDLESS_ERROR, Fault.HUGE_HEADER})


class MockApp:
    """Per-process server state and the request router (one per event loop)."""

    def __init__(
        self,
        config: MockServerConfig,
        loop: asyncio.AbstractEventLoop,
        *,
        seed: int | None = None,
        port: int = 0,
    ) -> None:
        self.config = config
        self.port = port
        """The port this server listens on (sageLLM's gateway names it in /info)."""
        self.loop = loop
        self.pacer = Pacer(loop)
        self.send_log = None if config.send_log is None else SendLog(config.send_log)
        self.planner = Planner(config, seed)
        self.admission = Admission(config.max_concurrency)
        self.histograms = EngineHistograms()
        self.engine = Engine(
            self.pacer,
            self.admission,
            self.histograms,
            config.tbt_per_running_ms / 1000.0,
            huge_event_bytes=config.huge_event_bytes,
            trickle_s=config.trickle_interval_ms / 1000.0,
        )
        self.injected: Counter[str] = Counter()
        """Faults injected so far, by kind (``Fault.value``)."""
        self.tokenize_requests = 0
        blocks = self.config.prefix_cache_blocks
        self.prefix_cache = PrefixCache(blocks) if blocks else None
        self.spec_counters = SpecDecodeCounters() if self.config.spec_decode else None
        self._spec_rng = random.Random(f"sagellm-mock:{self.config.seed}:spec")
        """``/tokenize`` requests answered so far (errors included), for ``/metrics``."""
        self.connections: set[HttpConnection] = set()
        self._model_json = orjson.dumps(config.model)
        self._auth = None if config.api_key is None else b"Bearer " + config.api_key.encode()
        self._routes: dict[bytes, tuple[bytes, Route]] = {
            b"/v1/chat/completions": (b"POST", self._chat),
            b"/v1/completions": (b"POST", self._completions),
            b"/v1/responses": (b"POST", self._responses),
            b"/v1/messages": (b"POST", self._messages),
            b"/v1/models": (b"GET", self._models),
            b"/health": (b"GET", self._health),
            b"/metrics": (b"GET", self._metrics),
            b"/tokenize": (b"POST", self._tokenize),
            b"/version": (b"GET", self._version),
            b"/generate": (b"POST", self._lmdeploy_generate),
            b"/info": (b"GET", self._info),
        }
        self.gateway: GatewayMetrics | None = None
        """``--dialect sagellm-gateway``: the gateway's own HTTP metrics (else None)."""
        if config.dialect == "sagellm-gateway":
            self.gateway = GatewayMetrics()
            for path in _NOT_ON_THE_GATEWAY:
                del self._routes[path]  # the gateway has none of them
            self._routes[b"/"] = (b"GET", self._gateway_root)

    # Handler protocol ---------------------------------------------------------------------

    def connection_opened(self, conn: HttpConnection) -> None:
        self.connections.add(conn)

    def connection_closed(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)

    def handle(self, conn: HttpConnection, request: Request) -> None:
        path = request.path
        if (
            self._auth is not None
            and path.startswith(b"/v1")
            and request.method != b"OPTIONS"
            and not hmac.compare_digest(request.authorization or b"", self._auth)
        ):
            self._reply(conn, request, 401, _UNAUTHORIZED)
            return
        route = self._routes.get(path)
        if route is None:
            self._reply(conn, request, 404, _NOT_FOUND)
            return
        method, fn = route
        if request.method != method:
            self._reply(conn, request, 405, _NOT_ALLOWED, extra=((b"allow", method),))
            return
        fn(conn, request)

    # routes -------------------------------------------------------------------------------

    def _health(self, conn: HttpConnection, request: Request) -> None:
        self._reply(conn, request, 200, b"", content_type=None)

    def _metrics(self, conn: HttpConnection, request: Request) -> None:
        if self.gateway is not None:
            body = self.gateway.render()
            self._reply(conn, request, 200, body, content_type=METRICS_CONTENT_TYPE)
            return
        body = render_metrics(
            self.admission,
            self.histograms,
            self.config.model,
            self.injected,
            tokenize_requests=self.tokenize_requests,
            prefix_cache=self.prefix_cache,
            spec_decode=self.spec_counters,
        )
        self._reply(conn, request, 200, body, content_type=METRICS_CONTENT_TYPE)

    def _tokenize(self, conn: HttpConnection, request: Request) -> None:
        self.tokenize_requests += 1
        try:
            body = tokenize_body(request.body, self.config)
        except RequestError as exc:
            body = error_body(exc.message, exc.err_type, exc.status, exc.param)
            self._reply(conn, request, exc.status, body)
            return
        self._reply(conn, request, 200, body)

    def _version(self, conn: HttpConnection, request: Request) -> None:
        self._reply(conn, request, 200, version_body())

    def _info(self, conn: HttpConnection, request: Request) -> None:
        if self.gateway is not None:
            self._reply(conn, request, 200, gateway_info_body(self.config, self.port))
            return
        self._reply(conn, request, 200, info_body(self.config))

    def _gateway_root(self, conn: HttpConnection, request: Request) -> None:
        self._reply(conn, request, 200, gateway_root_body())

    def _models(self, conn: HttpConnection, request: Request) -> None:
        c = self.config
        now = int(time.time())
        card = {
            "id": c.model,
            "object": "model",
            "created": now,
            "owned_by": "sagellm-mock",
            "root": c.model,
            "parent": None,
            "max_model_len": c.max_model_len,
            "permission": [
                {
                    "id": f"modelperm-{os.urandom(16).hex()}",
                    "object": "model_permission",
                    "created": now,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }
        self._reply(conn, request, 200, orjson.dumps({"object": "list", "data": [card]}))

    def _chat(self, conn: HttpConnection, request: Request) -> None:
        self._generate(conn, request, parse_chat_request)

    def _completions(self, conn: HttpConnection, request: Request) -> None:
        self._generate(conn, request, parse_completion_request)

    def _lmdeploy_generate(self, conn: HttpConnection, request: Request) -> None:
        self._generate(conn, request, parse_generate_request)

    def _responses(self, conn: HttpConnection, request: Request) -> None:
        self._generate(conn, request, parse_responses_request)

    def _messages(self, conn: HttpConnection, request: Request) -> None:
        self._generate(conn, request, parse_messages_request)

    # generation ---------------------------------------------------------------------------

    def _generate(
        self,
        conn: HttpConnection,
        request: Request,
        parse: Callable[[bytes], GenerationRequest],
    ) -> None:
        c = self.config
        errors = _ERROR_DIALECTS.get(parse, "openai")
        try:
            req = parse(request.body)
            if req.model is not None and req.model != c.model:
                raise RequestError(
                    f"The model `{req.model}` does not exist.",
                    status=404,
                    err_type="NotFoundError",
                    param="model",
                )
            if req.kind in LAST_EVENT_KINDS:
                max_tokens = resolve_output_cap(req, c)
                req = dataclasses.replace(req, max_tokens=max_tokens)  # echoed in the answer
            else:
                max_tokens = resolve_max_tokens(req, c)
        except RequestError as exc:
            dialect = "openai" if exc.schema else errors  # FastAPI's, before the route's
            body = _error(dialect, exc.message, exc.err_type, exc.status, exc.param)
            self._reply(conn, request, exc.status, body)
            return
        if self.gateway is not None and req.stream and req.kind == "completion":
            self._reply(conn, request, 400, STREAMED_COMPLETIONS_REFUSED)
            return
        fault = self._draw_fault(req.stream)
        if fault in _GATEWAY_FAULTS:
            self._gateway_fault(conn, request, fault)
            return
        if fault in HTTP_FAULTS:
            self._answer_at_once(conn, request, fault, errors)
            return
        plan, cache = self._plan(req, request.body, max_tokens, fault)
        t_request = request.t_received if c.send_timestamps else None
        self.admission.prompt_tokens += req.prompt_tokens
        send_log = self.send_log if req.stream else None
        sent: list[float] | None = None if send_log is None else []
        prefix = _id_prefix(req)
        response_id = prefix.decode() + plan.request_hex

        def done(status: int) -> None:
            self._log(request, status, fault)
            if send_log is not None and sent is not None:
                send_log.write(response_id, request.t_received, sent)
            conn.response_done()

        gen: StreamingGeneration | BufferedGeneration
        if fault is Fault.CONTINUE_100:
            conn.write(INTERIM_RESPONSES)
        if req.stream:
            if self.gateway is not None:  # its head goes out now: that ends its duration
                self._gateway_observe(request, 200)
            gen = StreamingGeneration(
                engine=self.engine,
                t_received=request.t_received,
                plan=plan,
                done=done,
                close=conn.close,
                write=_start_stream(conn, request.keep_alive, fault),
                encoder=self._stream_encoder(req, plan, t_request, cache),
                include_usage=req.include_usage
                and (not c.stream_usage_null or req.kind in LAST_EVENT_KINDS),
                sent=sent,
            )
        else:
            gen = BufferedGeneration(
                engine=self.engine,
                t_received=request.t_received,
                plan=plan,
                done=done,
                close=conn.close,
                write=conn.write,
                render=self._body_renderer(req, plan, t_request, cache),
                keep_alive=request.keep_alive,
            )
        conn.active = gen
        self.admission.submit(gen)

    def _plan(
        self, req: GenerationRequest, body: bytes, max_tokens: int, fault: Fault
    ) -> tuple[Plan, tuple[int, int] | None]:
        """The request's generation, and the prompt tokens the prefix cache served and
        newly cached (None without a cache): cached blocks are not prefilled again, and
        under speculative decoding a stream's tokens come in steps."""
        c = self.config
        vendor = not c.drop_vendor_fields  # else: a proxy forwarding OpenAI's fields only
        cache = None
        if self.prefix_cache is not None:
            cache = self.prefix_cache.lookup_and_insert(prompt_pieces(body))
        plan = self.planner.plan(
            max_tokens=max_tokens,
            ignore_eos=req.ignore_eos and vendor,
            min_tokens=req.min_tokens if vendor else 0,
            prompt_tokens=req.prompt_tokens - (cache[0] if cache else 0),
            fault=fault,
        )
        spec, counters = c.spec_decode, self.spec_counters
        if spec and counters and req.stream and fault is Fault.NONE and req.kind != "generate":
            plan = speculate(plan, *spec, self._spec_rng, counters)
        return plan, cache

    def _stream_encoder(
        self,
        req: GenerationRequest,
        plan: Plan,
        t_request: float | None,
        cache: tuple[int, int] | None,
    ) -> TokenEncoder:
        """The request's encoder; a reasoning model's first tokens go out as reasoning
        (APIs that have it: not completions), and usage says what the cache served."""
        encoder = self._token_encoder(req, plan, t_request, cache)
        if plan.tokens_after is not None:  # speculative decoding: a word is a step
            return StepEncoder(encoder, plan.tokens_after)
        return encoder

    def _token_encoder(
        self,
        req: GenerationRequest,
        plan: Plan,
        t_request: float | None,
        cache: tuple[int, int] | None,
    ) -> TokenEncoder:
        if req.kind == "generate":
            return GenerateStreamEncoder(prompt_tokens=req.prompt_tokens, t_request=t_request)
        if req.kind in LAST_EVENT_KINDS:
            return self._last_event_encoder(req, plan, t_request, cache and cache[0])
        encoder_class = _encoder_class(req)
        if self.gateway is not None:
            encoder_class = GatewayChatEncoder  # completions never stream here (refused above)
        encoder = encoder_class(
            request_hex=plan.request_hex,
            created=int(time.time()),
            model_json=self._model_json,
            prompt_tokens=req.prompt_tokens,
            continuous_usage=req.continuous_usage,
            t_request=t_request,
            null_usage=self.config.stream_usage_null,
        )
        encoder.cache = cache
        reasoning = self.config.reasoning_tokens
        if reasoning and hasattr(encoder, "reasoning_token"):
            encoder.reasoning_tokens = reasoning
            return ReasoningEncoder(encoder, reasoning, self.config.reasoning_field)
        return encoder

    def _last_event_encoder(
        self, req: GenerationRequest, plan: Plan, t_request: float | None, cached: int | None
    ) -> TokenEncoder:
        """The encoder of a Responses or Messages stream; a reasoning model's first tokens
        go out as their reasoning events."""
        encoder: ResponsesStreamEncoder | MessagesStreamEncoder
        if req.kind == "responses":
            encoder = ResponsesStreamEncoder(
                request_hex=plan.request_hex,
                created=int(time.time()),
                model_json=self._model_json,
                prompt_tokens=req.prompt_tokens,
                max_output_tokens=req.max_tokens or 0,
                t_request=t_request,
                cached_tokens=cached,
            )
        else:
            encoder = MessagesStreamEncoder(
                request_hex=plan.request_hex,
                model_json=self._model_json,
                prompt_tokens=req.prompt_tokens,
                t_request=t_request,
                cached_tokens=cached,
            )
        reasoning = self.config.reasoning_tokens
        if reasoning:
            return ReasoningEncoder(encoder, reasoning)
        return encoder

    def _body_renderer(
        self,
        req: GenerationRequest,
        plan: Plan,
        t_request: float | None,
        cache: tuple[int, int] | None,
    ) -> BodyRenderer:
        created = int(time.time())
        model = self.config.model
        cached = cache and cache[0]

        def render(text: str, n_tokens: int, t_send: float) -> bytes:
            stamps = None if t_request is None else (t_request, t_send)
            if req.kind == "generate":
                return generate_body(
                    words=plan.words,
                    finish_reason=plan.finish_reason,
                    prompt_tokens=req.prompt_tokens,
                    timestamps=stamps,
                )
            if req.kind == "responses":
                return responses_body(
                    request_hex=plan.request_hex,
                    created=created,
                    model=model,
                    text=text,
                    finish_reason=plan.finish_reason,
                    prompt_tokens=req.prompt_tokens,
                    completion_tokens=n_tokens,
                    max_output_tokens=req.max_tokens or 0,
                    timestamps=stamps,
                    cached_tokens=cached,
                )
            if req.kind == "messages":
                return messages_body(
                    request_hex=plan.request_hex,
                    model=model,
                    text=text,
                    finish_reason=plan.finish_reason,
                    prompt_tokens=req.prompt_tokens,
                    completion_tokens=n_tokens,
                    timestamps=stamps,
                    cached_tokens=cached,
                )
            build = chat_body if req.kind == "chat" else completion_body
            return build(
                request_hex=plan.request_hex,
                created=created,
                model=model,
                text=text,
                finish_reason=plan.finish_reason,
                prompt_tokens=req.prompt_tokens,
                completion_tokens=n_tokens,
                timestamps=stamps,
                cache=cache,
            )

        return render

    def _draw_fault(self, stream: bool) -> Fault:
        """This request's fault, counted for ``/metrics``."""
        fault = self.planner.draw_fault()
        if fault in STREAM_ONLY_FAULTS and not stream:
            fault = Fault.NONE  # only a stream has a [DONE] to leave out, or events
        if fault is not Fault.NONE:
            self.injected[fault.value] += 1
        return fault

    def _gateway_fault(self, conn: HttpConnection, request: Request, fault: Fault) -> None:
        """A misbehaving gateway's answer (see :mod:`.gateway`)."""
        c = self.config
        if fault is Fault.ENDLESS_ERROR:
            self._log(request, 502, fault)
            body = EndlessErrorBody(conn, self.loop)
            conn.active = body  # cancelled when the client closes the connection
            body.start()
            return
        if fault is Fault.HUGE_ERROR:
            status, data = 500, huge_error_response(c.huge_error_bytes, request.keep_alive)
        else:
            status, data = 502, huge_header_response(c.huge_header_bytes, request.keep_alive)
        conn.write(data)
        self._log(request, status, fault)
        conn.response_done()

    def _answer_at_once(
        self, conn: HttpConnection, request: Request, fault: Fault, errors: str
    ) -> None:
        """A fault answered before generation starts, without taking a capacity slot."""
        if fault is Fault.RESET:
            self._log(request, "reset", fault)
            conn.reset()
            return
        extra: tuple[tuple[bytes, bytes], ...] = ()
        if fault is Fault.HTTP_404:
            status = 404
            message = f"The model `{self.config.model}-injected-404` does not exist."
            body = _error(errors, message, "NotFoundError", 404, "model")
        elif fault is Fault.HTTP_500:
            status = 500
            body = _error(errors, "Injected internal server error", "InternalServerError", 500)
        elif fault is Fault.HTTP_429:
            status = 429
            body = _error(errors, "Too many requests (injected)", "RateLimitError", 429)
            extra = ((b"retry-after", str(self.config.retry_after_s).encode()),)
        elif fault is Fault.HTTP_502:
            status, body = 502, bad_gateway_body()
        else:
            assert fault is Fault.ECHO_401, fault
            status, body = 401, echo_unauthorized_body(request.authorization)
        self._reply(conn, request, status, body, extra=extra, fault=fault)

    # helpers ------------------------------------------------------------------------------

    def _reply(
        self,
        conn: HttpConnection,
        request: Request,
        status: int,
        body: bytes,
        *,
        content_type: bytes | None = b"application/json",
        extra: tuple[tuple[bytes, bytes], ...] = (),
        fault: Fault = Fault.NONE,
    ) -> None:
        conn.write(
            simple_response(
                status,
                body,
                keep_alive=request.keep_alive,
                content_type=content_type,
                extra=extra,
            )
        )
        if self.gateway is not None:
            self._gateway_observe(request, status)
        self._log(request, status, fault)
        conn.response_done()

    def _gateway_observe(self, request: Request, status: int) -> None:
        """sageLLM's gateway counts every response, timed to when it starts."""
        assert self.gateway is not None
        seconds = time.perf_counter() - request.t_received
        method, path = request.method.decode("latin-1"), request.path.decode("latin-1")
        self.gateway.observe(method, path, status, seconds)

    def _log(self, request: Request, status: int | str, fault: Fault = Fault.NONE) -> None:
        """One stderr line; an injected fault is named, and a reset has no status to show."""
        if not self.config.log_requests:
            return
        ms = (time.perf_counter() - request.t_received) * 1000.0
        method = request.method.decode("latin-1")
        path = request.path.decode("latin-1")
        injected = "" if fault is Fault.NONE else f" fault={fault.value}"
        sys.stderr.write(f"sagellm-mock-server: {method} {path} {status} {ms:.1f} ms{injected}\n")


def _start_stream(conn: HttpConnection, keep_alive: bool, fault: Fault) -> Callable[[bytes], None]:
    """Write a stream's head; return what writes its events, as ``fault`` shapes them."""
    write = conn.stream_write
    if fault is Fault.GZIP:
        conn.write(gzip_stream_head(keep_alive))
        write = GzipChunks(write)
    else:
        conn.write(stream_head(keep_alive))
    if fault is Fault.EMPTY_DATA:
        write = with_empty_data(write)
    return write


def _encoder_class(req: GenerationRequest) -> type[StreamEncoder]:
    return ChatStreamEncoder if req.kind == "chat" else CompletionStreamEncoder


def _id_prefix(req: GenerationRequest) -> bytes:
    """What the response's id starts with on the request's route."""
    if req.kind == "generate":
        return GenerateStreamEncoder.ID_PREFIX
    if req.kind == "responses":
        return ResponsesStreamEncoder.ID_PREFIX
    if req.kind == "messages":
        return MessagesStreamEncoder.ID_PREFIX
    return _encoder_class(req).ID_PREFIX


#: Each route's error body, by its request parser: vLLM's ``ErrorResponse`` elsewhere.
_ERROR_DIALECTS: dict[Callable[[bytes], GenerationRequest], str] = {
    parse_generate_request: "lmdeploy",
    parse_messages_request: "anthropic",
}


def _error(
    dialect: str, message: str, err_type: str, status: int, param: str | None = None
) -> bytes:
    """The error body in the route's own dialect: LMDeploy's flat one on ``/generate``,
    Anthropic's on ``/v1/messages``, vLLM's ``ErrorResponse`` on the others."""
    if dialect == "lmdeploy":
        return lmdeploy_error_body(message, status)
    if dialect == "anthropic":
        return anthropic_error_body(message, err_type)
    return error_body(message, err_type, status, param)
