"""OpenAI streams through the gateway: it asks for the usage upstream and hides the extra chunk from clients."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluicegate.serve._stream_usage import UsageChunkFilter, ask_for_usage

_BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}


def _stream(*, crlf: bool = False) -> tuple[bytes, bytes]:
    """(the stream as the upstream sends it with include_usage, the same stream without its usage chunk)."""
    end = "\r\n\r\n" if crlf else "\n\n"
    pieces: list[dict[str, Any]] = [
        _BASE | {"choices": [{"index": 0, "delta": {"content": 'say "[]"'}, "finish_reason": None}], "usage": None},
        _BASE | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
    ]
    usage = _BASE | {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}
    events = [f"data: {json.dumps(p)}{end}".encode() for p in pieces]
    done = f"data: [DONE]{end}".encode()
    full = b"".join(events) + f"data: {json.dumps(usage)}{end}".encode() + done
    return full, b"".join(events) + done


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_the_usage_chunk_is_taken_out_however_the_stream_is_cut(size: int, crlf: bool) -> None:
    """Fed in pieces of any size, the filter passes every byte but the usage chunk's, in order."""
    full, expected = _stream(crlf=crlf)
    hidden = UsageChunkFilter()
    out = b"".join(hidden.feed(full[i : i + size]) for i in range(0, len(full), size)) + hidden.close()
    assert out == expected


def test_whole_events_without_an_empty_choices_list_go_straight_through() -> None:
    """A chunk of whole events that cannot be the usage chunk is passed on at once, untouched."""
    chunk = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": null}\n\n'
    assert UsageChunkFilter().feed(chunk) == chunk


def test_a_stream_cut_midway_gives_back_what_it_held() -> None:
    """At the end of a cut stream the unfinished last event is passed on as it came."""
    hidden = UsageChunkFilter()
    assert hidden.feed(b'data: {"choices": []') == b""
    assert hidden.close() == b'data: {"choices": []'


def test_usage_is_asked_for_only_when_a_stream_did_not_ask() -> None:
    """include_usage is added to a stream that lacks it (other stream options kept), never to a stream that
    asked or to a JSON request; a malformed stream_options is left for the upstream to judge."""
    params: dict[str, Any] = {"model": "m", "stream": True, "stream_options": {"include_obfuscation": False}}
    asked = ask_for_usage(params)
    assert asked is not None
    assert json.loads(asked)["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert json.loads(ask_for_usage({"stream": True}) or b"")["stream_options"] == {"include_usage": True}
    assert ask_for_usage({"stream": True, "stream_options": {"include_usage": True}}) is None
    assert ask_for_usage({"stream": False}) is None
    assert ask_for_usage({"stream": True, "stream_options": "yes"}) is None
