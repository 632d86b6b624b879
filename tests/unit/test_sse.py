"""SSEDecoder: event framing over arbitrary read boundaries, per the WHATWG event-stream rules."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable, Sequence

import pytest

from sagellm_users._backends.answer import EventReader
from sagellm_users._backends.base import Chunk
from sagellm_users._errors import MalformedEventError, ResponseTooLargeError
from sagellm_users._sse import SSEDecoder

BOM = b"\xef\xbb\xbf"


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    return _json(
        {
            "id": "chatcmpl-7f3a",
            "object": "chat.completion.chunk",
            "created": 1717000000,
            "model": "tiny-llama",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
    )


# What vLLM's chat route streams: a role-only first chunk, one content delta per token
# (here with 2-, 3- and 4-byte UTF-8 characters), an empty last content chunk with the
# finish reason, the usage chunk with ``choices: []`` and the [DONE] sentinel.
VLLM_PAYLOADS: list[bytes] = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Caf\u00e9"}),
    _chunk({"content": " \u4e16\u754c"}),
    _chunk({"content": " \U0001f680"}),
    _chunk({"content": ""}, finish="length"),
    _json(
        {
            "id": "chatcmpl-7f3a",
            "object": "chat.completion.chunk",
            "created": 1717000000,
            "model": "tiny-llama",
            "choices": [],
            "usage": {"prompt_tokens": 7, "total_tokens": 11, "completion_tokens": 4},
        }
    ),
    b"[DONE]",
]


def _stream(payloads: Sequence[bytes], newline: bytes) -> bytes:
    return b"".join(b"data: " + p + newline + newline for p in payloads)


LF_STREAM = _stream(VLLM_PAYLOADS, b"\n")
CRLF_STREAM = _stream(VLLM_PAYLOADS, b"\r\n")


def _decode(pieces: Iterable[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    events: list[bytes] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    assert decoder.pending == b""
    return events


def _split(data: bytes, points: Sequence[int]) -> list[bytes]:
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- whole streams and every split point -----------------------------------------------------


def test_whole_vllm_stream_in_one_read() -> None:
    assert _decode([LF_STREAM]) == VLLM_PAYLOADS


def test_payloads_are_bytes_with_undecoded_utf8() -> None:
    events = _decode([LF_STREAM])
    assert "Caf\u00e9".encode() in events[1]
    assert json.loads(events[3])["choices"][0]["delta"]["content"] == " \U0001f680"


@pytest.mark.parametrize("point", range(len(LF_STREAM) + 1))
def test_lf_stream_split_in_two_at_every_byte(point: int) -> None:
    assert _decode(_split(LF_STREAM, [point])) == VLLM_PAYLOADS


@pytest.mark.parametrize("point", range(len(CRLF_STREAM) + 1))
def test_crlf_stream_split_in_two_at_every_byte(point: int) -> None:
    assert _decode(_split(CRLF_STREAM, [point])) == VLLM_PAYLOADS


def _inside(stream: bytes, needle: bytes, offset: int) -> int:
    index = stream.find(needle)
    assert index >= 0
    return index + offset


NAMED_SPLITS: dict[str, tuple[bytes, int]] = {
    # inside multi-byte characters: after 1 of 2 bytes, 1 and 2 of 3 bytes, 1..3 of 4 bytes
    "inside-2-byte-char": (LF_STREAM, _inside(LF_STREAM, "\u00e9".encode(), 1)),
    "inside-3-byte-char-at-1": (LF_STREAM, _inside(LF_STREAM, "\u4e16".encode(), 1)),
    "inside-3-byte-char-at-2": (LF_STREAM, _inside(LF_STREAM, "\u4e16".encode(), 2)),
    "inside-4-byte-char-at-1": (LF_STREAM, _inside(LF_STREAM, "\U0001f680".encode(), 1)),
    "inside-4-byte-char-at-2": (LF_STREAM, _inside(LF_STREAM, "\U0001f680".encode(), 2)),
    "inside-4-byte-char-at-3": (LF_STREAM, _inside(LF_STREAM, "\U0001f680".encode(), 3)),
    "between-the-two-lfs": (LF_STREAM, _inside(LF_STREAM, b"\n\n", 1)),
    "inside-data-prefix": (LF_STREAM, _inside(LF_STREAM, b"data: ", 3)),
    "after-data-colon": (LF_STREAM, _inside(LF_STREAM, b"data: ", 5)),
    "inside-done": (LF_STREAM, _inside(LF_STREAM, b"[DONE]", 3)),
    "between-cr-and-lf-of-data-line": (CRLF_STREAM, _inside(CRLF_STREAM, b"\r\n", 1)),
    "between-cr-and-lf-of-blank-line": (CRLF_STREAM, _inside(CRLF_STREAM, b"\r\n\r\n", 3)),
    "between-crlf-pairs": (CRLF_STREAM, _inside(CRLF_STREAM, b"\r\n\r\n", 2)),
}


@pytest.mark.parametrize(("stream", "point"), NAMED_SPLITS.values(), ids=NAMED_SPLITS.keys())
def test_named_split_points(stream: bytes, point: int) -> None:
    assert 0 < point < len(stream)
    first, second = stream[:point], stream[point:]
    decoder = SSEDecoder()
    before = decoder.feed(first)
    after = decoder.feed(second)
    assert before + after == VLLM_PAYLOADS
    # No event is dispatched before its blank line; every event whose blank line ended
    # with LF is. (A CR ending the read may or may not be taken for a line end yet.)
    ended_by_lf = first.replace(b"\r\n", b"\n").count(b"\n\n")
    ended_by_any = first.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n\n")
    assert ended_by_lf <= len(before) <= ended_by_any


@pytest.mark.parametrize("stream", [LF_STREAM, CRLF_STREAM], ids=["lf", "crlf"])
def test_stream_fed_one_byte_at_a_time(stream: bytes) -> None:
    assert _decode([stream[i : i + 1] for i in range(len(stream))]) == VLLM_PAYLOADS


def test_event_is_dispatched_by_the_read_that_completes_it() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a"') == []
    assert decoder.feed(b": 1}\n") == []
    assert decoder.feed(b"\n") == [b'{"a": 1}']


# -- framing rules ---------------------------------------------------------------------------


def test_several_events_in_one_read() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4") == [b"1", b"2", b"3"]
    assert decoder.pending == b"data: 4"
    assert decoder.feed(b"\n\n") == [b"4"]
    assert decoder.pending == b""


def test_crlf_line_endings() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\n\r\ndata: b\r\ndata: c\r\n\r\n") == [b"a", b"b\nc"]


def test_lone_cr_line_endings() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"data: one\r\rdata: two\rdata: three\r\r: tail")
    assert events == [b"one", b"two\nthree"]


def test_lone_cr_event_is_dispatched_when_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [b"a"]


def test_cr_then_lf_in_the_next_read_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # Were that CR and this LF two line ends, they would make a blank line and dispatch "a".
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r\n") == [b"a\nb"]
    assert decoder.pending == b""


def test_mixed_line_endings() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\n\r\n:end")
    assert events == [b"a", b"b", b"c", b"d"]


def test_multi_line_data_is_joined_with_lf() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b'data: {"text":\ndata: "two lines"}\n\ndata: x\ndata:\ndata: y\n\n')
    assert events == [b'{"text":\n"two lines"}', b"x\n\ny"]
    assert json.loads(events[0]) == {"text": "two lines"}


def test_comments_are_ignored() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": keep-alive\n\n") == []
    assert decoder.feed(b":\n\n") == []
    assert decoder.feed(b": ping\ndata: x\n: pong\n\n") == [b"x"]
    assert decoder.pending == b""


def test_other_fields_are_ignored() -> None:
    decoder = SSEDecoder()
    stream = b"event: message\nid: 42\nretry: 1000\ndata: payload\nfoo: bar\n\n"
    assert decoder.feed(stream) == [b"payload"]


def test_event_without_data_dispatches_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: ping\nid: 7\n\nretry: 5\n\ndata: real\n\n") == [b"real"]


def test_data_with_no_space_after_colon() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data:{"a":1}\n\n') == [b'{"a":1}']


def test_only_one_space_after_colon_is_removed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data:  two spaces\n\ndata:\tx\n\n") == [b" two spaces", b"\tx"]


def test_data_line_without_colon_is_empty_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data\n\n") == [b""]
    assert decoder.feed(b"data\ndata: x\n\n") == [b"\nx"]


def test_empty_data_value() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: \n\ndata:\n\n") == [b"", b""]


def test_field_name_is_case_sensitive() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"Data: x\n\nDATA: y\n\ndata : z\n\n") == []


def test_leading_bom_is_skipped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(BOM + b"data: x\n\ndata: y\n\n") == [b"x", b"y"]


def test_leading_bom_in_a_read_of_its_own() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(BOM) == []
    assert decoder.feed(b"data: x\n\n") == [b"x"]


def test_bom_after_an_empty_first_read_is_still_leading() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(BOM + b"data: x\n\n") == [b"x"]


def test_bom_later_in_the_stream_is_not_skipped() -> None:
    decoder = SSEDecoder()
    # Only the stream's first bytes may be a BOM; later it is part of a field name
    # ("\ufeffdata" is an unknown field, so that event carries no data).
    assert decoder.feed(b"data: x\n\n" + BOM + b"data: y\n\ndata: z\n\n") == [b"x", b"z"]


@pytest.mark.parametrize("cut", [1, 2])
def test_leading_bom_split_across_reads_is_skipped(cut: int) -> None:
    decoder = SSEDecoder()
    stream = BOM + b"data: x\n\n"
    assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == [b"x"]


def test_blank_lines_between_events() -> None:
    decoder = SSEDecoder()
    stream = b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n\r\n\r\n\rdata: c\n\n"
    assert decoder.feed(stream) == [b"a", b"b", b"c"]
    assert decoder.pending == b""


# -- pending and empty reads -----------------------------------------------------------------


def test_pending_is_empty_for_a_fresh_decoder() -> None:
    assert SSEDecoder().pending == b""


def test_pending_after_a_cut() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\n\ndata: {"b"') == [b'{"a": 1}']
    assert decoder.pending == b'data: {"b"'


def test_pending_after_a_line_without_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.pending == b"data: x"


def test_pending_is_empty_after_complete_events_and_trailing_newlines() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\n\n") == [b"x"]
    assert decoder.pending == b""


def test_empty_feed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.pending == b""
    assert decoder.feed(b"data: x") == []
    assert decoder.feed(b"") == []
    assert decoder.pending == b"data: x"
    assert decoder.feed(b"\n\n") == [b"x"]
    assert decoder.feed(b"") == []


def test_empty_feeds_between_cr_and_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []  # completes the CRLF: one line end, no blank line yet
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\r\n") == [b"x"]


# -- randomized: any split gives the unsplit result --------------------------------------------

_NEWLINES = (b"\n", b"\r\n", b"\r")
_VALUES = (b"x", b"", b" lead", b"\xc3\xa9t\xc3\xa9", b"\xf0\x9f\x9a\x80!", b'{"k": [1, 2]}')


def _random_stream(rng: random.Random) -> tuple[bytes, list[bytes]]:
    """A stream of random events (built from the rules, not the decoder) and its payloads."""
    parts: list[bytes] = []

    def add(part: bytes) -> None:
        # A blank line after a CR-ended line must not start with LF: CR + LF would read as
        # one CRLF line end, not two line ends.
        if parts and parts[-1].endswith(b"\r") and part.startswith(b"\n"):
            part = b"\r\n" + part[1:]
        parts.append(part)

    expected: list[bytes] = []
    for _ in range(rng.randint(0, 8)):
        data_lines: list[bytes] = []
        for _ in range(rng.randint(1, 5)):
            newline = rng.choice(_NEWLINES)
            kind = rng.randrange(6)
            if kind == 0:
                add(b": comment " + rng.choice(_VALUES) + newline)
            elif kind == 1:
                field = rng.choice((b"event", b"id", b"retry", b"x-other"))
                add(field + b": " + rng.choice(_VALUES) + newline)
            else:
                value = rng.choice(_VALUES)
                space = b" " if rng.random() < 0.7 else b""
                add(b"data:" + space + value + newline)
                # Without our space, a value's own leading space is the one that is removed.
                data_lines.append(value[1:] if not space and value.startswith(b" ") else value)
        # Each event ends with a blank line; sometimes a few extra blank lines follow.
        for _ in range(1 + (rng.random() < 0.2) * rng.randint(1, 3)):
            add(rng.choice(_NEWLINES))
        if data_lines:
            expected.append(b"\n".join(data_lines))
    # Ends with an LF-terminated event, as real servers do, so no event waits on a final CR.
    add(b"data: [DONE]\n\n")
    expected.append(b"[DONE]")
    return b"".join(parts), expected


def _random_points(rng: random.Random, size: int) -> list[int]:
    count = rng.randint(0, min(12, size))
    return sorted(rng.sample(range(1, size), count)) if size > 1 else []


def test_random_splits_match_the_unsplit_decode() -> None:
    rng = random.Random(20240917)
    for _ in range(400):
        stream, expected = _random_stream(rng)
        whole = SSEDecoder().feed(stream)
        pieces = _split(stream, _random_points(rng, len(stream)))
        # Empty reads now and then must change nothing.
        pieces = [p for piece in pieces for p in ((piece, b"") if rng.random() < 0.1 else (piece,))]
        assert _decode(pieces) == whole, (stream, pieces)
        assert whole == expected, stream


# -- linear in the size of an event ----------------------------------------------------------

_MSS = 1448  # a TCP segment's payload on Ethernet: the size of the reads a big event comes in


def _feed_in_pieces(decoder: SSEDecoder, stream: bytes, size: int) -> list[bytes]:
    events: list[bytes] = []
    for at in range(0, len(stream), size):
        events.extend(decoder.feed(stream[at : at + size]))
    return events


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_a_5_mb_event_in_1448_byte_reads_is_handled_in_linear_work(newline: bytes) -> None:
    """Each byte kept from an earlier read is copied or searched again at most a fixed
    number of times, however many reads the event spans: the decoder's own count of that
    work stays within twice the event's size. (Copying the kept tail and searching it again
    on every read, as a quadratic decoder does, counts about 1,700 times the size here.)"""
    token = b"x" * 5_000_000
    stream = b"data: " + token + newline + newline + b"data: [DONE]" + newline + newline
    decoder = SSEDecoder()
    events = _feed_in_pieces(decoder, stream, _MSS)
    assert events == [token, b"[DONE]"]
    assert decoder.pending == b""
    assert decoder.rescanned <= 2 * len(stream), decoder.rescanned


def test_many_events_split_across_reads_cost_linear_work() -> None:
    """Events of every size that straddle read boundaries: the work stays linear."""
    payloads = [b"y" * size for size in (1, 10, 100, 1_000, 10_000, 100_000) * 20]
    stream = b"".join(b"data: " + p + b"\n\n" for p in payloads)
    decoder = SSEDecoder()
    assert _feed_in_pieces(decoder, stream, _MSS) == payloads
    assert decoder.rescanned <= 2 * len(stream), decoder.rescanned


# -- the event size limit --------------------------------------------------------------------


def test_an_event_at_the_limit_passes_and_one_byte_more_fails() -> None:
    event = b"data: " + b"x" * 1018  # 1,024 bytes as received
    assert SSEDecoder(max_event_bytes=1024).feed(event + b"\n\n") == [b"x" * 1018]
    with pytest.raises(ResponseTooLargeError, match=r"1 KiB limit.*--max-event-size"):
        SSEDecoder(max_event_bytes=1024).feed(event + b"x\n\n")


@pytest.mark.parametrize("piece", [1, 100, _MSS, 65536])
def test_an_event_growing_past_the_limit_fails_with_what_is_kept_bounded(piece: int) -> None:
    """An event that never ends (here: 1 MiB without its blank line, then more) fails as
    soon as it passes the limit; until then the decoder keeps no more than the limit."""
    limit = 64 * 1024
    decoder = SSEDecoder(max_event_bytes=limit)
    stream = b"data: " + b"x" * (1 << 20)
    fed = 0
    with pytest.raises(ResponseTooLargeError) as info:
        for at in range(0, len(stream), piece):
            decoder.feed(stream[at : at + piece])
            fed = at + piece
            assert len(decoder.pending) <= limit
    assert limit - piece <= fed <= limit
    assert "an SSE event passed the 64 KiB limit" in str(info.value)
    assert "--max-event-size" in str(info.value)
    assert decoder.pending == b""  # nothing held once it failed


def test_endless_comments_without_a_blank_line_are_one_growing_event() -> None:
    decoder = SSEDecoder(max_event_bytes=4096)
    with pytest.raises(ResponseTooLargeError):
        for _ in range(1000):
            decoder.feed(b": keep-alive\n")


def test_a_10_mb_token_fits_the_default_limit() -> None:
    """The mock's huge_event (a 10 MB token) must pass with the default limit."""
    token = b'{"choices":[{"delta":{"content":" ' + b"x" * 10_000_000 + b'"}}]}'
    events = _feed_in_pieces(SSEDecoder(), b"data: " + token + b"\n\n", 65536)
    assert events == [token]


