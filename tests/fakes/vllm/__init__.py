"""A fake ``vllm``: exact, configurable timing; every request streams independently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vllm.sampling_params import SamplingParams

__version__ = "0.0.0+fake"

__all__ = ["AsyncEngineArgs", "SamplingParams", "__version__"]


@dataclass
class AsyncEngineArgs:
    """The real class's fields the host uses, plus the fake's timing knobs."""

    model: str
    served_model_name: Any = None
    dtype: str = "auto"
    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    chat_template: bool = True
    fail_start: str = ""
    """When set, loading the engine raises RuntimeError with this text."""
