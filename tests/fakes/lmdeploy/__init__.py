"""A fake ``lmdeploy``: ``pipeline(...).stream_infer`` with exact, configurable timing.

Like the real pipeline, ``stream_infer`` returns a blocking iterator of ``Response``
objects carrying the step's new text, the running ``generate_token_len`` and the prompt's
``input_token_len``. Tokens are words; each request streams independently.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

__version__ = "0.0.0+fake"

__all__ = [
    "GenerationConfig",
    "PytorchEngineConfig",
    "Response",
    "TurbomindEngineConfig",
    "__version__",
    "pipeline",
]


@dataclass
class GenerationConfig:
    max_new_tokens: int = 512
    min_new_tokens: int | None = None
    ignore_eos: bool = False
    temperature: float = 0.8
    top_p: float = 1.0
    top_k: int = 50
    random_seed: int | None = None


@dataclass
class TurbomindEngineConfig:
    tp: int = 1
    session_len: int | None = None
    cache_max_entry_count: float = 0.8
    max_batch_size: int | None = None
    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    fail_after: int = 0
    """When > 0, a request's stream ends with finish_reason 'error' after this many tokens."""


@dataclass
class PytorchEngineConfig(TurbomindEngineConfig):
    dtype: str = "auto"


@dataclass
class Response:
    text: str
    generate_token_len: int
    input_token_len: int
    finish_reason: str | None = None
    token_ids: list[int] = field(default_factory=list)
    logprobs: Any = None
    index: int = 0


def _template(messages: list[dict[str, Any]]) -> str:
    return " ".join(f"<{m['role']}> {m['content']}" for m in messages) + " <assistant>"


class Pipeline:
    def __init__(self, model_path: str, backend_config: TurbomindEngineConfig) -> None:
        self.model_path = model_path
        self.config = backend_config
        self.closed = False

    def stream_infer(
        self,
        prompts: str | list[dict[str, Any]],
        gen_config: GenerationConfig | None = None,
        do_preprocess: bool = True,
        adapter_name: str | None = None,
        stream_response: bool = True,
    ) -> Iterator[Response]:
        config = gen_config or GenerationConfig()
        if isinstance(prompts, str):
            text = _template([{"role": "user", "content": prompts}]) if do_preprocess else prompts
        else:
            assert do_preprocess, "chat messages are always templated"
            text = _template(prompts)
        return self._stream(len(text.split()), config)

    def _stream(self, input_len: int, config: GenerationConfig) -> Iterator[Response]:
        n = config.max_new_tokens
        if not config.ignore_eos:
            n = min(n, max(1, config.min_new_tokens or 1))
        start = perf_counter()
        for k in range(n):
            due = start + (self.config.ttft_ms + k * self.config.itl_ms) / 1e3
            time.sleep(max(0.0, due - perf_counter()))
            if self.config.fail_after and k == self.config.fail_after:
                yield Response("internal error", k, input_len, "error")
                return
            last = k == n - 1
            reason = ("length" if n == config.max_new_tokens else "stop") if last else None
            yield Response(f" w{k}", k + 1, input_len, reason, [k])

    def close(self) -> None:
        self.closed = True


def pipeline(model_path: str, backend_config: TurbomindEngineConfig | None = None) -> Pipeline:
    return Pipeline(model_path, backend_config or TurbomindEngineConfig())
