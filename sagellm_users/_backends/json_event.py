"""One JSON event or body, read strictly: what every dialect's parser shares.

The parsers of each API (OpenAI's chat and completions, the Responses and Messages APIs,
LMDeploy's ``/generate``) read their own shapes; what is wrong with bytes that are not a
JSON object at all, and what a server's error object says, is decided here once, so a bad
event fails the same way whatever the route.
"""

from __future__ import annotations

from typing import Any

import orjson

from sagellm_users._errors import MalformedEventError, ServerErrorEvent, excerpt

__all__ = ["load_object", "raise_error_object"]


def raise_error_object(obj: dict[str, Any]) -> None:
    """Raise the :class:`ServerErrorEvent` that ``obj`` is, if it is one: vLLM streams
    ``{"error": {...}}``; older servers ``{"object": "error", ...}``."""
    error = obj.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        raise ServerErrorEvent(
            str(error.get("message", error)),
            error.get("type"),
            code if isinstance(code, int) else None,
        )
    if error is not None:
        raise ServerErrorEvent(str(error))
    if obj.get("object") == "error":
        code = obj.get("code")
        raise ServerErrorEvent(
            str(obj.get("message", "")), obj.get("type"), code if isinstance(code, int) else None
        )


def load_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` as a JSON object, else a MalformedEventError naming ``what`` it was."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = data[exc.start : exc.end].hex(" ")
            raise MalformedEventError(
                f"{what} is not valid UTF-8 (byte {bad} at offset {exc.start}): {excerpt(data)!r}"
            ) from None
        raise MalformedEventError(f"{what} is not JSON: {excerpt(data)!r}") from None
    if not isinstance(obj, dict):
        raise MalformedEventError(f"{what} is not a JSON object: {excerpt(data)!r}")
    return obj
