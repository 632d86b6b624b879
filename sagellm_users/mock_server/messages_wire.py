"""Anthropic's Messages API (``POST /v1/messages``) on the wire, as vLLM 0.32 sends it.

Captured from a real vLLM 0.32 server and its event models (``model_dump_json(
exclude_unset=True)``). vLLM builds this stream from its chat stream, so the message's id
is the chat completion's (``chatcmpl-...``). Each event is ``event: TYPE`` then
``data: {"type": TYPE, ...}``; there is no ``[DONE]``. A stream is:

* ``message_start``, sent with the first token (from chat's role chunk):
  ``{"type":"message_start","message":{"id","type":"message","role":"assistant",
  "content":[],"model","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":N,
  "output_tokens":0}}}``;
* at the first token of each block, ``content_block_start`` (``{"type":"text","text":""}``
  or ``{"type":"thinking","thinking":""}``), with the block's ``index`` last;
* one ``content_block_delta`` per token that has text (``text_delta`` or
  ``thinking_delta``): vLLM drops a chat delta whose text is empty (held back, EOS);
* at a block's end, for a thinking block a ``signature_delta``, then
  ``content_block_stop``;
* ``message_delta`` with the stop reason (``end_turn``, ``max_tokens``) and
  ``"stop_sequence":null``, and ``usage`` (``input_tokens``, ``output_tokens``);
* ``message_stop``.

An error in the stream is ``{"type":"error","error":{"type":"internal_error",
"message":...}}``, after which vLLM ends the body. A non-streamed answer is the message
object without its null fields (vLLM dumps it with ``exclude_none``).
"""

from __future__ import annotations

from time import perf_counter

import orjson

from .simulation import EMPTY_TOKEN
from .wire import END_OF_BODY, typed_event

__all__ = ["MessagesStreamEncoder", "anthropic_error_body", "messages_body"]

_TEXT, _THINKING = 1, 2
_STOP_REASONS = {"stop": b"end_turn", "length": b"max_tokens"}

_BLOCK_DELTA = b"content_block_delta"
_STARTS = {_TEXT: b'{"type":"text","text":""}', _THINKING: b'{"type":"thinking","thinking":""}'}


def _usage(prompt_tokens: int, output_tokens: int, cached: int | None) -> bytes:
    """Anthropic's usage as vLLM makes it: with prompt-token details (a prefix cache), the
    cached tokens apart as ``cache_read_input_tokens``, not in ``input_tokens``."""
    if cached is None:
        return b'{"input_tokens":%d,"output_tokens":%d}' % (prompt_tokens, output_tokens)
    return b'{"input_tokens":%d,"output_tokens":%d,"cache_read_input_tokens":%d}' % (
        prompt_tokens - cached,
        output_tokens,
        cached,
    )


def anthropic_error_body(message: str, err_type: str) -> bytes:
    """vLLM's error body on ``/v1/messages`` once the request's schema is valid:
    ``{"type":"error","error":{"type","message"}}``."""
    return orjson.dumps({"type": "error", "error": {"type": err_type, "message": message}})


