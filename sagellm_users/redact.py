"""What text taken from a response may keep: no secret, and for grouping, no per-response id.

Two jobs, both on text a server chose (error bodies, in-stream error events, reason phrases,
echoed headers):

* **Secrets.** A misconfigured gateway echoes the request's ``Authorization`` header in its
  401. Every client registers the secrets it sends (:func:`register_secret`), and every
  :class:`~sagellm_users.errors.LLMError` message and body excerpt passes through
  :func:`scrub_secrets` when the error is built, so no record, report, page or log line
  can carry one. The registry is per process and only grows with the keys clients were
  given, so a secret registered by one environment is scrubbed in every other (scrubbing
  more than needed is harmless; missing one is not).
* **Ids.** Gateways put a request id, trace id or timestamp in every error body, so two
  failures of one cause differ in text. :func:`scrub_ids` replaces those with placeholders,
  which is what lets Locust's error table (keyed by the error's text) hold one row per cause
  instead of one per request.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping

__all__ = [
    "REDACTED",
    "register_header_secrets",
    "register_secret",
    "scrub_ids",
    "scrub_secrets",
]

REDACTED = "[REDACTED]"

_MIN_SECRET_CHARS = 4
"""Shorter values cannot be secrets worth the name, and scrubbing them would mangle text."""


class _Registry:
    """The process's secrets and one pattern matching any of them (longest form first)."""

    lock = threading.Lock()
    secrets: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None


def _variants(value: str) -> set[str]:
    """The forms a server may echo: the whole value, its token without the scheme
    (``Bearer KEY`` -> ``KEY``) and their URL- and JSON-escaped spellings."""
    value = value.strip()
    found = {value}
    parts = value.split()
    if len(parts) > 1:
        found.add(parts[-1])
    for v in list(found):
        found.add(urllib.parse.quote(v, safe=""))
        found.add(v.replace("/", "\\/"))
    return {v for v in found if len(v) >= _MIN_SECRET_CHARS}


def register_secret(value: str | None) -> None:
    """Scrub ``value`` (and the forms a server may echo it in) from every error from now on."""
    if not value:
        return
    new = _variants(value)
    with _Registry.lock:
        if new <= _Registry.secrets:
            return
        secrets = _Registry.secrets | new
        ordered = sorted(secrets, key=len, reverse=True)  # the longest form wins
        _Registry.pattern = re.compile("|".join(re.escape(s) for s in ordered))
        _Registry.secrets = secrets


def register_header_secrets(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """Every value of the headers a user gave a client: each may be a credential (README:
    "Secrets and TLS"), and a value shorter than four characters is left alone."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for _, value in items:
        register_secret(value)


def scrub_secrets(text: str) -> str:
    """``text`` with every registered secret replaced by :data:`REDACTED`, including one cut
    short at either end (an excerpt or a bounded read may stop in the middle of a key)."""
    pattern, secrets = _Registry.pattern, _Registry.secrets
    if pattern is None or not text:
        return text
    text = pattern.sub(REDACTED, text)
    for secret in secrets:
        text = _scrub_cut_ends(text, secret)
    return text


def _scrub_cut_ends(text: str, secret: str) -> str:
    longest = min(len(secret) - 1, len(text))
    for n in range(longest, _MIN_SECRET_CHARS - 1, -1):
        if text.endswith(secret[:n]):
            text = text[:-n] + REDACTED
            break
    longest = min(len(secret) - 1, len(text))
    for n in range(longest, _MIN_SECRET_CHARS - 1, -1):
        if text.startswith(secret[-n:]):
            text = REDACTED + text[n:]
            break
    return text


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # RFC 9110 dates (Date, Last-Modified echoed in a page): Sun, 06 Dec 2026 02:02:28 GMT
    (
        re.compile(rf"\b\w{{3}}, \d{{1,2}} {_MONTH} \d{{4}} \d{{2}}:\d{{2}}:\d{{2}}( GMT)?"),
        "<time>",
    ),
    # ISO 8601 and nginx's 2026/12/06 02:02:28, with fraction and zone
    (
        re.compile(
            r"\b\d{4}[-/]\d{2}[-/]\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?)?"
        ),
        "<time>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
)
_ID_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # UUIDs (request ids of most gateways and of vLLM itself)
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<id>"),
    # hex ids: trace ids, span ids, Cloudflare ray ids (8f1a2b3c4d5e6f70-SJC), digests
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<id>"),
    # opaque alphanumeric ids: ULIDs, req_01HZX..., chatcmpl-AbC123..., base62 tokens
    (re.compile(r"(?<![A-Za-z0-9])(?=(?:[A-Za-z]*\d){2})[A-Za-z0-9]{10,}(?![A-Za-z0-9])"), "<id>"),
    # decimals (latencies, sizes) and numbers of three digits or more (epoch times, counts)
    (re.compile(r"\d+\.\d+|\b\d{3,}\b"), "<n>"),
)

_KEPT = re.compile(
    # addresses (127.0.0.1:8000) and versions (nginx/1.25.3): one per server, and telling
    r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b|\b[A-Za-z][\w.-]*:\d{2,5}\b|[A-Za-z]+/\d+(?:\.\d+)*"
)


def scrub_ids(text: str) -> str:
    """``text`` with request ids, trace ids, timestamps and long numbers replaced by
    placeholders, so failures of one cause read the same."""
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group())
        return f"\x00{len(kept) - 1}\x00"

    text = text.replace("\x00", "")
    for pattern, placeholder in _TIME_PATTERNS:
        text = pattern.sub(placeholder, text)
    text = _KEPT.sub(keep, text)
    for pattern, placeholder in _ID_PATTERNS:
        text = pattern.sub(placeholder, text)
    if kept:
        text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
    return text
