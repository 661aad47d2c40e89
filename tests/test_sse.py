"""The sans-IO SSE decoder: the same events whatever the chunking, every line ending, and WHATWG field rules."""

from __future__ import annotations

import pytest

from sluicegate.sse import ServerSentEvent, SSEDecoder

# A realistic Anthropic stream, padded as the real API pads it, with non-ASCII text to split mid-character.
ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"model":"claude-haiku-4-5-20251001","id":"msg_01","type":"message",'
    b'"role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":135,'
    b'"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}   }\n'
    b"\n"
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}     }\n'
    b"\n"
    b"event: ping\n"
    b'data: {"type": "ping"}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"[1a2b3c4d] "}}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Gr\xc3\xbc\xc3\x9fe "}}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
    b'"text":"\xe2\x9c\x93 \xf0\x9f\x98\x80"}}\n'
    b"\n"
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":0        }\n'
    b"\n"
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":10}             }\n'
    b"\n"
    b"event: message_stop\n"
    b'data: {"type":"message_stop"              }\n'
    b"\n"
)
EXPECTED_NAMES = [
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]


def _decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    assert not decoder.has_partial
    return events


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


REFERENCE = _decode([ANTHROPIC_STREAM])


def test_whole_anthropic_stream() -> None:
    """The whole stream decodes into its nine events in order, names and UTF-8 text intact."""
    assert [e.event for e in REFERENCE] == EXPECTED_NAMES
    assert REFERENCE[2] == ServerSentEvent("ping", '{"type": "ping"}')
    assert '"text":"Grüße "' in REFERENCE[4].data
    assert '"text":"✓ 😀"' in REFERENCE[5].data
    assert REFERENCE[-1].data == '{"type":"message_stop"              }'


def test_every_two_way_split_gives_the_same_events() -> None:
    """Cutting the stream at any byte into two chunks yields exactly the same events."""
    for cut in range(len(ANTHROPIC_STREAM) + 1):
        assert _decode([ANTHROPIC_STREAM[:cut], ANTHROPIC_STREAM[cut:]]) == REFERENCE, cut


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_small_chunks_give_the_same_events(size: int) -> None:
    """Feeding 1, 2, 3, 7 or 64 bytes at a time yields exactly the same events."""
    assert _decode(_chunked(ANTHROPIC_STREAM, size)) == REFERENCE


