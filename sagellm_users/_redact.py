"""What text taken from a response may keep: no secret, and for grouping, no per-response id.

Two jobs, both on text a server chose (error bodies, in-stream error events, reason phrases,
echoed headers):

* **Secrets.** A misconfigured gateway echoes the request's ``Authorization`` header in its
  401. Every client registers the secrets it sends (:func:`register_secret`), and every
  :class:`~sagellm_users._errors.LLMError` message and body excerpt passes through
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

import base64
import binascii
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

_MIN_SECRET_CHARS = 8
"""Shorter values are not kept secret: they would match ordinary words (``--header
'X-Debug: true'``), and a key is far longer."""
_MIN_PIECE_CHARS = 6
"""The shortest piece of a secret scrubbed where an excerpt cut it short."""
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "apikey", "api-key", "key", "digest"})
"""``Scheme credentials`` values whose credentials alone are a secret too."""


class _Registry:
    """The process's secrets and one pattern matching any of them (longest form first)."""

    lock = threading.Lock()
    secrets: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None


def _variants(value: str) -> set[str]:
    """The forms a server may echo: the whole value, its credentials without the scheme
    (``Bearer KEY`` -> ``KEY``; Basic's decoded ``user:password`` and password) and their
    URL- and JSON-escaped spellings."""
    value = value.strip()
    found = {value}
    parts = value.split()
    if len(parts) == 2 and parts[0].lower() in _AUTH_SCHEMES:
        found.add(parts[1])
        if parts[0].lower() == "basic":
            try:
                pair = base64.b64decode(parts[1], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                pair = ""
            found.update({pair, pair.partition(":")[2]})
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
    """Every value of the headers a user gave a client: each may be a credential (docs/ci.md,
    "Secrets and TLS"); a value shorter than eight characters is left alone."""
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
    """A piece of ``secret`` (six characters or more) that the text starts or ends with
    (the rest of the key was cut off) becomes :data:`REDACTED` too."""
    size = len(secret)
    head = secret[:_MIN_PIECE_CHARS]
    at = text.find(head, max(0, len(text) - size + 1))
    while at >= 0:
        if secret.startswith(text[at:]):
            text = text[:at] + REDACTED
            break
        at = text.find(head, at + 1)
    tail = secret[-_MIN_PIECE_CHARS:]
    at = text.find(tail, 0, size - 1)
    while at >= 0:
        end = at + _MIN_PIECE_CHARS
        if secret.endswith(text[:end]):
            text = REDACTED + text[end:]
            break
        at = text.find(tail, at + 1, size - 1)
    return text


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TOKENS = re.compile(
    "|".join(
        (
            # kept: addresses (127.0.0.1:8000, and the port of host:8000), one per server
            # and telling (a version, nginx/1.25.3, is kept by the decimal rule's look back)
            r"(?P<kept>\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b|:(?<=[A-Za-z0-9]:)\d{2,5}\b)",
            # RFC 9110 dates (Sun, 06 Dec 2026 02:02:28 GMT); ISO 8601 and nginx's
            # 2026/12/06 02:02:28, with fraction and zone; a bare time of day
            rf"(?P<time>\b[A-Z][a-z]{{2}}, \d{{1,2}} {_MONTH} \d{{4}} \d\d:\d\d:\d\d(?: GMT)?"
            r"|\b\d{4}[-/]\d\d[-/]\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d\d:?\d\d)?)?|\b\d{1,2}:\d\d:\d\d(?:[.,]\d+)?\b)",
            # UUIDs: the request ids of most gateways and of vLLM itself
            r"(?P<uuid>\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b)",
            # decimals: latencies, sizes
            r"(?P<decimal>(?<![/.\d])\d+\.\d+)",
            # any other run of letters and digits with a digit in it: see _word (a run of
            # letters alone is passed over at the cost of one look)
            r"(?P<word>(?<![A-Za-z0-9])[A-Za-z]*+\d[A-Za-z0-9]*+)",
        )
    )
)
_HEX = frozenset("0123456789abcdefABCDEF")


def _word(word: str) -> str:
    """A number of three digits or more (counts, epoch times) is ``<n>``; a hex run of
    eight or more with letters and digits (trace ids, ray ids, digests), or any run of ten
    or more with two digits (ULIDs, ``req_01HZX...``, ``chatcmpl-AbC1...``), is ``<id>``."""
    if word.isdigit():
        return "<n>" if len(word) >= 3 else word
    if len(word) < 8:
        return word
    digits = sum(map(str.isdigit, word))
    if digits and _HEX.issuperset(word):
        return "<id>"
    return "<id>" if len(word) >= 10 and digits >= 2 else word


def _token(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group()
    if kind == "word":
        return _word(text)
    if kind == "kept":
        return text
    return {"time": "<time>", "uuid": "<id>", "decimal": "<n>"}[kind or ""]


def scrub_ids(text: str) -> str:
    """``text`` with request ids, trace ids, timestamps and long numbers replaced by
    placeholders, so failures of one cause read the same."""
    return _TOKENS.sub(_token, text)
