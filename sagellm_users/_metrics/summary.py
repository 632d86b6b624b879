"""The end-of-run console summary: the LLM view Locust's own tables cannot give."""

from __future__ import annotations

from collections.abc import Sequence

from sagellm_users._metrics.collector import EndpointStats
from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.record import PHASES

__all__ = ["DEFAULT_PERCENTILES", "REASONING_USAGE_ZERO", "answer_warnings", "render_summary"]

REASONING_USAGE_ZERO = (
    "counted from the stream instead (vLLM counts only the tokens between a <think> and a "
    "</think> the model generates itself, so a model whose chat template opens the "
    "reasoning, as DeepSeek R1's does, always gets 0)"
)

DEFAULT_PERCENTILES: tuple[float, ...] = (50, 90, 99)
MULTI_TOKEN_STEPS = 1.05
"""Tokens per step from which the summary says steps carried several tokens: a stream
without speculative decoding has 1 (a merged chunk now and then moves it by less)."""

_METRICS = (
    ("TTFT", "ttft"),
    ("TTST", "ttst"),
    ("TBT", "tbt"),
    ("ITL", "itl"),
    ("TPOT", "tpot"),
    ("E2E", "e2e"),
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.2f}"


def _label(p: float) -> str:
    return f"p{p:g}"


def _latency_rows(stats: EndpointStats, percentiles: Sequence[float]) -> list[list[str]]:
    rows = []
    metrics = list(_METRICS)
    if stats.itl_per_token.count:
        metrics.insert(3, ("ITL/token", "itl_per_token"))
    if stats.reasoning_requests:  # a reasoning model: when its answer began, each phase's pace
        at = metrics.index(("ITL", "itl")) + 1
        metrics[at:at] = [("ITL reasoning", "itl_reasoning"), ("ITL answer", "itl_answer")]
        metrics.insert(2, ("TTFO", "ttfo"))
    for label, attr in metrics:
        dist: Distribution = getattr(stats, attr)
        row = [f"  {label} (ms)", str(dist.count), _ms(dist.mean)]
        row += [_ms(dist.percentile(p)) for p in percentiles]
        row.append(_ms(dist.max))
        rows.append(row)
    return rows


def _phase_line(stats: EndpointStats) -> str:
    """Where the time before the first byte went, median and p99 of each HTTP phase."""
    parts = []
    for name in PHASES:
        dist: Distribution = getattr(stats, f"phase_{name}")
        if dist.count:
            label = name.replace("_", " ")
            if name in ("connect", "tls"):
                label += f" (x{dist.count})"
            parts.append(f"{label} {_ms(dist.percentile(50))}/{_ms(dist.percentile(99))}")
    return "  HTTP phases (ms, p50/p99): " + ", ".join(parts)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _throughput_line(stats: EndpointStats, window: float) -> str:
    rps = stats.succeeded / window if window else 0.0
    tps = stats.total_output_tokens / window if window else 0.0
    line = (
        f"  requests {stats.requests}  ok {stats.succeeded}  failed {stats.failed}"
        f"  error rate {stats.error_rate:.2%}  |  {rps:.2f} req/s  {tps:.1f} output tok/s"
        f"  |  tokens in {stats.total_input_tokens} out {stats.total_output_tokens}"
    )
    if stats.cancelled:
        line += f"  |  cancelled {stats.cancelled}"
    return line


def _reasoning_line(stats: EndpointStats) -> str:
    n = stats.reasoning_requests
    line = (
        f"  reasoning: {n} of {stats.succeeded} requests reasoned, "
        f"{stats.total_reasoning_tokens} of {stats.total_output_tokens} output tokens "
        f"({stats.total_reasoning_tokens / n:.1f} per request)"
    )
    if stats.reasoning_usage_zero:
        line += (
            f"; the server's usage said 0 reasoning tokens for {stats.reasoning_usage_zero} "
            f"of them, which streamed reasoning: {REASONING_USAGE_ZERO}"
        )
    if stats.reasoning_tokens_estimated:
        line += (
            f"; {stats.reasoning_tokens_estimated} counted as reasoning steps (the server sent "
            "no completion_tokens_details.reasoning_tokens)"
        )
    return line


def steps_text(per_step: float, sizes: dict[int, int]) -> str:
    """Tokens per decode step, and their spread when known (summary, Markdown)."""
    text = f"decode steps carried {per_step:.2f} tokens each on average"
    total = sum(sizes.values())
    if total:
        spread = ", ".join(
            f"{k} token{'s' * (k > 1)} {n / total:.0%}" for k, n in sorted(sizes.items())
        )
        text += f" ({spread} of {total} steps)"
    return text + " (speculative decoding, or a stream that fell behind its engine)"


def _steps_line(stats: EndpointStats, per_step: float) -> str:
    return "  " + steps_text(per_step, dict(stats.step_sizes))