@pytest.mark.parametrize("ending", [b"\r\n", b"\r", b"\n"])
@pytest.mark.parametrize("size", [1, 5, 10_000])
def test_line_endings(ending: bytes, size: int) -> None:
    """CRLF, CR and LF line endings decode alike, including a CRLF split between two chunks."""
    stream = ANTHROPIC_STREAM.replace(b"\n", ending)
    assert _decode(_chunked(stream, size)) == REFERENCE


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    """A CR at the end of a chunk followed by LF at the start of the next is one line end, not a blank line."""
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\r") == []
    assert decoder.feed(b"\ndata: x\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("a", "x")]
    assert not decoder.has_partial


def test_cr_only_stream_ends_on_close() -> None:
    """With CR endings the last blank line is held until more bytes or close(), which dispatches it."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r\r") == []
    assert decoder.has_partial
    assert decoder.close() == [ServerSentEvent("message", "x")]
    assert not decoder.has_partial


def test_multibyte_utf8_split_in_every_position() -> None:
    """A 4-byte emoji split at each inner byte is decoded once, intact."""
    raw = "data: 😀 ✓\n\n".encode()
    for cut in range(len(raw) + 1):
        assert _decode([raw[:cut], raw[cut:]]) == [ServerSentEvent("message", "😀 ✓")]


@pytest.mark.parametrize(
    ("stream", "events"),
    [
        (b": comment\ndata: a\n\n", [ServerSentEvent("message", "a")]),
        (b":\n: keep-alive\n\n", []),
        (b"data: a\ndata: b\ndata:\n\n", [ServerSentEvent("message", "a\nb\n")]),
        (b"data:a\n\n", [ServerSentEvent("message", "a")]),
        (b"data:  two spaces\n\n", [ServerSentEvent("message", " two spaces")]),
        (b"data\n\n", [ServerSentEvent("message", "")]),
        (b'data: {"k": "a:b"}\n\n', [ServerSentEvent("message", '{"k": "a:b"}')]),
        (b"event: ping\n\n", []),
        (b"event: ping\n\ndata: x\n\n", [ServerSentEvent("message", "x")]),
        (b"unknown: field\ndata: x\n\n", [ServerSentEvent("message", "x")]),
        (b"id: 7\nretry: 1500\ndata: x\n\n", [ServerSentEvent("message", "x", "7", 1500)]),
        (b"retry: soon\ndata: x\n\n", [ServerSentEvent("message", "x")]),
        (b"id: a\0b\ndata: x\n\n", [ServerSentEvent("message", "x")]),
        (b"\n\n\n", []),
        (b"data: [DONE]\n\n", [ServerSentEvent("message", "[DONE]")]),
    ],
)
def test_field_rules(stream: bytes, events: list[ServerSentEvent]) -> None:
    """Comments, multi-line data, the optional space, unknown fields, id/retry, and no dispatch without data."""
    assert _decode([stream]) == events


def test_last_event_id_persists() -> None:
    """An id applies to later events until another id is set, as the spec says."""
    events = _decode([b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n"])
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1"), ("c", "2")]


@pytest.mark.parametrize(
    "cut",
    [
        b"event: message_delta\n",  # fields without their blank line
        b"event: message_delta\ndata: {}\n",
        b"event: message_del",  # half a line
        b"data: {}",
    ],
)
def test_has_partial_after_a_cut(cut: bytes) -> None:
    """A stream cut mid-event leaves has_partial set, and close() drops the unfinished event."""
    decoder = SSEDecoder()
    assert decoder.feed(b"event: ping\ndata: {}\n\n" + cut) == [ServerSentEvent("ping", "{}")]
    assert decoder.has_partial
    assert decoder.close() == []


def test_no_partial_between_events() -> None:
    """After a complete event, or only comments, nothing is held."""
    decoder = SSEDecoder()
    assert not decoder.has_partial
    decoder.feed(b"data: x\n\n")
    assert not decoder.has_partial
    decoder.feed(b": ping\n")
    assert not decoder.has_partial


def test_leading_bom_is_ignored_in_any_chunking() -> None:
    """One leading UTF-8 byte order mark is skipped even when it arrives a byte at a time; a later one is data."""
    stream = b"\xef\xbb\xbf" + ANTHROPIC_STREAM
    for cut in range(5):
        assert _decode([stream[:cut], stream[cut:]]) == REFERENCE, cut
    assert _decode(_chunked(stream, 1)) == REFERENCE
    assert _decode([b"\xef\xbb\xbfdata: \xef\xbb\xbfx\n\n"]) == [ServerSentEvent("message", "\ufeffx")]


def test_a_bom_prefix_alone_is_partial() -> None:
    """Two bytes that may start a BOM are held: the stream so far is unfinished."""
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.has_partial
    assert decoder.feed(b"\xbfdata: x\n\n") == [ServerSentEvent("message", "x")]
    assert not decoder.has_partial


@pytest.mark.parametrize("size", [7, 1000, 4096])
def test_long_line_in_small_chunks(size: int) -> None:
    """A 300 kB data line arriving in small chunks is held whole and dispatched once, intact."""
    payload = b"x" * 300_000
    events = _decode([*_chunked(b"data: " + payload, size), b"\n\n"])
    assert events == [ServerSentEvent("message", payload.decode())]


def test_held_cr_followed_by_plain_bytes_is_a_line_end() -> None:
    """A CR at a chunk's end followed by a non-LF byte ends that line; the next bytes start a new one."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == []
    assert decoder.feed(b"data") == [ServerSentEvent("message", "a")]
    assert decoder.feed(b": b\r\r") == []
    assert decoder.close() == [ServerSentEvent("message", "b")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    """Bytes that are not UTF-8 decode to U+FFFD in names and data; the decoder never raises on them."""
    events = _decode([b"event: \xff\ndata: a\xc3\ndata: b\n\n"])
    assert events == [ServerSentEvent("\ufffd", "a\ufffd\nb")]
