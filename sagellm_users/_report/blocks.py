"""The numbers of one slice of the traffic: the building blocks every report part shares.

A slice is everything, one endpoint, one User class, one conversation turn or one sweep
stage; each is summarised the same way from mergeable :class:`EndpointStats`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from sagellm_users._metrics.collector import EndpointStats
from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.record import PHASES
from sagellm_users._report.labels import percentile_label

__all__ = [
    "TIMINGS",
    "DistributionSummary",
    "EndpointReport",
    "FailureClass",
    "MetricsBlock",
    "TokenProvenance",
]

TIMINGS = {  # report field -> (EndpointStats attribute, vLLM's metric word)
    "ttft_ms": ("ttft", "ttft"),
    "ttst_ms": ("ttst", None),
    "ttfo_ms": ("ttfo", None),
    "tpot_ms": ("tpot", "tpot"),
    "itl_ms": ("itl", "itl"),
    "e2el_ms": ("e2e", "e2el"),
    "tbt_ms": ("tbt", None),
    "itl_per_token_ms": ("itl_per_token", None),
    "itl_reasoning_ms": ("itl_reasoning", None),
    "itl_answer_ms": ("itl_answer", None),
}


class DistributionSummary(BaseModel):
    """Mean, spread and percentiles of one metric (ms for times, tokens for lengths)."""

    count: int
    mean: float | None
    median: float | None
    std: float | None
    min: float | None
    max: float | None
    percentiles: dict[str, float | None]

    @classmethod
    def of(cls, dist: Distribution, percentiles: list[float], scale: float) -> DistributionSummary:
        def scaled(value: float | None) -> float | None:
            return None if value is None else value * scale

        return cls(
            count=dist.count,
            mean=scaled(dist.mean),
            median=scaled(dist.percentile(50)),
            std=scaled(dist.std),
            min=scaled(dist.min),
            max=scaled(dist.max),
            percentiles={percentile_label(p): scaled(dist.percentile(p)) for p in percentiles},
        )


class FailureClass(BaseModel):
    error_class: str
    count: int
    example: str


class TokenProvenance(BaseModel):
    """Where the token counts of successful requests came from."""

    output_from_usage: int
    output_estimated: int
    """Chunk counts: the server sent no usage and no tokenizer was at hand."""
    output_tokenized: int = 0
    """Counted by a local tokenizer in the reply's text: the server sent no usage."""
    input_from_usage: int
    input_estimated: int


