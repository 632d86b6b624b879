"""OpenAI's Responses API (``POST /v1/responses``) on the wire, as vLLM 0.32 sends it.

Captured from a real vLLM 0.32 server and its event models (``model_dump_json(by_alias=
True)``: every field, nulls included, in the models' order). Each event is ``event: TYPE``
then ``data: {...,"sequence_number":N,"type":TYPE}``, numbered from 0; there is no
``[DONE]``. A stream is:

* ``response.created`` and ``response.in_progress``, each with the whole response object
  (``"status":"in_progress"``, ``"output":[]``, ``"usage":null``);
* at the first token of each block: ``response.output_item.added`` and
  ``response.content_part.added`` (a ``message`` item with an ``output_text`` part, or a
  ``reasoning`` item with a ``reasoning_text`` part);
* one ``response.output_text.delta`` (``response.reasoning_text.delta``) per token that has
  text: vLLM sends nothing for a token whose text is empty (held back, or the EOS token);
* at a block's end: ``response.output_text.done`` (``reasoning_text.done``),
  ``response.content_part.done`` and ``response.output_item.done``, with the block's text;
* ``response.completed`` with the whole response: its output items, ``usage`` (input and
  output tokens with their details) and ``"status":"completed"``, or ``"incomplete"`` with
  ``"incomplete_details":{"reason":"max_output_tokens"}`` for an answer cut at its cap.

vLLM 0.32's own in-stream error for this route fails its event validation and breaks the
connection; the mock sends the ``error`` event of OpenAI's API reference instead
(``{"code","message","param","sequence_number","type":"error"}``). A non-streamed answer is
the completed response object alone.

The per-token path formats one event from pre-encoded pieces; a block's text is kept as
its tokens' JSON string literals (each one's quotes dropped), joined once for the done
events.
"""

from __future__ import annotations

from time import perf_counter

import orjson

from .simulation import EMPTY_TOKEN
from .wire import END_OF_BODY, typed_event

__all__ = ["ResponsesStreamEncoder", "responses_body"]

_TEXT, _REASONING = 1, 2

_CREATED = b"response.created"
_IN_PROGRESS = b"response.in_progress"
_ITEM_ADDED = b"response.output_item.added"
_PART_ADDED = b"response.content_part.added"
_TEXT_DELTA = b"response.output_text.delta"
_REASONING_DELTA = b"response.reasoning_text.delta"
_TEXT_DONE = b"response.output_text.done"
_REASONING_DONE = b"response.reasoning_text.done"
_PART_DONE = b"response.content_part.done"
_ITEM_DONE = b"response.output_item.done"
_COMPLETED = b"response.completed"


def _usage(prompt_tokens: int, output_tokens: int, reasoning_tokens: int, cached: int) -> bytes:
    """vLLM's usage: ``input_tokens`` counts the cached prompt tokens too."""
    return (
        b'{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d,"cache_write_tokens":0,'
        b'"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":%d,'
        b'"output_tokens_details":{"reasoning_tokens":%d,"tool_output_tokens":0,'
        b'"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":%d}'
        % (prompt_tokens, cached, output_tokens, reasoning_tokens, prompt_tokens + output_tokens)
    )


def _response(
    *,
    response_id: bytes,
    created: int,
    model_json: bytes,
    max_output_tokens: int,
    status: bytes,
    output: bytes = b"[]",
    usage: bytes = b"null",
) -> bytes:
    """vLLM's response object, its fields in its order (request echoes at their defaults)."""
    details = b'{"reason":"max_output_tokens"}' if status == b"incomplete" else b"null"
    return (
        b'{"id":"%b","created_at":%d,"incomplete_details":%b,"instructions":null,'
        b'"metadata":null,"model":%b,"object":"response","output":%b,'
        b'"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"none","tools":[],'
        b'"top_p":1.0,"background":false,"max_output_tokens":%d,"max_tool_calls":null,'
        b'"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto",'
        b'"status":"%b","text":null,"top_logprobs":null,"truncation":"disabled","usage":%b,'
        b'"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,'
        b'"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,'
        b'"output_messages":null}'
        % (
            response_id,
            created,
            details,
            model_json,
            output,
            max_output_tokens,
            status,
            usage,
        )
    )


def _message_item(item_id: bytes, text_json: bytes, status: bytes) -> bytes:
    part = b'{"annotations":[],"text":%b,"type":"output_text","logprobs":null}' % text_json
    content = b"[]" if text_json == b'""' else b"[%b]" % part
    return (
        b'{"id":"%b","content":%b,"role":"assistant","status":"%b","type":"message",'
        b'"phase":null}' % (item_id, content, status)
    )


