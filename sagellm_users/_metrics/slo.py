"""Service-level objectives: parse ``--slo``, judge a report, and count goodput.

Grammar (clauses separated by commas, spaces ignored)::

    clause    := metric op value
    metric    := timing "_" stat | "error_rate" | "request_throughput"
               | "output_throughput" | "total_token_throughput" | "goodput"
    timing    := "ttft" | "ttst" | "ttfo" | "tpot" | "itl" | "e2el" | "e2e" | "tbt"
    stat      := "mean" | "median" | "min" | "max" | "p" number      (p99, p99.9)
    op        := "<=" | "<" | ">=" | ">"
    value     := number [unit]      unit: "ms" (default for timings), "s", "%"

``error_rate`` takes a percentage (``1%``) or a fraction below 1 (``0.01``): a bare ``1``
would mean 100%, which every run meets, so it is refused with both ways to write 1%.

Examples: ``ttft_p99<=500ms``, ``tpot_p50<=50ms``, ``error_rate<=1%``,
``output_throughput>=1000`` (tokens/s), ``goodput>=5`` (requests/s).

Every clause on a timing with ``<`` or ``<=`` also defines a per-request objective: a
request is *good* when its own TTFT / TTST / TTFO / TPOT / ITL mean / E2E / TBT meets every
such threshold, and goodput is good requests per second of the window (vLLM's definition).
TTFO (time to the answer after a model's reasoning) judges only requests that reasoned.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from sagellm_users._errors import ConfigError
from sagellm_users._metrics.record import RequestRecord

__all__ = ["SLO", "GoodRequest", "good_request_rule", "parse_slos"]

_TIMINGS = {
    "ttft": "ttft",
    "ttst": "ttst",
    "ttfo": "ttfo",
    "tpot": "tpot",
    "itl": "itl",
    "e2el": "e2el",
    "e2e": "e2el",
    "tbt": "tbt",
}
_PER_REQUEST = {
    "ttft": "ttft",
    "ttst": "ttst",
    "ttfo": "ttfo",
    "tpot": "tpot",
    "itl": "tbt",
    "e2el": "e2e",
    "tbt": "tbt",
}
"""Report timing -> the RequestRecord attribute a single request is judged by."""
_RATES = ("error_rate", "request_throughput", "output_throughput", "total_token_throughput")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_CLAUSE = re.compile(
    r"^(?P<metric>[a-z_0-9.]+?)(?P<op><=|>=|<|>)(?P<value>[0-9]*\.?[0-9]+)(?P<unit>ms|s|%)?$"
)
_STAT = re.compile(r"^(mean|median|min|max|p(\d+(?:\.\d+)?))$")

GoodRequest = Callable[[RequestRecord], bool]


@dataclass(frozen=True, slots=True)
class SLO:
    """One objective. ``threshold`` is in the report's unit: ms, a fraction, or per second."""

    text: str
    metric: str
    """``error_rate``, a throughput, ``goodput``, or a timing such as ``ttft_ms``."""
    stat: str | None
    """For timings: ``mean``, ``median``, ``min``, ``max`` or a percentile label (``p99``)."""
    op: str
    threshold: float

    def holds(self, value: float | None) -> bool:
        """False when there is no value: an objective nothing measured is not met."""
        return value is not None and _OPS[self.op](value, self.threshold)


def parse_slos(text: str) -> tuple[SLO, ...]:
    """Parse ``--slo``; raise :class:`ConfigError` naming the bad clause and the fix."""
    slos = []
    for raw in text.split(","):
        clause = "".join(raw.split()).lower()
        if clause:
            slos.append(_parse_clause(clause))
    return tuple(slos)


def _parse_clause(clause: str) -> SLO:
    match = _CLAUSE.match(clause)
    if match is None:
        raise ConfigError(
            f"--slo: cannot read {clause!r}; write METRIC OP VALUE, e.g. ttft_p99<=500ms"
        )
    metric, op, unit = match["metric"], match["op"], match["unit"]
    value = float(match["value"])
    if metric in _RATES or metric == "goodput":
        if metric == "error_rate":
            value = _error_rate(clause, value, unit)
        elif unit is not None:
            raise ConfigError(f"--slo: {clause!r}: {metric} is per second and takes no unit")
        return SLO(clause, metric, None, op, value)
    timing, _, stat = metric.partition("_")
    if timing not in _TIMINGS or not _STAT.match(stat):
        known = ", ".join(sorted({*_TIMINGS, *_RATES, "goodput"}))
        raise ConfigError(
            f"--slo: unknown metric {metric!r} in {clause!r}; use TIMING_STAT "
            f"(ttft_p99, tpot_mean, e2el_max) or one of: {known}"
        )
    if unit == "%":
        raise ConfigError(f"--slo: {clause!r}: a timing takes ms or s, not %")
    threshold = value * 1000 if unit == "s" else value
    label = stat if not stat.startswith("p") else f"p{float(stat[1:]):g}"
    return SLO(clause, f"{_TIMINGS[timing]}_ms", label, op, threshold)


def _error_rate(clause: str, value: float, unit: str | None) -> float:
    """The fraction an error-rate clause means. A bare number is a fraction, so a bare 1 or
    more (100% or more: always met) is a percentage written without its sign: refused."""
    if unit not in (None, "%"):
        raise ConfigError(f"--slo: {clause!r}: error_rate takes a fraction or a %")
    if unit is None and value >= 1:
        raise ConfigError(
            f"--slo: {clause!r}: a bare number is a fraction ({value:g} would be "
            f"{value * 100:g}%, always met); write {value:g}% or {value / 100:g}"
        )
    fraction = value / 100 if unit == "%" else value
    if fraction > 1:
        raise ConfigError(f"--slo: {clause!r}: an error rate is at most 100%")
    return fraction


def good_request_rule(slos: tuple[SLO, ...]) -> GoodRequest | None:
    """The per-request test behind goodput, or None when no clause bounds a timing."""
    limits: list[tuple[str, Callable[[float, float], bool], float]] = []
    for slo in slos:
        if slo.stat is None or slo.op not in ("<", "<="):
            continue
        attribute = _PER_REQUEST[slo.metric.removesuffix("_ms")]
        limits.append((attribute, _OPS[slo.op], slo.threshold / 1000))
    if not limits:
        return None

    def good(record: RequestRecord) -> bool:
        for attribute, compare, seconds in limits:
            value = getattr(record, attribute)
            if value is not None and not compare(value, seconds):
                return False
        return True

    return good
