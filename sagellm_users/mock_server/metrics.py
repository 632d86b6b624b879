"""``GET /metrics``: the mock's engine state in Prometheus text, under vLLM's names.

So that anything reading a vLLM server's ``/metrics`` (the load test's scraper, a benchmark
counting the tokens a server sent between two moments) reads the mock the same way: the
request gauges, KV-cache usage, preemptions, the token and request counters, and the
TTFT / inter-token / TPOT / end-to-end / queue-time histograms with vLLM's bucket bounds.
Per process: with ``--workers N`` each worker answers with its own counts.

What the mock measures: TTFT, end-to-end and queue time from the moment the request was
parsed; inter-token latency as the scheduled gap before each streamed token (the pacer's
deadlines, so the write lateness of 0-1.25 ms is not in it). KV-cache usage is running
sequences over ``--max-concurrency`` (0 when unlimited); the mock never preempts.

Beyond vLLM's names, under ``sagellm_mock:``: the faults it injected, and the ``/tokenize``
requests it answered (a load tester that counts prompts with the server under test adds
those requests to the load it measures; this shows how many it sent, and when).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence

from .capacity import Admission
from .prefix_cache import PrefixCache
from .spec_decode import SpecDecodeCounters

__all__ = ["METRICS_CONTENT_TYPE", "EngineHistograms", "Histogram", "render_metrics"]

METRICS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

# vLLM 0.11-0.32's bucket bounds (vllm/v1/metrics/loggers.py), so quantiles estimated from
# the mock's histograms have the same resolution as a real server's.
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip


class Histogram:
    """A Prometheus histogram: per-bucket counts (``le`` semantics) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def lines(self, name: str, labels: str) -> list[str]:
        out: list[str] = []
        cumulative = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {float(cumulative)}')
        out.append(f"{name}_count{{{labels}}} {float(cumulative)}")
        out.append(f"{name}_sum{{{labels}}} {self.total!r}")
        return out


class EngineHistograms:
    """The per-request timings vLLM exports, observed by the mock's generations."""

    __slots__ = ("e2e", "itl", "queue", "tpot", "ttft")

    def __init__(self) -> None:
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.tpot = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(REQUEST_BUCKETS)
        self.queue = Histogram(REQUEST_BUCKETS)

    def finished(self, t_received: float, t_first: float, t_last: float, n_tokens: int) -> None:
        """One request finished: its TTFT, TPOT and end-to-end latency."""
        self.ttft.observe(t_first - t_received)
        self.e2e.observe(t_last - t_received)
        if n_tokens > 1:
            self.tpot.observe((t_last - t_first) / (n_tokens - 1))


_GAUGES = (
    ("vllm:num_requests_running", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
    ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
)
_COUNTERS = (
    ("vllm:num_preemptions", "Cumulative number of preemption from the engine."),
    ("vllm:prompt_tokens", "Number of prefill tokens processed."),
    ("vllm:generation_tokens", "Number of generation tokens processed."),
    ("vllm:request_success", "Count of successfully processed requests."),
)
_PREFIX_QUERIES = (
    "vllm:prefix_cache_queries",
    "Prefix cache queries, in terms of number of queried tokens.",
)
_PREFIX_HITS = ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.")
_SPEC_DECODE = (
    ("vllm:spec_decode_num_drafts", "Number of spec decoding drafts."),
    ("vllm:spec_decode_num_draft_tokens", "Number of draft tokens."),
    ("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens."),
)
_HISTOGRAMS = (
    ("vllm:time_to_first_token_seconds", "ttft", "Histogram of time to first token in seconds."),
    ("vllm:inter_token_latency_seconds", "itl", "Histogram of inter-token latency in seconds."),
    (
        "vllm:request_time_per_output_token_seconds",
        "tpot",
        "Histogram of time_per_output_token_seconds per request.",
    ),
    ("vllm:e2e_request_latency_seconds", "e2e", "Histogram of e2e request latency in seconds."),
    (
        "vllm:request_queue_time_seconds",
        "queue",
        "Histogram of time spent in WAITING phase for request.",
    ),
)


def render_metrics(
    admission: Admission,
    histograms: EngineHistograms,
    model: str,
    injected: Mapping[str, int] | None = None,
    *,
    tokenize_requests: int = 0,
    prefix_cache: PrefixCache | None = None,
    spec_decode: SpecDecodeCounters | None = None,
) -> bytes:
    """The exposition text, families in vLLM's order and with its labels; then the mock's
    own counts: ``/tokenize`` requests (when any came) and injected faults by kind (when
    any were injected)."""
    label = model.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    labels = f'engine="0",model_name="{label}"'
    kv_usage = admission.running / admission.limit if admission.limit else 0.0
    gauges = (admission.running, admission.waiting, kv_usage)
    counters = (0, admission.prompt_tokens, admission.generated_tokens, admission.finished)
    lines: list[str] = []
    for (name, help_text), value in zip(_GAUGES, gauges, strict=True):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines.append(f"{name}{{{labels}}} {float(value)}")
    for (name, help_text), value in zip(_COUNTERS, counters, strict=True):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines.append(f"{name}_total{{{labels}}} {float(value)}")
    if prefix_cache is not None:  # vLLM's counters, in tokens
        counts = ((_PREFIX_QUERIES, prefix_cache.queries), (_PREFIX_HITS, prefix_cache.hits))
        for (name, help_text), value in counts:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines.append(f"{name}_total{{{labels}}} {float(value)}")
    if spec_decode is not None:
        values = (spec_decode.drafts, spec_decode.draft_tokens, spec_decode.accepted_tokens)
        for (name, help_text), value in zip(_SPEC_DECODE, values, strict=True):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines.append(f"{name}_total{{{labels}}} {float(value)}")
    for name, attr, help_text in _HISTOGRAMS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        lines += getattr(histograms, attr).lines(name, labels)
    if tokenize_requests:
        name = "sagellm_mock:tokenize_requests"
        lines += [f"# HELP {name} Requests to /tokenize answered.", f"# TYPE {name} counter"]
        lines.append(f"{name}_total{{{labels}}} {float(tokenize_requests)}")
    if injected:
        name = "sagellm_mock:injected_faults"
        lines += [f"# HELP {name} Faults injected by the mock, by kind.", f"# TYPE {name} counter"]
        lines += [
            f'{name}_total{{{labels},kind="{kind}"}} {float(count)}'
            for kind, count in sorted(injected.items())
        ]
    return ("\n".join(lines) + "\n").encode()
