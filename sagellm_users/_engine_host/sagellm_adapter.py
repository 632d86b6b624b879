"""sageLLM's ``LLMEngine`` (package ``isagellm``), streamed token by token.

Its ``stream()`` yields a ``start`` event (prompt tokens), one ``delta`` per token and an
``end`` event (finish reason, all output tokens, or an error). The engine has no
minimum length and no way to ignore EOS, so requests asking for either are refused with
that reason rather than silently measured as something else. A tokenizer without a pad
token gets the EOS token as one, as the engine's batched prefill requires.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import import_module
from time import perf_counter
from typing import Any

from .contract import GenerateRequest, Output, StartError

__all__ = ["SageLLMAdapter"]

_REQUEST_FIELDS = ("top_p",)
"""Sampling fields sageLLM's stream honours besides temperature (``--extra-body``)."""


class SageLLMAdapter:
    """``--sagellm-model PATH`` plus ``--engine-arg`` (any ``LLMEngineConfig`` field, e.g.
    ``backend_type=cpu``, ``dtype=float32``, ``max_model_len=2048``)."""

    def __init__(self, model: str, engine_args: dict[str, Any]) -> None:
        self.model = model
        self.engine_args = engine_args
        self.version = ""
        self.model_name = model
        self._engine: Any = None
        self._protocol: Any = None

    async def start(self) -> None:
        try:
            core = import_module("sagellm_core")
            self._protocol = import_module("sagellm_protocol")
        except ImportError as exc:
            raise StartError(
                f"sageLLM is not importable in the engine's interpreter ({exc}); install it "
                "(pip install isagellm) or point --engine-python at a venv that has it"
            ) from None
        try:
            config = core.LLMEngineConfig(model_path=self.model, **self.engine_args)
        except TypeError as exc:
            raise StartError(f"--engine-arg: {exc}; see sageLLM's LLMEngineConfig") from None
        self._engine = core.LLMEngine(config)
        await self._engine.start()
        self.version = str(getattr(core, "__version__", ""))
        tokenizer = getattr(self._engine, "_tokenizer", None)
        if tokenizer is not None and getattr(tokenizer, "pad_token", "") is None:
            tokenizer.pad_token = tokenizer.eos_token

    def _request(self, request: GenerateRequest) -> Any:
        if request.ignore_eos or request.min_tokens:
            raise ValueError(
                "sageLLM's engine has no ignore_eos and no min_tokens: drop --ignore-eos "
                "and --min-tokens for SageLLMLocalUser"
            )
        rid = f"sagellm-{request.id}"
        kwargs: dict[str, Any] = {"request_id": rid, "trace_id": rid, "stream": True}
        kwargs["max_tokens"] = request.max_tokens if request.max_tokens is not None else 128
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        for key, value in request.extra.items():
            if key not in _REQUEST_FIELDS:
                raise ValueError(
                    f"sageLLM's stream does not take {key!r}; it honours temperature and "
                    f"{', '.join(_REQUEST_FIELDS)}"
                )
            kwargs[key] = value
        if request.api == "chat":
            message = self._protocol.ChatMessage
            kwargs["messages"] = [
                message(role=m["role"], content=m["content"]) for m in request.chat_messages()
            ]
        else:
            kwargs["prompt"] = request.prompt_text()
        return self._protocol.Request(**kwargs)

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Output]:
        prompt_tokens: int | None = None
        completion = 0
        async for event in self._engine.stream(self._request(request)):
            t = perf_counter()
            kind = event.event
            if kind == "start":
                prompt_tokens = event.prompt_tokens
            elif kind == "delta":
                new = len(event.content_tokens or ())
                completion += new
                yield Output(t, event.content or "", new, prompt_tokens, completion)
            elif kind == "end":
                if event.error or event.finish_reason == "error":
                    raise RuntimeError(f"sageLLM ended the request with an error: {event.error}")
                total = len(event.output_tokens or ()) or completion
                # A decode step when it carries a token no delta did (the EOS token).
                new = max(0, total - completion)
                yield Output(t, "", new, event.prompt_tokens, total, event.finish_reason)

    async def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.stop()