def _cache_line(stats: EndpointStats) -> str:
    share = stats.cache_hit_share
    return (
        f"  prompt cache: {stats.total_cached_tokens} of {stats.cache_prompt_tokens} prompt "
        f"tokens served from the server's cache ({share or 0.0:.1%}, usage of "
        f"{stats.cache_reported} requests)"
    )


def _retry_line(stats: EndpointStats) -> str:
    how = ", ".join(f"{label} x{count}" for label, count in stats.retry_failures.most_common())
    return f"  retried {stats.retried} requests, {stats.retries} retries ({how})"


def answer_warnings(
    done: int, mismatches: int, examples: list[str], empty: int, stopped_at_limit: int
) -> list[tuple[bool, str]]:
    """What the answers themselves say is wrong, for the summary and the Markdown report:
    (a warning rather than a note, the sentence). ``done`` counts the successful requests;
    ``examples`` are length mismatches to name (the live and HTML pages say the same in
    dashboard.js's ``answerWarnings``)."""
    out: list[tuple[bool, str]] = []
    if mismatches:
        out.append((True, (
            f"{mismatches} of {done} successful requests were not the length they asked for "
            f"(ignore_eos / min_tokens), e.g. {'; '.join(examples)}: the server, or a proxy in "
            "front of it, does not honour those fields"
        )))  # fmt: skip
    if empty:
        out.append((True, (
            f"{empty} of {done} successful requests had no output at all (0 tokens): a gateway "
            "that turns its engine's failure into an empty answer does this (sageLLM's does); "
            "look in the server's log"
        )))  # fmt: skip
    if done and stopped_at_limit * 2 >= done:
        out.append((False, (
            f"{stopped_at_limit} of {done} requests said finish_reason 'stop' with exactly "
            "max_tokens out: this server reports 'stop' where the length limit ended an answer "
            "(sageLLM's gateway streams so), so its finish reasons do not tell the limit from "
            "an end of sequence"
        )))  # fmt: skip
    return out


def _notes(stats: EndpointStats) -> list[str]:
    """What the summary says under an endpoint's throughput: where token counts came from,
    what the answers warn of, reasoning, prompt cache, retries and back-offs."""
    lines: list[str] = []
    if stats.output_tokens_estimated:
        lines.append(
            f"  note: {stats.output_tokens_estimated} requests had no usage from the "
            "server; their output tokens are chunk counts (estimate; --tokenizer DIR "
            "counts them exactly)"
        )
    for warning, text in answer_warnings(
        stats.succeeded,
        stats.length_mismatches,
        stats.length_mismatch_examples[:3],
        stats.empty_answers,
        stats.stopped_at_limit,
    ):
        lines.append(f"  {'WARNING' if warning else 'note'}: {text}")
    if stats.output_tokens_tokenized:
        lines.append(
            f"  note: {stats.output_tokens_tokenized} requests had no usage from the "
            "server; the tokenizer counted their output tokens in their text (tokenizer)"
        )
    if stats.reasoning_requests:
        lines.append(_reasoning_line(stats))
    if stats.cache_reported:
        lines.append(_cache_line(stats))
    per_step = stats.tokens_per_step
    if per_step is not None and (per_step >= MULTI_TOKEN_STEPS or len(stats.step_sizes) > 1):
        lines.append(_steps_line(stats, per_step))
    if stats.retries:
        lines.append(_retry_line(stats))
    if stats.backoffs:
        lines.append(
            f"  backed off {stats.backoffs} times after connection errors in a row "
            f"({stats.backoff_ms / 1e3:.1f} s of waiting, all users together)"
        )
    return lines


def render_summary(
    by_name: dict[str, EndpointStats],
    total: EndpointStats,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    window: float | None = None,
    window_note: str = "first send to last completion",
) -> str:
    """A plain-text report, one block per request name plus an "All" block when several."""
    if total.requests == 0:
        return "LLM summary: no requests were completed."
    seconds = total.window if window is None else window
    out = [f"LLM summary: window {seconds:.2f} s ({window_note})"]
    header = ["", "count", "mean", *(_label(p) for p in percentiles), "max"]
    blocks = list(by_name.items())
    if len(blocks) > 1:
        blocks.append(("All", total))
    for name, stats in blocks:
        out.append(f"{name}")
        out.append(_throughput_line(stats, seconds))
        out.extend(_notes(stats))
        if stats.succeeded:
            out.extend(_table([header, *_latency_rows(stats, percentiles)]))
            if stats.phase_send.count:
                out.append(_phase_line(stats))
        for error_class, count in stats.failures.most_common():
            example = stats.failure_examples.get(error_class, "")
            out.append(f"  failure {error_class} x{count}: {example}")
    return "\n".join(out)
