"""LMDeploy's ``pipeline(...).stream_infer``, one native thread per request.

``stream_infer`` hands back a blocking iterator fed by the pipeline's own event-loop
thread. Each request's iterator is drained in a thread of its own that stamps every
response the moment it arrives and passes it to the host's loop, so concurrent requests
stream side by side and a slow reader never delays a stamp.

LMDeploy streams the new text of each step and the running count of generated tokens
(``generate_token_len``); the difference between two steps is the step's token count.
Stopping a request early stops reading it; LMDeploy's ``stream_infer`` has no abort, so
the engine finishes that generation in the background (it only happens at test stop).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from importlib import import_module
from time import perf_counter
from typing import Any

from .contract import GenerateRequest, Output, StartError

__all__ = ["LMDeployAdapter"]

_END = object()


class LMDeployAdapter:
    """``--lmdeploy-model PATH`` plus ``--engine-arg`` (``backend=turbomind|pytorch`` and any
    field of that backend's engine config, e.g. ``tp=2``, ``cache_max_entry_count=0.5``)."""

    def __init__(self, model: str, engine_args: dict[str, Any]) -> None:
        self.model = model
        self.engine_args = dict(engine_args)
        self.version = ""
        self.model_name = model
        self._pipe: Any = None
        self._gen_config: Any = None

    async def start(self) -> None:
        try:
            lmdeploy = import_module("lmdeploy")
        except ImportError as exc:
            raise StartError(
                f"LMDeploy is not importable in the engine's interpreter ({exc}); install it "
                "(pip install lmdeploy) or point --engine-python at a venv that has it"
            ) from None
        args = dict(self.engine_args)
        backend = str(args.pop("backend", "turbomind"))
        configs = {
            "turbomind": lmdeploy.TurbomindEngineConfig,
            "pytorch": lmdeploy.PytorchEngineConfig,
        }
        if backend not in configs:
            raise StartError(
                f"--engine-arg backend={backend}: LMDeploy has the turbomind and pytorch backends"
            )
        try:
            config = configs[backend](**args)
        except TypeError as exc:
            raise StartError(
                f"--engine-arg: {exc}; see LMDeploy's {configs[backend].__name__}"
            ) from None
        self._pipe = await asyncio.to_thread(lmdeploy.pipeline, self.model, backend_config=config)
        self._gen_config = lmdeploy.GenerationConfig
        self.version = str(getattr(lmdeploy, "__version__", ""))

    def _generation_config(self, request: GenerateRequest) -> Any:
        return self._gen_config(**request.sampling("max_new_tokens", "min_new_tokens"))

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Output]:
        config = self._generation_config(request)
        chat = request.api == "chat"
        prompt: Any = request.chat_messages() if chat else request.prompt_text()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def hand_over(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the host's loop closed: the host is shutting down
                stop.set()

        def drain() -> None:
            try:
                responses = self._pipe.stream_infer(prompt, gen_config=config, do_preprocess=chat)
                for response in responses:
                    hand_over((perf_counter(), response))
                    if stop.is_set():
                        return
                hand_over(_END)
            except Exception as exc:
                hand_over(exc)

        threading.Thread(target=drain, name=f"lmdeploy-{request.id}", daemon=True).start()
        counted = 0
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item
                t, response = item
                total = int(response.generate_token_len)
                reason = response.finish_reason
                if reason == "error":
                    raise RuntimeError(
                        f"LMDeploy ended the request with an error: {response.text!r}"
                    )
                yield Output(
                    t,
                    response.text or "",
                    total - counted,
                    response.input_token_len,
                    total,
                    reason,
                )
                counted = total
        finally:
            stop.set()

    async def stop(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None and hasattr(pipe, "close"):
            await asyncio.to_thread(pipe.close)
