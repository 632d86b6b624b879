"""Request records, metric derivation, aggregation, records file and console summary."""

from __future__ import annotations

from sagellm_users._metrics.collector import TIMING_METRICS, EndpointStats, MetricsCollector
from sagellm_users._metrics.distribution import Distribution
from sagellm_users._metrics.record import RequestRecord, Status, TokenSource
from sagellm_users._metrics.records_file import RecordsWriter
from sagellm_users._metrics.summary import DEFAULT_PERCENTILES, render_summary

__all__ = [
    "DEFAULT_PERCENTILES",
    "TIMING_METRICS",
    "Distribution",
    "EndpointStats",
    "MetricsCollector",
    "RecordsWriter",
    "RequestRecord",
    "Status",
    "TokenSource",
    "render_summary",
]