class MetricsBlock(BaseModel):
    """The numbers for one slice of the traffic (everything, one endpoint, one User)."""

    requests: int
    completed: int
    failed: int
    cancelled: int
    error_rate: float
    duration_s: float
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    total_input_tokens: int
    total_output_tokens: int
    ttft_ms: DistributionSummary
    ttst_ms: DistributionSummary | None = None
    """Time to the second decode step (None in reports written before it was measured)."""
    ttfo_ms: DistributionSummary | None = None
    """Time to the answer's first token, over requests that reasoned first."""
    itl_reasoning_ms: DistributionSummary | None = None
    itl_answer_ms: DistributionSummary | None = None
    """ITL of the reasoning and of the answer after it, over requests that reasoned."""
    tpot_ms: DistributionSummary
    itl_ms: DistributionSummary
    e2el_ms: DistributionSummary
    tbt_ms: DistributionSummary
    itl_per_token_ms: DistributionSummary
    input_tokens: DistributionSummary
    output_tokens: DistributionSummary
    failures: list[FailureClass]
    token_provenance: TokenProvenance
    models: list[str]
    backends: list[str]
    good_requests: int | None = None
    """Successful requests meeting every per-request SLO (None without such SLOs)."""
    request_goodput: float | None = None
    stopped_at_limit: int = 0
    """Successful requests that said ``finish_reason: "stop"`` with exactly ``max_tokens``
    out: the server reports "stop" where the limit ended them (sageLLM's gateway streams
    so), or their end of sequence fell on the limit's last token."""
    length_mismatches: int = 0
    """Successful requests whose output length differs from what they asked: exactly
    ``max_tokens`` with ``ignore_eos``, at least ``min_tokens``; a server or a proxy that
    drops those fields answers shorter."""
    length_mismatch_examples: list[str] = Field(default_factory=list)
    """The first few, as ``#REQUEST_ID: asked ..., got N``."""
    empty_answers: int = 0
    """Successful requests with no output at all (0 tokens): what a gateway answers when it
    turns its engine's failure into an empty stream that ends normally."""
    retried: int = 0
    """Requests sent more than once (``--retries``); their failed attempts are in
    ``retry_failures``, never in ``failures``."""
    retries: int = 0
    retry_failures: dict[str, int] = {}
    backoffs: int = 0
    """Waits users took after connection errors in a row, so a refusing server is not
    hammered; the failed requests are in ``failures`` as always."""
    backoff_s: float = 0.0
    reasoning_requests: int = 0
    """Successful requests whose model reasoned before (or instead of) answering."""
    total_reasoning_tokens: int = 0
    """Their reasoning tokens: the server's ``completion_tokens_details.reasoning_tokens``,
    else their reasoning steps (``reasoning_tokens_estimated`` requests)."""
    reasoning_tokens_estimated: int = 0
    reasoning_usage_zero: int = 0
    """Requests that streamed reasoning while the server's usage counted 0 reasoning
    tokens: their count is the stream's."""
    reasoning_tokens: DistributionSummary | None = None
    """Reasoning tokens per request that reasoned."""
    cache_reported: int = 0
    """Successful requests whose usage said how many prompt tokens the server's prefix cache
    served (vLLM with ``--enable-prompt-tokens-details``)."""
    total_cached_tokens: int = 0
    cache_hit_share: float | None = None
    """Cached prompt tokens over the prompt tokens of those requests."""
    tokens_per_step: float | None = None
    """Output tokens per decode step of streamed requests: above 1 when steps carry several
    tokens (speculative decoding, or a server whose stream fell behind its engine)."""
    step_sizes: dict[str, int] = Field(default_factory=dict)
    """Decode steps by the tokens they carried (``"2": 310``), when usage came with every
    chunk (vLLM's ``continuous_usage_stats``)."""
    http_phases_ms: dict[str, DistributionSummary] = Field(default_factory=dict)
    """Where successful requests' time went before their answers' first bytes (ms):
    ``connect`` and ``tls`` over the requests that opened a connection, then ``send``,
    ``wait`` (for the headers) and ``first_byte`` (from the headers to the body); empty
    for in-process engines and reports written before phases were measured."""

    @classmethod
    def of(
        cls,
        stats: EndpointStats,
        duration: float,
        percentiles: list[float],
        goodput: bool = False,
    ) -> MetricsBlock:
        rate = 1.0 / duration if duration > 0 else 0.0
        timings = {
            field: DistributionSummary.of(getattr(stats, attr), percentiles, 1e3)
            for field, (attr, _word) in TIMINGS.items()
        }
        return cls(
            requests=stats.requests,
            completed=stats.succeeded,
            failed=stats.failed,
            cancelled=stats.cancelled,
            error_rate=stats.error_rate,
            duration_s=duration,
            request_throughput=stats.succeeded * rate,
            output_throughput=stats.total_output_tokens * rate,
            total_token_throughput=(stats.total_input_tokens + stats.total_output_tokens) * rate,
            total_input_tokens=stats.total_input_tokens,
            total_output_tokens=stats.total_output_tokens,
            input_tokens=DistributionSummary.of(stats.input_tokens, percentiles, 1.0),
            output_tokens=DistributionSummary.of(stats.output_tokens, percentiles, 1.0),
            failures=[
                FailureClass(error_class=k, count=v, example=stats.failure_examples.get(k, ""))
                for k, v in stats.failures.most_common()
            ],
            stopped_at_limit=stats.stopped_at_limit,
            empty_answers=stats.empty_answers,
            length_mismatches=stats.length_mismatches,
            length_mismatch_examples=list(stats.length_mismatch_examples),
            retried=stats.retried,
            retries=stats.retries,
            retry_failures=dict(stats.retry_failures.most_common()),
            backoffs=stats.backoffs,
            backoff_s=stats.backoff_ms / 1e3,
            token_provenance=TokenProvenance(
                output_from_usage=stats.succeeded
                - stats.output_tokens_estimated
                - stats.output_tokens_tokenized,
                output_estimated=stats.output_tokens_estimated,
                output_tokenized=stats.output_tokens_tokenized,
                input_from_usage=stats.succeeded - stats.input_tokens_estimated,
                input_estimated=stats.input_tokens_estimated,
            ),
            models=sorted(stats.models),
            backends=sorted(stats.backends),
            good_requests=stats.good if goodput else None,
            request_goodput=stats.good * rate if goodput else None,
            reasoning_requests=stats.reasoning_requests,
            total_reasoning_tokens=stats.total_reasoning_tokens,
            reasoning_tokens_estimated=stats.reasoning_tokens_estimated,
            reasoning_usage_zero=stats.reasoning_usage_zero,
            reasoning_tokens=DistributionSummary.of(stats.reasoning_tokens, percentiles, 1.0)
            if stats.reasoning_requests
            else None,
            cache_reported=stats.cache_reported,
            total_cached_tokens=stats.total_cached_tokens,
            cache_hit_share=stats.cache_hit_share,
            tokens_per_step=stats.tokens_per_step,
            step_sizes={str(k): v for k, v in sorted(stats.step_sizes.items())},
            http_phases_ms={
                name: DistributionSummary.of(getattr(stats, f"phase_{name}"), percentiles, 1e3)
                for name in PHASES
                if stats.phase_send.count
            },
            **timings,
        )


class EndpointReport(MetricsBlock):
    name: str
    user: str | None = None
    """The User class, or None when the slice merges every User class."""
