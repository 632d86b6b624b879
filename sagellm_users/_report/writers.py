"""Writers for :class:`LLMReport`: JSON (vLLM-compatible), CSV, Markdown and HTML.

The writer is chosen by the file's extension, so ``--llm-report run.json --llm-report
run.md`` writes both. Files are written whole to a temporary name and renamed, so a reader
never sees half a report.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path

import orjson

from sagellm_users._errors import ConfigError
from sagellm_users._metrics.summary import (
    MULTI_TOKEN_STEPS,
    REASONING_USAGE_ZERO,
    answer_warnings,
    steps_text,
)
from sagellm_users._report.html import render_html_report
from sagellm_users._report.junit import render_junit
from sagellm_users._report.load import load_text
from sagellm_users._report.model import (
    ClientHealthReport,
    DistributionSummary,
    EndpointReport,
    LLMReport,
    MetricsBlock,
)

__all__ = [
    "WRITERS",
    "check_report_path",
    "load_text",
    "render_csv",
    "render_json",
    "render_markdown",
    "render_slo_table",
    "write_report",
]

_TIMING_FIELDS = (
    "ttft_ms",
    "ttst_ms",
    "ttfo_ms",
    "tpot_ms",
    "itl_ms",
    "itl_reasoning_ms",
    "itl_answer_ms",
    "e2el_ms",
    "tbt_ms",
    "itl_per_token_ms",
)
_TOKEN_FIELDS = ("input_tokens", "output_tokens")
_SCALARS = (
    "requests",
    "completed",
    "failed",
    "cancelled",
    "error_rate",
    "duration_s",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "total_input_tokens",
    "total_output_tokens",
    "retried",
    "retries",
)


def render_json(report: LLMReport) -> bytes:
    return orjson.dumps(report.to_json_dict(), option=orjson.OPT_INDENT_2) + b"\n"


def _slices(report: LLMReport) -> list[tuple[str, MetricsBlock]]:
    rows: list[tuple[str, MetricsBlock]] = [("total", report.total)]
    rows += [("name", e) for e in report.by_name]
    rows += [("user", e) for e in report.by_user]
    return rows


def render_csv(report: LLMReport) -> bytes:
    """One row per slice (total, each name, each User class and name); metrics as columns."""
    labels = [f"p{p:g}" for p in report.percentiles]
    stats = ("mean", "median", "std", "min", "max")
    header = ["scope", "user", "name", *_SCALARS]
    for metric in (*_TIMING_FIELDS, *_TOKEN_FIELDS):
        header += [f"{metric}_{s}" for s in stats]
        header += [f"{metric}_{label}" for label in labels]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for scope, block in _slices(report):
        user = block.user if isinstance(block, EndpointReport) else ""
        name = block.name if isinstance(block, EndpointReport) else ""
        row: list[object] = [scope, user or "", name, *(getattr(block, f) for f in _SCALARS)]
        for metric in (*_TIMING_FIELDS, *_TOKEN_FIELDS):
            summary: DistributionSummary | None = getattr(block, metric)
            if summary is None:  # a report written before this metric was measured
                row += [""] * (len(stats) + len(labels))
                continue
            row += [_cell(getattr(summary, s)) for s in stats]
            row += [_cell(summary.percentiles.get(label)) for label in labels]
        writer.writerow(row)
    return out.getvalue().encode()


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def records_lost_text(report: LLMReport) -> str:
    """The sentence that says the records file is short of requests (summary, Markdown)."""
    return (
        f"{report.records_lost} record(s) could not be written to the records file "
        f"({report.records_error}); they are counted here but missing from the file"
    )


def render_markdown(report: LLMReport) -> bytes:
    t = report.total
    w = report.window
    lines = [
        "# LLM load test report",
        "",
        f"- host: `{report.run.host}`; models: {', '.join(t.models) or '-'}; "
        f"backends: {', '.join(t.backends) or '-'}",
        f"- window: {w.seconds:.2f} s from {w.start} to {w.end}; warm-up: {w.warmup}; "
        f"excluded: {w.excluded_requests} requests",
        f"- {report.tool.name} {report.tool.version}, Locust {report.tool.locust}, "
        f"Python {report.tool.python}",
    ]
    if report.run.load is not None:
        lines.append(f"- load: {load_text(report.run.load)}")
    for lost in report.lost_workers:
        last = "never" if lost.last_report_at is None else f"{lost.last_report_at:%H:%M:%S} UTC"
        lines.append(
            f"- **PARTIAL**: worker `{lost.worker}` was lost at {lost.lost_at:%H:%M:%S} UTC "
            f"(last report {last}); what it measured after its last report is not in this report"
        )
    if report.records_lost:
        lines.append(f"- **LOST**: {records_lost_text(report)}")
    lines += [
        "",
        "| scope | requests | completed | failed | cancelled | error rate | retried | req/s "
        "| output tok/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scope, block in _slices(report):
        label = "all" if scope == "total" else _slice_label(block)
        lines.append(
            f"| {label} | {block.requests} | {block.completed} | {block.failed} | "
            f"{block.cancelled} | {block.error_rate:.2%} | {block.retried} | "
            f"{block.request_throughput:.2f} | {block.output_throughput:.1f} |"
        )
    if report.total.retried:
        how = ", ".join(f"{k} x{v}" for k, v in report.total.retry_failures.items())
        lines += [
            "",
            f"Retried {report.total.retried} requests, {report.total.retries} retries ({how}); "
            "each request counts once, by its last attempt.",
        ]
    labels = [f"p{p:g}" for p in report.percentiles]
    lines += [
        "",
        "| metric (all, ms) | count | mean | median | std | " + " | ".join(labels) + " | max |",
        "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in labels) + " | ---: |",
    ]
    for metric in _TIMING_FIELDS:
        s: DistributionSummary | None = getattr(t, metric)
        if s is None or not s.count:
            continue
        cells = [_fmt(s.percentiles.get(label)) for label in labels]
        lines.append(
            f"| {metric.removesuffix('_ms').upper()} | {s.count} | {_fmt(s.mean)} | "
            f"{_fmt(s.median)} | {_fmt(s.std)} | " + " | ".join(cells) + f" | {_fmt(s.max)} |"
        )
    lines += _phase_table(t, labels)
    if t.failures:
        lines += ["", "| failure class | count | example |", "| --- | ---: | --- |"]
        for failure in t.failures:
            example = failure.example.replace("|", "\\|")
            lines.append(f"| {failure.error_class} | {failure.count} | {example} |")
    if report.slos:
        lines += ["", "```", render_slo_table(report), "```"]
    if report.client is not None:
        lines += ["", "```", render_client_health(report.client), "```"]
    p = t.token_provenance
    lines += [
        "",
        f"Token counts: output from server usage for {p.output_from_usage} requests, "
        f"counted by the tokenizer for {p.output_tokenized}, "
        f"estimated for {p.output_estimated}; input from usage for {p.input_from_usage}, "
        f"estimated for {p.input_estimated}.",
        "",
    ]
    lines += _reasoning_and_cache(t)
    lines += _warnings(t)
    return "\n".join(lines).encode()


def _reasoning_and_cache(t: MetricsBlock) -> list[str]:
    """What a reasoning model spent, and what the server's prefix cache served."""
    lines = []
    if t.reasoning_requests:
        n = t.reasoning_requests
        text = (
            f"Reasoning: {n} of {t.completed} requests reasoned, {t.total_reasoning_tokens} "
            f"of {t.total_output_tokens} output tokens ({t.total_reasoning_tokens / n:.1f} "
            "per request)"
        )
        if t.reasoning_usage_zero:
            text += (
                f"; the server's usage said 0 reasoning tokens for {t.reasoning_usage_zero} "
                f"of them, which streamed reasoning: {REASONING_USAGE_ZERO}"
            )
        if t.reasoning_tokens_estimated:
            text += (
                f"; for {t.reasoning_tokens_estimated} of them counted as reasoning steps "
                "(no reasoning_tokens in the server's usage)"
            )
        lines += [text + ".", ""]
    per_step = t.tokens_per_step
    if per_step is not None and (per_step >= MULTI_TOKEN_STEPS or len(t.step_sizes) > 1):
        sizes = {int(k): v for k, v in t.step_sizes.items()}
        lines += [f"Tokens per step: {steps_text(per_step, sizes)}.", ""]
    if t.cache_reported:
        lines += [
            f"Prompt cache: {t.total_cached_tokens} prompt tokens served from the server's "
            f"cache, {t.cache_hit_share or 0.0:.1%} of the prompts of the "
            f"{t.cache_reported} requests whose usage said.",
            "",
        ]
    return lines


