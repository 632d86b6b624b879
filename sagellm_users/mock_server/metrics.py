"""``GET /metrics``: the mock's engine counters in Prometheus text, under vLLM's names.

So that anything reading a vLLM server's ``/metrics`` (a scraper, a benchmark counting the
tokens a server sent between two moments) reads the mock the same way. Per process: with
``--workers N`` each worker answers with its own counts.
"""

from __future__ import annotations

from .capacity import Admission

__all__ = ["METRICS_CONTENT_TYPE", "render_metrics"]

METRICS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_FAMILIES = (
    ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed."),
    ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed."),
    ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed."),
    ("vllm:request_success_total", "counter", "Count of successfully processed requests."),
)


def render_metrics(admission: Admission, model: str) -> bytes:
    values = (
        admission.running,
        admission.waiting,
        admission.prompt_tokens,
        admission.generated_tokens,
        admission.finished,
    )
    label = model.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    lines = []
    for (name, kind, help_text), value in zip(_FAMILIES, values, strict=True):
        base = name.removesuffix("_total") if kind == "counter" else name
        lines += [
            f"# HELP {base} {help_text}",
            f"# TYPE {base} {kind}",
            f'{name}{{model_name="{label}"}} {float(value)}',
        ]
    return ("\n".join(lines) + "\n").encode()
