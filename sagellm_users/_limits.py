"""How much of a response the client holds at once: the three read limits and their sizes.

A misbehaving server or gateway can send a header line, an error page or an SSE event of
any length, or one that never ends. Without a bound the client buffers it all (a 64 MB
error body cost 2.5 GB with 8 users) or parses it for seconds inside the event loop. Each
limit here caps what one request keeps; passing it fails that request with a
:class:`~sagellm_users._errors.ResponseTooLargeError` (or, for an error body, cuts the
excerpt) whose message names the limit and the option that raises it. The defaults are far
above what a working server sends: http.client allows 64 KiB of headers too, and a 10 MB
token (the mock's ``huge_event``) still fits in one event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sagellm_users._errors import ConfigError

__all__ = [
    "DEFAULT_ERROR_BODY_BYTES",
    "DEFAULT_EVENT_BYTES",
    "DEFAULT_HEADER_BYTES",
    "ReadLimits",
    "format_size",
    "parse_size",
]

DEFAULT_HEADER_BYTES = 64 * 1024
DEFAULT_ERROR_BODY_BYTES = 64 * 1024
DEFAULT_EVENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Bytes. ``header`` bounds a response's head (status line and headers, as received),
    ``error_body`` how much of a non-2xx body is read for its excerpt (the rest is not
    read: the connection is closed), ``event`` one SSE event (or a whole non-streamed
    answer)."""

    header: int = DEFAULT_HEADER_BYTES
    error_body: int = DEFAULT_ERROR_BODY_BYTES
    event: int = DEFAULT_EVENT_BYTES

    def __post_init__(self) -> None:
        for name, least in (("header", 1), ("error_body", 0), ("event", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ConfigError(
                    f"{name} limit must be an integer >= {least} bytes, got {value!r}"
                )


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(text: str, flag: str) -> int:
    """``65536``, ``64KiB``, ``16 MiB``, ``10MB`` as bytes; a clear error naming ``flag``."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(
            f"{flag}: cannot read {text!r} as a size; give bytes or a unit: 65536, 64KiB, "
            "16MiB, 10MB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    """``65536`` as ``64 KiB``: the largest binary unit that divides it, else bytes."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} bytes"