class MessagesStreamEncoder:
    """Encodes one streamed ``/v1/messages`` answer (the interface of
    :class:`.wire.TokenEncoder`, and :meth:`reasoning_token` for thinking tokens).

    Stateful, as the stream is: the open block and its index. ``t_request`` set means
    ``--send-timestamps``: every event gets ``mock_t_request`` and ``mock_t_send``;
    ``cached_tokens`` is the prompt's share the prefix cache served.
    """

    ID_PREFIX = b"chatcmpl-"
    end_of_stream = END_OF_BODY

    __slots__ = (
        "_block",
        "_cached",
        "_finish",
        "_hex",
        "_index",
        "_model_json",
        "_prompt_tokens",
        "_t_request",
        "_text_delta",
    )

    def __init__(
        self,
        *,
        request_hex: str,
        model_json: bytes,
        prompt_tokens: int,
        t_request: float | None = None,
        cached_tokens: int | None = None,
    ) -> None:
        self._hex = request_hex.encode()
        self._cached = cached_tokens
        self._model_json = model_json
        self._prompt_tokens = prompt_tokens
        self._t_request = t_request
        self._block = 0  # none open; else _TEXT or _THINKING
        self._index = 0  # the open block's index, else the next block's
        self._text_delta = b""
        self._finish = "length"

    def _usage(self, output_tokens: int) -> bytes:
        return _usage(self._prompt_tokens, output_tokens, self._cached)

    def _event(self, name: bytes, body: bytes, t_send: float) -> bytes:
        """``body`` is the event's fields after ``type``, without braces (may be empty)."""
        payload = b'{"type":"%b"' % name
        if body:
            payload += b"," + body
        if self._t_request is not None:
            payload += b',"mock_t_request":%r,"mock_t_send":%r' % (self._t_request, t_send)
        return typed_event(name, payload + b"}")

    def _close(self, t_send: float) -> bytes:
        """The end of the open block, if one is open (a thinking block's signature first)."""
        block = self._block
        if not block:
            return b""
        index = self._index
        out = b""
        if block == _THINKING:
            signature = b'"delta":{"type":"signature_delta","signature":"%b"},"index":%d'
            out = self._event(_BLOCK_DELTA, signature % (self._hex[-32:], index), t_send)
        self._block = 0
        self._index = index + 1
        return out + self._event(b"content_block_stop", b'"index":%d' % index, t_send)

    def _delta(self, block: int, word: bytes, t_send: float) -> bytes:
        if word == EMPTY_TOKEN:
            return b""  # vLLM drops a delta without text
        out = b""
        if self._block != block:
            out = self._close(t_send)
            self._block = block
            out += self._event(
                b"content_block_start",
                b'"content_block":%b,"index":%d' % (_STARTS[block], self._index),
                t_send,
            )
        if block == _TEXT:
            delta = b'"delta":{"type":"text_delta","text":%b},"index":%d' % (word, self._index)
        else:
            delta = b'"delta":{"type":"thinking_delta","thinking":%b},"index":%d' % (
                word,
                self._index,
            )
        return out + self._event(_BLOCK_DELTA, delta, t_send)

    # the TokenEncoder interface ----------------------------------------------------------

    def preamble(self, t_send: float) -> bytes:
        """``message_start``, with the input tokens."""
        message = (
            b'{"id":"%b%b","type":"message","role":"assistant","content":[],"model":%b,'
            b'"stop_reason":null,"stop_sequence":null,"usage":%b}'
            % (self.ID_PREFIX, self._hex, self._model_json, self._usage(0))
        )
        return self._event(b"message_start", b'"message":%b' % message, t_send)

    def token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        """A token of the answer: a ``text_delta`` (nothing when it has no text)."""
        return self._delta(_TEXT, word, t_send)

    def next_token(self, word: bytes, n_done: int) -> bytes:
        return self._delta(_TEXT, word, perf_counter())

    def reasoning_token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        """A token of reasoning: a ``thinking_delta`` in a thinking block."""
        return self._delta(_THINKING, word, t_send)

    def final_token(self, word: bytes, n_done: int, finish_reason: str, t_send: float) -> bytes:
        """The last token; the stop reason is told in ``message_delta`` (see :meth:`usage`)."""
        self._finish = finish_reason
        return self._delta(_TEXT, word, t_send)

    def usage(self, completion_tokens: int, t_send: float) -> bytes:
        """The open block's end, ``message_delta`` (stop reason, usage), ``message_stop``."""
        reason = _STOP_REASONS.get(self._finish, b"end_turn")
        body = b'"delta":{"stop_reason":"%b","stop_sequence":null},"usage":%b' % (
            reason,
            self._usage(completion_tokens),
        )
        return (
            self._close(t_send)
            + self._event(b"message_delta", body, t_send)
            + self._event(b"message_stop", b"", t_send)
        )

    def error(self, message: str, err_type: str, code: int, t_send: float) -> bytes:
        """vLLM's error event (its stream converter names every failure ``internal_error``)."""
        error = b'{"type":"internal_error","message":%b}' % orjson.dumps(message)
        return self._event(b"error", b'"error":%b' % error, t_send)


def messages_body(
    *,
    request_hex: str,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    timestamps: tuple[float, float] | None = None,
    cached_tokens: int | None = None,
) -> bytes:
    """A non-streamed ``/v1/messages`` answer, as vLLM dumps it (no null fields)."""
    doc: dict[str, object] = {
        "id": MessagesStreamEncoder.ID_PREFIX.decode() + request_hex,
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "model": model,
        "stop_reason": _STOP_REASONS.get(finish_reason, b"end_turn").decode(),
        "usage": orjson.Fragment(_usage(prompt_tokens, completion_tokens, cached_tokens)),
    }
    if timestamps is not None:
        doc["mock_t_request"], doc["mock_t_send"] = timestamps
    return orjson.dumps(doc)
