"""Request records, metric derivation, aggregation, records file and console summary."""

from __future__ import annotations

from sagellm_users.metrics.collector import TIMING_METRICS, EndpointStats, MetricsCollector
from sagellm_users.metrics.distribution import Distribution
from sagellm_users.metrics.record import RequestRecord, Status, TokenSource
from sagellm_users.metrics.records_file import RecordsWriter
from sagellm_users.metrics.summary import DEFAULT_PERCENTILES, render_summary

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
