"""Responses and Messages streams exactly as vLLM 0.32 sends them, captured from a real one.

Captured with the tiny random Llama of tests/real, each event as it came on the wire
(``event: NAME``, ``data: {...}``, the blank line). ``RESPONSES_LENGTH`` asked
``max_output_tokens: 5`` with ``ignore_eos``: five tokens in three text deltas (vLLM merged
two pairs its stream had not taken yet), ``"status": "incomplete"``. ``RESPONSES_EOS``
forced EOS first (``logit_bias {"1": 100}``): no text event at all, the EOS step counted in
``usage``. ``MESSAGES_LENGTH`` asked ``max_tokens: 5`` with a system prompt: five deltas,
``stop_reason: "max_tokens"``.
"""

from __future__ import annotations

__all__ = [
    "MESSAGES_LENGTH",
    "RESPONSES_EOS",
    "RESPONSES_LENGTH",
    "VLLM_REASONING",
    "VLLM_THINKING",
    "body",
]

RESPONSES_LENGTH: tuple[bytes, ...] = (
    b'event: response.created\ndata: {"response":{"id":"resp_a521ffec1457ce26","created_at":1796619416,"incomplete_details":null,"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":5,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"in_progress","text":null,"top_logprobs":null,"truncation":"disabled","usage":null,"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":0,"type":"response.created"}\n\n',
    b'event: response.in_progress\ndata: {"response":{"id":"resp_a521ffec1457ce26","created_at":1796619416,"incomplete_details":null,"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":5,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"in_progress","text":null,"top_logprobs":null,"truncation":"disabled","usage":null,"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":1,"type":"response.in_progress"}\n\n',
    b'event: response.output_item.added\ndata: {"item":{"id":"msg_856aa3c3abf7ee4e","content":[],"role":"assistant","status":"in_progress","type":"message","phase":null},"output_index":0,"sequence_number":2,"type":"response.output_item.added"}\n\n',
    b'event: response.content_part.added\ndata: {"content_index":0,"item_id":"msg_856aa3c3abf7ee4e","output_index":0,"part":{"annotations":[],"text":"","type":"output_text","logprobs":[]},"sequence_number":3,"type":"response.content_part.added"}\n\n',
    b'event: response.output_text.delta\ndata: {"content_index":0,"delta":"Pure","item_id":"msg_856aa3c3abf7ee4e","logprobs":[],"output_index":0,"sequence_number":4,"type":"response.output_text.delta"}\n\n',
    b'event: response.output_text.delta\ndata: {"content_index":0,"delta":"RED she est","item_id":"msg_856aa3c3abf7ee4e","logprobs":[],"output_index":0,"sequence_number":5,"type":"response.output_text.delta"}\n\n',
    b'event: response.output_text.delta\ndata: {"content_index":0,"delta":"WORD","item_id":"msg_856aa3c3abf7ee4e","logprobs":[],"output_index":0,"sequence_number":6,"type":"response.output_text.delta"}\n\n',
    b'event: response.output_text.done\ndata: {"content_index":0,"item_id":"msg_856aa3c3abf7ee4e","logprobs":[],"output_index":0,"sequence_number":7,"text":"PureRED she estWORD","type":"response.output_text.done"}\n\n',
    b'event: response.content_part.done\ndata: {"content_index":0,"item_id":"msg_856aa3c3abf7ee4e","output_index":0,"part":{"annotations":[],"text":"PureRED she estWORD","type":"output_text","logprobs":null},"sequence_number":8,"type":"response.content_part.done"}\n\n',
    b'event: response.output_item.done\ndata: {"item":{"id":"msg_856aa3c3abf7ee4e","content":[{"annotations":[],"text":"PureRED she estWORD","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message","phase":null},"output_index":0,"sequence_number":9,"type":"response.output_item.done"}\n\n',
    b'event: response.completed\ndata: {"response":{"id":"resp_a521ffec1457ce26","created_at":1796619416,"incomplete_details":{"reason":"max_output_tokens"},"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[{"id":"msg_856aa3c3abf7ee4e","content":[{"annotations":[],"text":"PureRED she estWORD","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message","phase":null}],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":5,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"incomplete","text":null,"top_logprobs":null,"truncation":"disabled","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":17},"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":10,"type":"response.completed"}\n\n',
)  # fmt: skip

RESPONSES_EOS: tuple[bytes, ...] = (
    b'event: response.created\ndata: {"response":{"id":"resp_a3d1bf03c051fdf0","created_at":1796619719,"incomplete_details":null,"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":5,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"in_progress","text":null,"top_logprobs":null,"truncation":"disabled","usage":null,"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":0,"type":"response.created"}\n\n',
    b'event: response.in_progress\ndata: {"response":{"id":"resp_a3d1bf03c051fdf0","created_at":1796619719,"incomplete_details":null,"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":5,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"in_progress","text":null,"top_logprobs":null,"truncation":"disabled","usage":null,"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":1,"type":"response.in_progress"}\n\n',
    b'event: response.completed\ndata: {"response":{"id":"resp_a3d1bf03c051fdf0","created_at":1796619719,"incomplete_details":null,"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[],"parallel_tool_calls":true,"temperature":1.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":5,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"completed","text":null,"top_logprobs":null,"truncation":"disabled","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":1,"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":13},"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":2,"type":"response.completed"}\n\n',
)  # fmt: skip

MESSAGES_LENGTH: tuple[bytes, ...] = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"chatcmpl-93dfab5bc323af2a","type":"message","role":"assistant","content":[],"model":"tiny","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":19,"output_tokens":0}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","content_block":{"type":"text","text":""},"index":0}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"arison"},"index":0}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"tin"},"index":0}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"nans"},"index":0}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":" number"},"index":0}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"ca"},"index":0}\n\n',
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"input_tokens":19,"output_tokens":5}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
)  # fmt: skip


#: vLLM 0.32's reasoning events, from its own event models (``model_dump_json(by_alias=
#: True)``, as its router sends them): no tiny model of ours has a reasoning parser.
VLLM_REASONING = (
    b'{"item":{"id":"rs_b36eb15a577203ac","summary":[],"type":"reasoning","content":null,"encrypted_content":null,"status":"in_progress"},"output_index":0,"sequence_number":2,"type":"response.output_item.added"}',
    b'{"content_index":0,"item_id":"rs_b36eb15a577203ac","output_index":0,"part":{"text":"","type":"reasoning_text"},"sequence_number":3,"type":"response.content_part.added"}',
    b'{"content_index":0,"delta":" think","item_id":"rs_b36eb15a577203ac","output_index":0,"sequence_number":4,"type":"response.reasoning_text.delta"}',
    b'{"content_index":0,"item_id":"rs_b36eb15a577203ac","output_index":0,"sequence_number":5,"text":" think","type":"response.reasoning_text.done"}',
    b'{"content_index":0,"item_id":"rs_b36eb15a577203ac","output_index":0,"part":{"text":" think","type":"reasoning_text"},"sequence_number":6,"type":"response.content_part.done"}',
)  # fmt: skip
#: vLLM 0.32's thinking events on /v1/messages, from its own models (``exclude_unset``).
VLLM_THINKING = (
    b'{"type":"content_block_start","content_block":{"type":"thinking","thinking":""},"index":0}',
    b'{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":" x"},"index":0}',
    b'{"type":"content_block_delta","delta":{"type":"signature_delta","signature":"ab"},"index":0}',
)  # fmt: skip


def body(events: tuple[bytes, ...]) -> bytes:
    """The stream's body: its events one after another, as the server wrote them."""
    return b"".join(events)
