"""``--dialect sagellm-gateway``: the mock answers as sageLLM's gateway (``sagellm serve``
0.5.4) does, as measured against the real one on a CPU engine.

* A streamed chat answer opens with ``{"role":"assistant","content":null}``, sends one
  chunk per token as ``{"role":null,"content":TEXT}``, drops every token whose text is
  empty (a held-back piece of a character, the EOS token), and ends with a chunk of its
  own, ``{"role":null,"content":null}`` with ``finish_reason: "stop"``, also when
  ``max_tokens`` cut the answer. It never sends usage, even when asked.
* A non-streamed answer has usage and the right finish reason (``"length"``).
* Streamed ``/v1/completions`` are refused: 400 ``{"detail": ...}``.
* ``/`` names the service and its (API) version; ``/info`` the engines it routes to, each
  with its ``model_id``; there is no ``/version`` and no ``/tokenize``.
* ``/metrics`` has only the gateway's HTTP metrics: requests by method, path and status, and
  their duration, which for a streamed answer ends when the response starts.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

import orjson

from .config import MockServerConfig
from .metrics import Histogram
from .simulation import EMPTY_TOKEN
from .wire import ChatStreamEncoder, _event_chunk

__all__ = [
    "STREAMED_COMPLETIONS_REFUSED",
    "GatewayChatEncoder",
    "GatewayMetrics",
    "gateway_info_body",
    "gateway_root_body",
]

GATEWAY_VERSION = "0.1.0"
"""What the real gateway's ``/`` says (its FastAPI app's version, not the package's)."""

STREAMED_COMPLETIONS_REFUSED = orjson.dumps(
    {"detail": "Streaming text completions are not supported on gateway /v1/completions."}
)

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""prometheus_client's default buckets, which the gateway's histogram uses."""


class GatewayChatEncoder(ChatStreamEncoder):
    """The gateway's ``chat.completion.chunk`` events (see the module's description)."""

    TEXT_OPEN = b'{"index":0,"delta":{"role":null,"content":'
    MID_CLOSE = b'},"finish_reason":null}]'
    ROLE_CHOICE = b'{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]'
    END_CHOICE: ClassVar[bytes] = (
        b'{"index":0,"delta":{"role":null,"content":null},"finish_reason":"stop"}]'
    )

    __slots__ = ()

    def token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        return b"" if word == EMPTY_TOKEN else super().token(word, n_done, t_send)

    def next_token(self, word: bytes, n_done: int) -> bytes:
        return b"" if word == EMPTY_TOKEN else super().next_token(word, n_done)

    def final_token(self, word: bytes, n_done: int, finish_reason: str, t_send: float) -> bytes:
        """The last token (when it has text), then the end alone, always ``"stop"``."""
        return self.token(word, n_done, t_send) + _event_chunk(self._pre + self.END_CHOICE + b"}")

    def preamble(self, t_send: float) -> bytes:
        return _event_chunk(self._pre + self.ROLE_CHOICE + b"}")

    def usage(self, completion_tokens: int, t_send: float) -> bytes:
        return b""  # never, even when the request asked for it


def gateway_root_body() -> bytes:
    return orjson.dumps(
        {
            "service": "sageLLM Gateway",
            "version": GATEWAY_VERSION,
            "endpoints": {
                "chat": "/v1/chat/completions",
                "completions": "/v1/completions",
                "models": "/v1/models",
                "info": "/info",
                "health": "/health",
                "metrics": "/metrics",
            },
        }
    )


def gateway_info_body(config: MockServerConfig, port: int) -> bytes:
    """The gateway's ``/info``: its engines, the primary one first (the engine listens on
    the gateway's port + 1, as ``sagellm serve`` starts it)."""
    engine = {
        "engine_id": f"engine-cpu-{port + 1}",
        "model_id": config.model,
        "host": "localhost",
        "port": port + 1,
        "engine_kind": "llm",
        "state": "READY",
        "is_healthy": True,
    }
    return orjson.dumps(
        {
            "service": "sageLLM Gateway",
            "state": "ready",
            "registered_engines": [engine],
            "registered_engine_count": 1,
            "healthy_engine_count": 1,
            "primary_engine": engine,
            "engine_id": engine["engine_id"],
            "model_path": config.model,
            "max_model_len": config.max_model_len,
        }
    )


class GatewayMetrics:
    """The gateway's ``sagellm_gateway_http_*`` families, per process."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.durations: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        """One response: counted by its status, timed to when it started."""
        self.requests[(method, path, str(status))] += 1
        histogram = self.durations.get((method, path))
        if histogram is None:
            histogram = self.durations[(method, path)] = Histogram(DURATION_BUCKETS)
        histogram.observe(seconds)

    def render(self) -> bytes:
        lines = [
            "# HELP sagellm_gateway_http_requests_total Total HTTP requests",
            "# TYPE sagellm_gateway_http_requests_total counter",
        ]
        for (method, path, status), n in sorted(self.requests.items()):
            labels = f'method="{method}",path="{path}",status="{status}"'
            lines.append(f"sagellm_gateway_http_requests_total{{{labels}}} {float(n)}")
        name = "sagellm_gateway_http_request_duration_seconds"
        lines += [f"# HELP {name} HTTP request duration", f"# TYPE {name} histogram"]
        for (method, path), h in sorted(self.durations.items()):
            labels = f'method="{method}",path="{path}"'
            cumulative = 0
            bounds = [repr(float(b)) for b in h.bounds] + ["+Inf"]
            for le, count in zip(bounds, h.counts, strict=True):
                cumulative += count
                lines.append(f'{name}_bucket{{le="{le}",{labels}}} {float(cumulative)}')
            lines.append(f"{name}_count{{{labels}}} {float(cumulative)}")
            lines.append(f"{name}_sum{{{labels}}} {h.total}")
        return ("\n".join(lines) + "\n").encode()