PHASE_TITLES = {
    "connect": "connect (new connections)",
    "tls": "TLS handshake",
    "send": "send request",
    "wait": "wait for headers",
    "first_byte": "headers to first byte",
}


def _phase_table(t: MetricsBlock, labels: list[str]) -> list[str]:
    """The HTTP phases before the first byte, as a table (none without HTTP)."""
    phases = [(name, s) for name, s in t.http_phases_ms.items() if s.count]
    if not phases:
        return []
    lines = [
        "",
        "| HTTP phase (ms) | count | mean | " + " | ".join(labels) + " | max |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in labels) + " | ---: |",
    ]
    for name, s in phases:
        cells = [_fmt(s.percentiles.get(label)) for label in labels]
        title = PHASE_TITLES.get(name, name)
        lines.append(
            f"| {title} | {s.count} | {_fmt(s.mean)} | " + " | ".join(cells) + f" | {_fmt(s.max)} |"
        )
    return lines


def _warnings(t: MetricsBlock) -> list[str]:
    """What the summary warns of, as Markdown paragraphs."""
    found = answer_warnings(
        t.completed,
        t.length_mismatches,
        t.length_mismatch_examples,
        t.empty_answers,
        t.stopped_at_limit,
    )
    return [line for warning, text in found if warning for line in (f"**Warning**: {text}.", "")]


