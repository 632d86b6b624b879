"""The small JSON routes beside generation: vLLM's ``/tokenize`` and ``/version``, and the
``/info`` a sageLLM gateway answers for model discovery.

``/tokenize`` uses the mock's documented token-counting rule (see :mod:`.simulation`), so a
prompt built to N tokens with it is counted as N prompt tokens by the generation routes too:
a text counts one token per whitespace-separated piece; a chat counts each message's pieces
plus 4 template tokens per message. Token ids are stable (a CRC of the piece), never random.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from sagellm_users import __version__

from .config import MockServerConfig
from .simulation import CHAT_TEMPLATE_TOKENS_PER_MESSAGE
from .validation import RequestError, load_object

__all__ = ["info_body", "tokenize_body", "version_body"]

MOCK_VERSION = f"{__version__}+sagellm-mock"
_TEMPLATE_IDS = (1, 2, 3, 4)
assert len(_TEMPLATE_IDS) == CHAT_TEMPLATE_TOKENS_PER_MESSAGE


def _piece_id(piece: str) -> int:
    return 1000 + zlib.crc32(piece.encode()) % 30000


def _text_ids(text: Any) -> list[int]:
    if isinstance(text, str):
        return [_piece_id(p) for p in text.split()]
    if isinstance(text, list):
        parts = [p.get("text") for p in text if isinstance(p, dict)]
        return [_piece_id(p) for part in parts if isinstance(part, str) for p in part.split()]
    return []


def tokenize_body(body: bytes, config: MockServerConfig) -> bytes:
    """vLLM's ``TokenizeResponse`` for a ``{"prompt"}`` or ``{"messages"}`` request."""
    doc = load_object(body)
    model = doc.get("model")
    if model is not None and model != config.model:
        raise RequestError(
            f"The model `{model}` does not exist.", status=404, err_type="NotFoundError"
        )
    if isinstance(doc.get("prompt"), str):
        tokens = _text_ids(doc["prompt"])
    elif isinstance(doc.get("messages"), list):
        messages = doc["messages"]
        tokens = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            tokens += [*_TEMPLATE_IDS[:2], *_text_ids(content), *_TEMPLATE_IDS[2:]]
    else:
        raise RequestError("give 'prompt' (a string) or 'messages' (a list)", param="prompt")
    return orjson.dumps(
        {
            "count": len(tokens),
            "max_model_len": config.max_model_len,
            "tokens": tokens,
            "token_strs": None,
        }
    )


def version_body() -> bytes:
    return orjson.dumps({"version": MOCK_VERSION})


def info_body(config: MockServerConfig) -> bytes:
    """What a sageLLM gateway's ``/info`` tells a client: the served models and limits."""
    return orjson.dumps(
        {
            "name": "sagellm-mock",
            "version": MOCK_VERSION,
            "models": [{"id": config.model, "max_model_len": config.max_model_len}],
        }
    )
