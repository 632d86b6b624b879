"""``sagellm-report``: saved JSON reports to one self-contained HTML page.

One report gives the same page as ``--llm-html``; several give a comparison (the first is
the baseline every delta is measured against), for before/after and A/B decisions.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from sagellm_users._report.html import render_html
from sagellm_users._report.model import SCHEMA_VERSION, LLMReport
from sagellm_users._report.plots import upgrade_timeline_version_2
from sagellm_users._report.server import upgrade_version_1

__all__ = ["ReportFileError", "load_report", "main", "unique_labels"]


class ReportFileError(Exception):
    """A file that is not a readable sagellm-locust JSON report; the message says why."""


def load_report(path: Path) -> dict[str, Any]:
    """The report in ``path``, checked against the model and in its canonical JSON form;
    an older schema version is brought to the current one first."""
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ReportFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ReportFileError(f"{path}: cannot be read ({exc.strerror})") from None
    except orjson.JSONDecodeError as exc:
        raise ReportFileError(
            f"{path}: not JSON ({exc}); give the .json file written by --llm-report"
        ) from None
    if not isinstance(raw, dict) or "total" not in raw or "schema_version" not in raw:
        raise ReportFileError(
            f"{path}: not a sagellm-locust report (no 'schema_version' and 'total'); "
            "give a file written by --llm-report NAME.json"
        )
    if raw["schema_version"] == 1:  # server percentiles were bare numbers
        raw = {**raw, "schema_version": 2}
        if isinstance(raw.get("server"), list):
            raw["server"] = upgrade_version_1(raw["server"])
    if raw["schema_version"] == 2:  # timeline tokens counted at each request's end
        raw = {**raw, "schema_version": 3}
        if isinstance(raw.get("timeline"), dict):
            raw["timeline"] = upgrade_timeline_version_2(raw["timeline"])
    if raw["schema_version"] != SCHEMA_VERSION:
        raise ReportFileError(
            f"{path}: report schema version {raw['schema_version']!r}, this sagellm-report "
            f"reads versions 1 to {SCHEMA_VERSION}; render it with the version that wrote it"
        )
    try:
        report = LLMReport.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ReportFileError(
            f"{path}: not a valid report: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s)); was it edited by hand?"
        ) from None
    return report.to_json_dict()


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Each file's name without .json; parents are added where names repeat."""
    labels = [p.stem for p in paths]
    if len(set(labels)) == len(labels):
        return labels
    labels = [f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem for p in paths]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{label} #{i + 1}" for i, label in enumerate(labels)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagellm-report",
        description="Render saved sagellm-locust JSON reports as one self-contained HTML page. "
        "Several reports are compared side by side against the first.",
    )
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the HTML file to write (default: REPORT.html beside a single report, "
        "comparison.html in the current directory for several)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        help="a name for each report, in order (default: the file names)",
    )
    parser.add_argument("--title", default="", help="the page's title")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    paths: list[Path] = args.reports
    if args.label and len(args.label) != len(paths):
        parser.error(f"--label given {len(args.label)} time(s) for {len(paths)} report(s)")
    output: Path = args.output or (
        paths[0].with_suffix(".html") if len(paths) == 1 else Path("comparison.html")
    )
    if output.suffix.lower() != ".html":
        parser.error(f"--output {str(output)!r}: end the name in .html")
    if not output.parent.is_dir():
        parser.error(f"--output {str(output)!r}: directory {str(output.parent)!r} does not exist")
    try:
        reports = [load_report(path) for path in paths]
    except ReportFileError as exc:
        print(f"sagellm-report: error: {exc}", file=sys.stderr)
        return 2
    labels = args.label or unique_labels(paths)
    if args.title:
        title = args.title
    elif len(paths) == 1:
        title = f"LLM load test: {labels[0]}"
    else:
        title = "LLM load tests: " + " vs ".join(labels)
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_bytes(render_html(reports, labels, title))
    os.replace(temporary, output)
    print(f"Report: {output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