def render_slo_table(report: LLMReport) -> str:
    """The pass/fail table of the --slo objectives, for the console and Markdown."""
    width = max(len(r.slo) for r in report.slos)
    lines = [f"SLO {'objective':<{width}}  {'measured':>12}  verdict"]
    for result in report.slos:
        value = "-" if result.value is None else f"{result.value:.4g}"
        lines.append(
            f"    {result.slo:<{width}}  {value:>12}  {'pass' if result.passed else 'FAIL'}"
        )
    verdict = "all objectives met" if report.slos_passed else "SLO FAILED"
    lines.append(f"    {verdict}")
    stop = report.early_stop
    if stop is not None:
        lines.append(f"    stopped early at {stop.at:%H:%M:%S} UTC (--slo-early-stop):")
        lines += [f"      {slo}: {reason}" for slo, reason in stop.objectives.items()]
    return "\n".join(lines)


def render_client_health(client: ClientHealthReport) -> str:
    """One line on whether the load generator kept up, then any warnings."""
    t = client.total
    loop, start = t.loop_lag_ms.percentiles, t.start_lag_ms.percentiles
    cpu = "-" if t.cpu_mean is None else f"{t.cpu_mean:.0%}"  # merged: the mean per process
    start_text = f"start lag p99 {_fmt(start.get('p99'))} ms, " if t.start_lag_ms.count else ""
    verdict = "timings trustworthy" if client.trustworthy else "TIMINGS NOT TRUSTWORTHY"
    lines = [
        f"Client: {client.processes} load-generating process(es); event-loop lag "
        f"p50 {_fmt(loop.get('p50'))} / p99 {_fmt(loop.get('p99'))} ms, {start_text}"
        f"CPU {cpu} of a core per process (peak {t.cpu_peak:.0%}): {verdict}"
    ]
    lines += [f"  WARNING: {warning}" for warning in client.warnings]
    return "\n".join(lines)


def _slice_label(block: MetricsBlock) -> str:
    """``User name``; just the name where it already starts with the user's (a compare
    run's ``vllm@host`` rows)."""
    if isinstance(block, EndpointReport):
        if not block.user or block.name.startswith(block.user + " "):
            return block.name
        return f"{block.user} {block.name}"
    return "all"


WRITERS: dict[str, Callable[[LLMReport], bytes]] = {
    ".json": render_json,
    ".csv": render_csv,
    ".md": render_markdown,
    ".html": render_html_report,
    ".xml": render_junit,
}


def check_report_path(path: Path, option: str = "--llm-report") -> None:
    """Reject, before any load, a report path that cannot be written."""
    if path.suffix.lower() not in WRITERS:
        known = ", ".join(sorted(WRITERS))
        raise ConfigError(f"{option} {str(path)!r}: unknown format; end the name in {known}")
    if not path.parent.is_dir():
        raise ConfigError(
            f"{option} {str(path)!r}: directory {str(path.parent)!r} does not exist; create it "
            "or choose another path"
        )
    if path.is_dir():
        raise ConfigError(f"{option} {str(path)!r}: is a directory; give a file name in it")
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(
            f"{option} {str(path)!r}: directory {str(path.parent)!r} is not writable; choose "
            "another path"
        )


def write_report(report: LLMReport, path: Path) -> None:
    data = WRITERS[path.suffix.lower()](report)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
