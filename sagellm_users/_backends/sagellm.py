"""sageLLM's gateway: OpenAI-compatible routes behind a Bearer key, plus ``/health`` and
``/info``.

``/info`` is where the gateway tells what it serves; model discovery reads it first and
accepts the shapes gateways use (``models`` as ids or ``{"id"|"name"}`` objects, a single
``model`` / ``model_name``, or an OpenAI-style ``data`` list), falling back to
``/v1/models``. The key comes from ``api_key``, else ``$SAGELLM_API_KEY``, else
``$OPENAI_API_KEY``.
"""

from __future__ import annotations

from typing import Any

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
    """The model ids an ``/info`` document names, in its order."""
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

    MODEL_ROUTES = ("/info", "/v1/models")
    VERSION_ROUTE = "/info"

    def info(self) -> dict[str, Any]:
        """The gateway's ``/info`` document."""
        return info_document(*self.get("/info"))

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
