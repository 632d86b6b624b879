"""LMDeploy's native ``POST /generate`` on the wire (api_server 0.7-0.18).

Every stream event is one ``GenerateReqOutput`` serialised by pydantic::

    data: {"text":" w","output_ids":[142],"meta_info":{"prompt_tokens":12,
           "completion_tokens":3,"finish_reason":null,"output_token_logprobs":null,
           "routed_experts":null}}

``output_ids`` holds the ids of this event's tokens and ``completion_tokens`` counts all
tokens so far. As LMDeploy's engine does, the stream ends with an event of its own that
carries no text and no ids and the ``finish_reason`` object (``{"type":"length"}``), and an
EOS token is stripped: the step that produced it is an event with no text and no ids, and
``completion_tokens`` never counts it. Then ``data: [DONE]``; there is no role chunk and no
usage chunk. A token whose text is held back is an event with its id and empty text. A
non-streaming request gets the same object with the whole text and every id. A generation
that fails in the engine ends with ``finish_reason: {"type":"error"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from .simulation import EMPTY_TOKEN, TOKEN_JSON, TOKEN_TEXT
from .wire import DONE_AND_END, http_chunk

__all__ = ["TOKEN_IDS", "GenerateStreamEncoder", "generate_body", "lmdeploy_error_body"]

#: Token id of each vocabulary token (its position plus 100, clear of special ids), and of
#: a token whose text is held back (the first half of a multi-byte character).
TOKEN_IDS: dict[bytes, int] = {
    **{word: 100 + i for i, word in enumerate(TOKEN_JSON)},
    EMPTY_TOKEN: 99,
}


def _meta(prompt_tokens: int, completion_tokens: int, finish: bytes) -> bytes:
    return (
        b'"meta_info":{"prompt_tokens":%d,"completion_tokens":%d,"finish_reason":%b,'
        b'"output_token_logprobs":null,"routed_experts":null}'
        % (prompt_tokens, completion_tokens, finish)
    )


class GenerateStreamEncoder:
    """Encodes one ``/generate`` stream; the interface of :class:`.wire.StreamEncoder`."""

    ID_PREFIX = b"generate-"
    end_of_stream = DONE_AND_END

    __slots__ = ("_prompt_tokens", "_t_request")

    def __init__(self, *, prompt_tokens: int, t_request: float | None = None) -> None:
        self._prompt_tokens = prompt_tokens
        self._t_request = t_request

    def _event(self, text: bytes, ids: bytes, n_done: int, finish: bytes, t_send: float) -> bytes:
        stamps = b""
        if self._t_request is not None:
            stamps = b',"mock_t_request":%r,"mock_t_send":%r' % (self._t_request, t_send)
        meta = _meta(self._prompt_tokens, n_done, finish)
        payload = b'{"text":%b,"output_ids":[%b],%b%b}' % (text, ids, meta, stamps)
        return http_chunk(b"data: " + payload + b"\n\n")

    def token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        return self._event(word, b"%d" % TOKEN_IDS.get(word, 0), n_done, b"null", t_send)

    def next_token(self, word: bytes, n_done: int) -> bytes:
        return self.token(word, n_done, 0.0)

    def final_token(self, word: bytes, n_done: int, finish_reason: str, t_send: float) -> bytes:
        """The last step and the event that ends the generation (see the module's note)."""
        finish = b'{"type":"%b"}' % finish_reason.encode()
        if finish_reason == "stop":  # ``word`` is EOS: stripped and not counted
            n_done -= 1
            last = self._event(EMPTY_TOKEN, b"", n_done, b"null", t_send)
        else:
            last = self.token(word, n_done, t_send)
        return last + self._event(EMPTY_TOKEN, b"", n_done, finish, t_send)

    def preamble(self, t_send: float) -> bytes:
        return b""

    def usage(self, completion_tokens: int, t_send: float) -> bytes:
        return b""

    def error(self, message: str, err_type: str, code: int, t_send: float) -> bytes:
        """LMDeploy ends a failed generation with an empty event whose reason is "error"."""
        return self._event(b'""', b"", 0, b'{"type":"error"}', t_send)


def generate_body(
    *,
    words: Sequence[bytes],
    finish_reason: str,
    prompt_tokens: int,
    timestamps: tuple[float, float] | None = None,
) -> bytes:
    """A non-streaming ``/generate`` answer (an EOS token stripped, as in a stream)."""
    if finish_reason == "stop":
        words = words[:-1]
    doc: dict[str, Any] = {
        "text": "".join(TOKEN_TEXT[w] for w in words),
        "output_ids": [TOKEN_IDS[w] for w in words],
        "meta_info": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "finish_reason": {"type": finish_reason},
            "output_token_logprobs": None,
            "routed_experts": None,
        },
    }
    if timestamps is not None:
        doc["mock_t_request"], doc["mock_t_send"] = timestamps
    return orjson.dumps(doc)


def lmdeploy_error_body(message: str, code: int) -> bytes:
    """LMDeploy's flat ``ErrorResponse`` (its ``create_error_response``)."""
    return orjson.dumps(
        {
            "object": "error",
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": code,
        }
    )
