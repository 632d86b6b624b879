"""Request fields an API has no place for, and the one error that says so.

vLLM's chat and completions routes take its extras (``ignore_eos``, ``min_tokens``); its
Responses route takes ``ignore_eos`` but not ``min_tokens``, and its Messages route (a
plain Anthropic request model) takes neither. Such a field is not refused by the server:
it is dropped (``/v1/responses`` logs a warning, ``/v1/messages`` says nothing), so a load
test asking for exact output lengths would silently measure answers of other lengths. The
client refuses the request instead, and the Locust plugin refuses the options before any
load, both with the reason from this table.
"""

from __future__ import annotations

from collections.abc import Mapping

from sagellm_users._backends.base import GenerationRequest
from sagellm_users._errors import ConfigError

__all__ = ["NOT_ACCEPTED", "check_fields", "refused_fields"]

NOT_ACCEPTED: Mapping[str, Mapping[str, str]] = {
    "responses": {
        "min_tokens": "vLLM's /v1/responses has no min_tokens (it drops the field)",
    },
    "messages": {
        "min_tokens": "the Messages API has no min_tokens (vLLM's /v1/messages drops it)",
        "ignore_eos": "the Messages API has no ignore_eos (vLLM's /v1/messages drops it)",
    },
}
"""By API, the request fields it would drop, each with why."""


def refused_fields(request: GenerationRequest) -> list[str]:
    """The reasons ``request`` asks for something its API would drop (empty: none)."""
    fields = NOT_ACCEPTED.get(request.api)
    if not fields:
        return []
    asked = {"min_tokens": request.min_tokens is not None, "ignore_eos": request.ignore_eos}
    return [reason for field, reason in fields.items() if asked.get(field)]


def check_fields(request: GenerationRequest) -> None:
    """ConfigError when ``request`` asks for a field its API would silently drop."""
    reasons = refused_fields(request)
    if reasons:
        raise ConfigError(
            f"{'; '.join(reasons)}: send this request on the chat API, or without that field"
        )
