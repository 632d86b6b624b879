"""The result model of a load test and its writers (JSON, CSV, Markdown)."""

from __future__ import annotations

from sagellm_users._report.model import (
    SCHEMA_VERSION,
    ClientHealthReport,
    DistributionSummary,
    EarlyStopInfo,
    EndpointReport,
    LLMReport,
    MetricsBlock,
    build_report,
)
from sagellm_users._report.writers import (
    WRITERS,
    check_report_path,
    load_text,
    records_lost_text,
    render_client_health,
    render_csv,
    render_json,
    render_markdown,
    render_slo_table,
    write_report,
)

__all__ = [
    "SCHEMA_VERSION",
    "WRITERS",
    "ClientHealthReport",
    "DistributionSummary",
    "EarlyStopInfo",
    "EndpointReport",
    "LLMReport",
    "MetricsBlock",
    "build_report",
    "check_report_path",
    "load_text",
    "records_lost_text",
    "render_client_health",
    "render_csv",
    "render_json",
    "render_markdown",
    "render_slo_table",
    "write_report",
]