def test_events_after_a_big_one_are_unaffected() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    stream = b"data: " + b"y" * 990 + b"\n\ndata: a\n\ndata: b\n\n"
    assert _feed_in_pieces(decoder, stream, 7) == [b"y" * 990, b"a", b"b"]


def test_a_blank_line_that_straddles_reads_ends_the_pending_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\n\n") == [b"x"]  # a lone LF is left over
    assert decoder.feed(b"\ndata: y\n") == []  # that LF and this one: an empty block
    assert decoder.feed(b"\n") == [b"y"]  # the blank line straddles the two reads
    assert decoder.feed(b"data: " + b"z" * 5000 + b"\n") == []
    assert decoder.feed(b"\ndata: w\n\n") == [b"z" * 5000, b"w"]
    assert decoder.pending == b""


def test_a_read_keeps_the_chunks_before_an_event_that_cannot_be_parsed() -> None:
    """Two events in one read, the second malformed: the first was measured (it is
    returned, stamped with the read) and the error waits until it is taken."""

    def parse(data: bytes, t: float) -> Chunk:
        if data == b"bad":
            raise MalformedEventError("stream event is not JSON: 'bad'")
        return Chunk(t=t, text=data.decode(), step=True)

    reader = EventReader(parse, 1 << 16)
    chunks = reader.feed(1.5, b"data: a\n\ndata: \n\ndata: b\n\ndata: bad\n\ndata: c\n\n")
    assert [(c.text, c.t) for c in chunks] == [("a", 1.5), ("b", 1.5)]
    assert isinstance(reader.error, MalformedEventError) and not reader.done
    done = EventReader(parse, 1 << 16)
    assert [c.text for c in done.feed(2.0, b"data: x\n\ndata: [DONE]\n\ndata: y\n\n")] == ["x"]
    assert done.done and done.error is None
