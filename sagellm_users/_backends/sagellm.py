"""sageLLM's gateway: OpenAI-compatible routes behind a Bearer key, plus ``/health`` and
``/info``.

``/info`` is where the gateway tells what it serves; model discovery reads it first: the
engines it routes to (``primary_engine`` and ``registered_engines``, each with its
``model_id``, as ``sagellm serve`` 0.5 answers), or the shapes other gateways use
(``models`` as ids or ``{"id"|"name"}`` objects, a single ``model`` / ``model_name``, or an
OpenAI-style ``data`` list), falling back to ``/v1/models``. Its version is the one ``/``
names beside the service. The key comes from ``api_key``, else ``$SAGELLM_API_KEY``, else
``$OPENAI_API_KEY``.

The gateway's dialect, as measured against ``sagellm serve`` 0.5.4: a streamed answer
carries no usage even when asked (output tokens are counted by a tokenizer when one is
given, see ``--tokenizer``), chunks whose text is empty are not sent, a streamed answer
cut at ``max_tokens`` ends with ``finish_reason: "stop"`` (the non-streamed one says
``"length"``), and streamed ``/v1/completions`` are refused with 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from sagellm_users._backends.openai import OpenAIClient
from sagellm_users._errors import FeatureUnavailable, excerpt

__all__ = ["SageLLMClient", "models_from_info"]


def _model_id(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("id", "name", "model"):
            if isinstance(item.get(key), str):
                return str(item[key])
    return None


def models_from_info(info: dict[str, Any]) -> list[str]:
    """The model ids an ``/info`` document names, in its order (the primary engine's
    first, then every other engine's, each once)."""
    engines = [info.get("primary_engine"), *(info.get("registered_engines") or ())]
    served = [e.get("model_id") for e in engines if isinstance(e, dict)]
    found = list(dict.fromkeys(m for m in served if isinstance(m, str) and m))
    if found:
        return found
    for key in ("models", "data"):
        items = info.get(key)
        if isinstance(items, list):
            return [m for m in map(_model_id, items) if m is not None]
    for key in ("model", "model_name", "model_id"):
        value = _model_id(info.get(key))
        if value is not None:
            return [value]
    return []


class SageLLMClient(OpenAIClient):
    """A client for a sageLLM gateway (``sagellm serve`` / ``sage-llm-gateway``)."""

    backend = "sagellm"
    API_KEY_ENVS = ("SAGELLM_API_KEY", "OPENAI_API_KEY")

    PATHS: ClassVar[Mapping[str, str]] = {
        "chat": OpenAIClient.PATHS["chat"],
        "completions": OpenAIClient.PATHS["completions"],
    }
    """The gateway's generation routes: it serves neither the Responses nor the Messages
    API."""
    MODEL_ROUTES = ("/info", "/v1/models")
    VERSION_ROUTE = "/"
    STREAM_REFUSED: ClassVar[Mapping[str, str]] = {
        "completions": "sageLLM's gateway answers 400 to streamed /v1/completions "
        "('Streaming text completions are not supported')",
    }

    def info(self) -> dict[str, Any]:
        """The gateway's ``/info`` document."""
        return info_document(*self.get("/info"))

    @classmethod
    def version_from(cls, status: int, body: bytes) -> str | None:
        """``/`` names the service and its version (``sageLLM Gateway 0.1.0``)."""
        version = super().version_from(status, body)
        if version is None:
            return None
        try:
            service = orjson.loads(body).get("service")
        except (orjson.JSONDecodeError, AttributeError):
            service = None
        return f"{service} {version}" if isinstance(service, str) and service else version

    @classmethod
    def models_from(cls, route: str, status: int, body: bytes) -> list[str]:
        """Models from ``/info``, else (none named there) from ``/v1/models``."""
        if route != "/info":
            return super().models_from(route, status, body)
        try:
            return models_from_info(info_document(status, body))
        except FeatureUnavailable:
            return []


def info_document(status: int, body: bytes) -> dict[str, Any]:
    """The answer to ``GET /info`` as a JSON object; FeatureUnavailable when it is not one."""
    if status != 200:
        raise FeatureUnavailable(
            f"/info answered {status} ({excerpt(body)!r}): not a sageLLM gateway, "
            "or an old one; models are discovered from /v1/models instead"
        )
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise FeatureUnavailable(f"/info is not a JSON object: {excerpt(body)!r}")
    return doc