def _reasoning_item(item_id: bytes, text_json: bytes) -> bytes:
    return (
        b'{"id":"%b","summary":[],"type":"reasoning","content":[{"text":%b,'
        b'"type":"reasoning_text"}],"encrypted_content":null,"status":"completed"}'
        % (item_id, text_json)
    )


class ResponsesStreamEncoder:
    """Encodes one streamed ``/v1/responses`` answer (the interface of
    :class:`.wire.TokenEncoder`, and :meth:`reasoning_token` for reasoning tokens).

    Stateful, as the stream is: the sequence numbers, the open block and its text, the
    output items done so far. ``t_request`` set means ``--send-timestamps``: every event
    gets ``mock_t_request`` and ``mock_t_send``; ``cached_tokens`` is the prompt's share
    the prefix cache served (``--prefix-cache-blocks``).
    """

    ID_PREFIX = b"resp_"
    end_of_stream = END_OF_BODY

    __slots__ = (
        "_block",
        "_cached",
        "_created",
        "_delta_tail",
        "_finish",
        "_hex",
        "_item",
        "_items",
        "_max_output_tokens",
        "_model_json",
        "_output_index",
        "_pieces",
        "_prompt_tokens",
        "_reasoning_tokens",
        "_seq",
        "_t_request",
    )

    def __init__(
        self,
        *,
        request_hex: str,
        created: int,
        model_json: bytes,
        prompt_tokens: int,
        max_output_tokens: int,
        t_request: float | None = None,
        cached_tokens: int | None = None,
    ) -> None:
        self._hex = request_hex.encode()
        self._cached = cached_tokens or 0
        self._created = created
        self._model_json = model_json
        self._prompt_tokens = prompt_tokens
        self._max_output_tokens = max_output_tokens
        self._t_request = t_request
        self._seq = 0
        self._block = 0  # none open; else _TEXT or _REASONING
        self._item = b""
        self._output_index = 0
        self._pieces: list[bytes] = []  # the open block's text, JSON-escaped, no quotes
        self._delta_tail = b""
        self._items: list[bytes] = []  # output items done
        self._reasoning_tokens = 0
        self._finish = "length"

    # events ------------------------------------------------------------------------------

    def _event(self, name: bytes, body: bytes, t_send: float, after: bytes = b"") -> bytes:
        """``body`` is the event's fields before ``sequence_number``, without braces;
        ``after`` those between it and ``type`` (the models' fields are alphabetical)."""
        seq = self._seq
        self._seq = seq + 1
        stamps = b""
        if self._t_request is not None:
            stamps = b',"mock_t_request":%r,"mock_t_send":%r' % (self._t_request, t_send)
        return typed_event(
            name, b'{%b,"sequence_number":%d%b,"type":"%b"%b}' % (body, seq, after, name, stamps)
        )

    def _response_object(self, status: bytes, output: bytes, usage: bytes) -> bytes:
        return _response(
            response_id=self.ID_PREFIX + self._hex,
            created=self._created,
            model_json=self._model_json,
            max_output_tokens=self._max_output_tokens,
            status=status,
            output=output,
            usage=usage,
        )

    def _open(self, block: int, t_send: float) -> bytes:
        """Close the open block (if another) and open ``block``: its two opening events."""
        out = self._close(t_send)
        self._block = block
        index = self._output_index
        if block == _TEXT:
            self._item = item = b"msg_" + self._hex
            added = (
                b'{"id":"%b","content":[],"role":"assistant","status":"in_progress",'
                b'"type":"message","phase":null}' % item
            )
            part = b'{"annotations":[],"text":"","type":"output_text","logprobs":[]}'
            self._delta_tail = b',"item_id":"%b","logprobs":[],"output_index":%d' % (item, index)
        else:
            self._item = item = b"rs_" + self._hex
            added = (
                b'{"id":"%b","summary":[],"type":"reasoning","content":null,'
                b'"encrypted_content":null,"status":"in_progress"}' % item
            )
            part = b'{"text":"","type":"reasoning_text"}'
            self._delta_tail = b',"item_id":"%b","output_index":%d' % (item, index)
        out += self._event(_ITEM_ADDED, b'"item":%b,"output_index":%d' % (added, index), t_send)
        out += self._event(
            _PART_ADDED,
            b'"content_index":0,"item_id":"%b","output_index":%d,"part":%b' % (item, index, part),
            t_send,
        )
        return out

    def _close(self, t_send: float) -> bytes:
        """The done events of the open block, if one is open."""
        block = self._block
        if not block:
            return b""
        item, index = self._item, self._output_index
        text = b'"%b"' % b"".join(self._pieces)
        self._pieces = []
        self._block = 0
        self._output_index = index + 1
        head = b'"content_index":0,"item_id":"%b"' % item
        if block == _TEXT:
            done = self._event(
                _TEXT_DONE,
                head + b',"logprobs":[],"output_index":%d' % index,
                t_send,
                b',"text":%b' % text,
            )
            part = b'{"annotations":[],"text":%b,"type":"output_text","logprobs":null}' % text
            finished = _message_item(item, text, b"completed")
        else:
            done = self._event(
                _REASONING_DONE, head + b',"output_index":%d' % index, t_send, b',"text":%b' % text
            )
            part = b'{"text":%b,"type":"reasoning_text"}' % text
            finished = _reasoning_item(item, text)
        self._items.append(finished)
        done += self._event(
            _PART_DONE, head + b',"output_index":%d,"part":%b' % (index, part), t_send
        )
        return done + self._event(
            _ITEM_DONE, b'"item":%b,"output_index":%d' % (finished, index), t_send
        )

    def _delta(self, block: int, word: bytes, t_send: float) -> bytes:
        if word == EMPTY_TOKEN:
            return b""  # vLLM sends no event for a token without text
        out = b"" if self._block == block else self._open(block, t_send)
        self._pieces.append(word[1:-1])
        name = _TEXT_DELTA if block == _TEXT else _REASONING_DELTA
        return out + self._event(
            name, b'"content_index":0,"delta":%b%b' % (word, self._delta_tail), t_send
        )

    # the TokenEncoder interface ----------------------------------------------------------

    def preamble(self, t_send: float) -> bytes:
        """``response.created`` and ``response.in_progress``."""
        opening = self._response_object(b"in_progress", b"[]", b"null")
        return self._event(_CREATED, b'"response":%b' % opening, t_send) + self._event(
            _IN_PROGRESS, b'"response":%b' % opening, t_send
        )

    def token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        """A token of the answer: an ``output_text.delta`` (nothing when it has no text)."""
        return self._delta(_TEXT, word, t_send)

    def next_token(self, word: bytes, n_done: int) -> bytes:
        return self._delta(_TEXT, word, perf_counter())

    def reasoning_token(self, word: bytes, n_done: int, t_send: float) -> bytes:
        """A token of reasoning: a ``reasoning_text.delta`` (opening a reasoning item before
        the answer's message, as vLLM's reasoning parser does)."""
        self._reasoning_tokens += 1
        return self._delta(_REASONING, word, t_send)

    def final_token(self, word: bytes, n_done: int, finish_reason: str, t_send: float) -> bytes:
        """The last token; the finish is told in ``response.completed`` (see :meth:`usage`)."""
        self._finish = finish_reason
        return self._delta(_TEXT, word, t_send)

    def usage(self, completion_tokens: int, t_send: float) -> bytes:
        """The open block's done events, then ``response.completed``."""
        out = self._close(t_send)
        status = b"incomplete" if self._finish == "length" else b"completed"
        output = b"[%b]" % b",".join(self._items)
        usage = _usage(self._prompt_tokens, completion_tokens, self._reasoning_tokens, self._cached)
        done = self._response_object(status, output, usage)
        return out + self._event(_COMPLETED, b'"response":%b' % done, t_send)

    def error(self, message: str, err_type: str, code: int, t_send: float) -> bytes:
        """OpenAI's ``error`` event (see the module's note)."""
        body = b'"code":%b,"message":%b,"param":null' % (
            orjson.dumps(err_type),
            orjson.dumps(message),
        )
        return self._event(b"error", body, t_send)


def responses_body(
    *,
    request_hex: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    max_output_tokens: int,
    timestamps: tuple[float, float] | None = None,
    cached_tokens: int | None = None,
) -> bytes:
    """A non-streamed ``/v1/responses`` answer: the completed response object."""
    hex_id = request_hex.encode()
    status = b"incomplete" if finish_reason == "length" else b"completed"
    item = _message_item(b"msg_" + hex_id, orjson.dumps(text), b"completed")
    body = _response(
        response_id=ResponsesStreamEncoder.ID_PREFIX + hex_id,
        created=created,
        model_json=orjson.dumps(model),
        max_output_tokens=max_output_tokens,
        status=status,
        output=b"[%b]" % item,
        usage=_usage(prompt_tokens, completion_tokens, 0, cached_tokens or 0),
    )
    if timestamps is not None:
        body = body[:-1] + b',"mock_t_request":%r,"mock_t_send":%r}' % timestamps
    return body
