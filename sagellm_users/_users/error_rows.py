"""The text a failure shows in Locust's error table: one row per cause, never per request.

Locust keys its error table by ``(method, name, str(error))`` and keeps every row for the
whole run (and prints them all at the end). A gateway that puts a request id in each error
body made every failure a new row: a gigabyte of rows in half a minute. So Locust is given
a label, not the exception: the class, the status and a short reason with ids scrubbed
(:func:`sagellm_users._redact.scrub_ids`). Scrubbing is a heuristic, so the labels of each
class (and status) are also capped: past :data:`MAX_REASONS` distinct reasons, the rest
share one row. The full excerpt stays in the request's record (``error`` in the records
file) and the LLM report.
"""

from __future__ import annotations

from sagellm_users._errors import HTTPStatusError, excerpt
from sagellm_users._redact import scrub_ids, scrub_secrets

__all__ = ["MAX_REASONS", "ErrorRows", "failure_label"]

MAX_REASONS = 10
"""Distinct reasons kept per error class (and HTTP status) in one process."""

_REASON_CHARS = 120
_SCRUBBED_CHARS = 2 * _REASON_CHARS
"""Only what can reach the label is scrubbed (placeholders are shorter than most ids)."""


def _kind(exc: BaseException) -> str:
    if isinstance(exc, HTTPStatusError):
        return f"{type(exc).__name__}: HTTP {exc.status}"
    return type(exc).__name__


def failure_label(exc: BaseException) -> str:
    """``Class: reason``, ids scrubbed, one short line (secrets were scrubbed when the
    error was built; an exception from outside the hierarchy is scrubbed here)."""
    name = type(exc).__name__
    if isinstance(exc, HTTPStatusError):
        head = f"HTTP {exc.status} {exc.reason}".rstrip()
        body = exc.body_excerpt[:_SCRUBBED_CHARS]
        text = f"{head}: {scrub_ids(body)}" if body else head
    else:
        text = scrub_ids(scrub_secrets(str(exc) or name)[:_SCRUBBED_CHARS])
    return f"{name}: {excerpt(text, _REASON_CHARS)}"


class ErrorRows:
    """The labels one process gives Locust, at most :data:`MAX_REASONS` per kind."""

    def __init__(self, max_reasons: int = MAX_REASONS) -> None:
        self.max_reasons = max_reasons
        self._reasons: dict[str, set[str]] = {}

    def label(self, exc: BaseException) -> str:
        """The row ``exc`` is counted in."""
        kind = _kind(exc)
        label = failure_label(exc)
        seen = self._reasons.setdefault(kind, set())
        if label in seen:
            return label
        if len(seen) < self.max_reasons:
            seen.add(label)
            return label
        return f"{kind} (other reasons: each request's record has its own)"
