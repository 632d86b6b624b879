"""vLLM's OpenAI server: the OpenAI routes plus vLLM's own.

Beyond :class:`~sagellm_users._backends.openai.OpenAIClient` (which already sends vLLM's
``ignore_eos`` and ``min_tokens``; ``top_k`` and any other sampling extra go in
``extra_body``): ``/tokenize`` to count a prompt's tokens exactly as the server will,
``/version`` for the report, and ``/metrics`` parsed into a
:class:`~sagellm_users._metrics.server.ServerSnapshot` for the server-side view.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sagellm_users._backends.openai import OpenAIClient
from sagellm_users._errors import FeatureUnavailable, HTTPStatusError, excerpt
from sagellm_users._metrics.server import ServerMetricsError, ServerSnapshot, parse_vllm_metrics

__all__ = ["VLLMClient", "scrape_server_metrics"]


def _missing(route: str, status: int, body: bytes, what: str) -> FeatureUnavailable:
    return FeatureUnavailable(
        f"{route} answered {status} ({excerpt(body)!r}): the server is not vLLM or does not "
        f"expose it, so {what}"
    )


def scrape_server_metrics(client: OpenAIClient) -> ServerSnapshot:
    """One scrape of ``client``'s server ``/metrics``; FeatureUnavailable when there are
    none, or none of vLLM's or sageLLM's gateway's (a mock, vLLM and sageLLM's engine
    export vLLM's; LMDeploy its own)."""
    t = time.time()
    status, body = client.get("/metrics")
    if status != 200:
        raise _missing("/metrics", status, body, "server-side metrics are left out")
    try:
        snapshot = parse_vllm_metrics(body.decode("utf-8", "replace"), t)
    except ServerMetricsError as exc:
        raise FeatureUnavailable(f"/metrics: {exc}; server-side metrics are left out") from None
    if not snapshot.recognized:
        raise FeatureUnavailable(
            "/metrics has no vLLM metrics (vllm:*) nor sageLLM gateway metrics "
            "(sagellm_gateway_*); server-side metrics are left out"
        )
    return snapshot


class VLLMClient(OpenAIClient):
    """A client for vLLM's OpenAI-compatible server (``vllm serve``)."""

    backend = "vllm"
    VERSION_ROUTE = "/version"

    def tokenize(
        self,
        *,
        prompt: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        model: str = "",
    ) -> list[int]:
        """The token ids vLLM makes of ``prompt`` (or of ``messages`` after its chat
        template), so prompts can be built to an exact token length."""
        if (prompt is None) == (messages is None):
            raise ValueError("give exactly one of prompt and messages")
        payload: dict[str, Any] = {"prompt": prompt} if prompt is not None else {}
        if messages is not None:
            payload["messages"] = messages
        if model:
            payload["model"] = model
        status, body = self.request("POST", "/tokenize", payload)
        if status in (404, 405):
            raise _missing("/tokenize", status, body, "prompts cannot be measured in tokens")
        if status != 200:
            raise HTTPStatusError(status, "", body)
        try:
            tokens = orjson.loads(body)["tokens"]
            return [int(t) for t in tokens]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise FeatureUnavailable(
                f"/tokenize did not answer with vLLM's token list: {excerpt(body)!r}"
            ) from None

    def server_metrics(self) -> ServerSnapshot:
        """vLLM's ``/metrics`` now (see :func:`scrape_server_metrics`)."""
        return scrape_server_metrics(self)
