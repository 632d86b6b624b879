"""The fake ``vllm.sampling_params``: keyword-only parameters, unknown ones refused."""

from __future__ import annotations

from enum import Enum

__all__ = ["RequestOutputKind", "SamplingParams"]


class RequestOutputKind(Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


class SamplingParams:
    def __init__(
        self,
        *,
        max_tokens: int = 16,
        min_tokens: int = 0,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        ignore_eos: bool = False,
        output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE,
    ) -> None:
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        self.ignore_eos = ignore_eos
        self.output_kind = output_kind
