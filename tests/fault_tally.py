"""The fault suite's tally, printed at the end of a pytest run (CI's log shows it).

Each fault test adds one row: how many requests the run made, how they ended, how many
faults the mock says it injected, and how many finished requests are missing from the
records file (the suite asserts that this is zero; the tally shows it was counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class FaultRow:
    fault: str
    requests: int
    failed: int
    cancelled: int
    injected: int
    lost_records: int


TALLY = pytest.StashKey[list[FaultRow]]()


def add_row(config: pytest.Config, row: FaultRow) -> None:
    config.stash.setdefault(TALLY, []).append(row)


def summary_lines(rows: list[FaultRow]) -> list[str]:
    """One line per fault, then the totals: faults tried, requests, lost records."""
    width = max((len(row.fault) for row in rows), default=10)
    lines = [
        f"{row.fault:<{width}} {row.requests:>5} requests {row.failed:>4} failed "
        f"{row.cancelled:>3} cancelled {row.injected:>4} injected {row.lost_records} lost records"
        for row in rows
    ]
    lines.append(
        f"{len({row.fault for row in rows})} faults tried, "
        f"{sum(row.requests for row in rows):,} requests, "
        f"{sum(row.failed for row in rows):,} failed, "
        f"{sum(row.injected for row in rows):,} injected, "
        f"{sum(row.lost_records for row in rows)} lost records"
    )
    return lines
