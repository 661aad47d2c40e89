"""Stream assemblers: a full Anthropic or OpenAI stream rebuilds the non-streaming JSON message and usage."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sluicegate._models import Result, Usage
from sluicegate.providers.anthropic import AnthropicAssembler
from sluicegate.providers.base import StreamFailed
from sluicegate.providers.openai import OpenAIAssembler, usage_from_openai
from sluicegate.sse import ServerSentEvent, SSEDecoder

# ---------------------------------------------------------------------------------------------------- Anthropic

ANTHROPIC_USAGE = {
    "input_tokens": 406,
    "cache_creation_input_tokens": 100,
    "cache_read_input_tokens": 2000,
    "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 50,
    "service_tier": "standard",
}
ANTHROPIC_MESSAGE = {
    "model": "claude-haiku-4-5-20251001",
    "id": "msg_013nnniYDrJDocdy5nrMU7cH",
    "type": "message",
    "role": "assistant",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig_abc"},
        {"type": "text", "text": "[1a2b3c4d] Let me check Grüße."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "units": "c"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": ANTHROPIC_USAGE,
}
TEXT_DELTAS = ["[1a2b3c4d] ", "Let me", " check", " Grüße."]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def anthropic_stream(*, final: bool = True, legacy_delta_usage: bool = False) -> bytes:
    """The event sequence the API streams for ANTHROPIC_MESSAGE."""
    start = copy.deepcopy(ANTHROPIC_MESSAGE)
    start.update(content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = dict(ANTHROPIC_USAGE, output_tokens=1)
    parts = [_sse("message_start", {"type": "message_start", "message": start})]

    def block(index: int, first: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        parts.append(
            _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": first})
        )
        if index == 0:
            parts.append(_sse("ping", {"type": "ping"}))
        for delta in deltas:
            parts.append(_sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        parts.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))

    block(
        0,
        {"type": "thinking", "thinking": "", "signature": ""},
        [
            {"type": "thinking_delta", "thinking": "The user "},
            {"type": "thinking_delta", "thinking": "wants weather."},
            {"type": "signature_delta", "signature": "sig_abc"},
        ],
    )
    block(1, {"type": "text", "text": ""}, [{"type": "text_delta", "text": t} for t in TEXT_DELTAS])
    block(
        2,
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
        [
            {"type": "input_json_delta", "partial_json": ""},
            {"type": "input_json_delta", "partial_json": '{"city": "Par'},
            {"type": "input_json_delta", "partial_json": 'is", "units'},
            {"type": "input_json_delta", "partial_json": '": "c"}'},
        ],
    )
    usage: dict[str, Any] = (
        {"output_tokens": 50}
        if legacy_delta_usage
        else {
            "input_tokens": 406,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 2000,
            "output_tokens": 50,
        }
    )
    parts.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 20},
            },
        )
    )
    parts.append(
        _sse(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": usage},
        )
    )
    if final:
        parts.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(parts)


def _events(stream: bytes, chunk: int = 13) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for i in range(0, len(stream), chunk):
        events.extend(decoder.feed(stream[i : i + chunk]))
    return events + decoder.close()


def _feed_all(assembler: AnthropicAssembler | OpenAIAssembler, events: list[ServerSentEvent]) -> list[str]:
    texts = []
    for event in events:
        text = assembler.feed(event)
        if text is not None:
            texts.append(text)
    return texts


@pytest.mark.parametrize("legacy_delta_usage", [False, True])
def test_anthropic_stream_rebuilds_the_json_message(legacy_delta_usage: bool) -> None:
    """A full stream (thinking, text, tool_use) assembles into exactly the non-streaming Message and Usage."""
    assembler = AnthropicAssembler()
    texts = _feed_all(assembler, _events(anthropic_stream(legacy_delta_usage=legacy_delta_usage)))
    assert assembler.complete
    assert assembler.message() == ANTHROPIC_MESSAGE
    assert assembler.usage() == Usage(
        input_tokens=406, output_tokens=50, cache_creation_input_tokens=100, cache_read_input_tokens=2000
    )
    assert texts == TEXT_DELTAS


def test_anthropic_text_deltas_in_order_and_result_text() -> None:
    """Only text deltas are returned, in order; their join is the Result text."""
    assembler = AnthropicAssembler()
    texts = _feed_all(assembler, _events(anthropic_stream(), chunk=1))
    assert "".join(texts) == "[1a2b3c4d] Let me check Grüße."
    assert Result(0, "a", message=assembler.message()).text == "".join(texts)


def test_anthropic_empty_tool_input() -> None:
    """A tool_use block whose only partial_json is empty gets input {}."""
    assembler = AnthropicAssembler()
    events = [
        ServerSentEvent("message_start", json.dumps({"type": "message_start", "message": {"id": "m", "usage": {}}})),
        ServerSentEvent(
            "content_block_start",
            json.dumps({"index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}}}),
        ),
        ServerSentEvent(
            "content_block_delta", json.dumps({"index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}})
        ),
        ServerSentEvent("content_block_stop", json.dumps({"index": 0})),
        ServerSentEvent("message_stop", "{}"),
    ]
    _feed_all(assembler, events)
    assert assembler.message()["content"] == [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]


def test_anthropic_null_usage_fields_do_not_overwrite() -> None:
    """message_delta usage fields that are null keep the message_start values, as the SDK accumulator does."""
    assembler = AnthropicAssembler()
    start = {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 9, "output_tokens": 1}}}
    delta = {"type": "message_delta", "delta": {}, "usage": {"input_tokens": None, "output_tokens": 4}}
    _feed_all(
        assembler,
        [ServerSentEvent("message_start", json.dumps(start)), ServerSentEvent("message_delta", json.dumps(delta))],
    )
    assert assembler.usage() == Usage(input_tokens=9, output_tokens=4)


def test_anthropic_stream_keeps_the_1h_cache_write_split() -> None:
    """The TTL split of message_start survives a message_delta that repeats only the write total."""
    assembler = AnthropicAssembler()
    split = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 6000}
    usage = {"input_tokens": 9, "cache_creation_input_tokens": 6000, "cache_creation": split, "output_tokens": 1}
    start = {"type": "message_start", "message": {"id": "m", "usage": usage}}
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"input_tokens": 9, "cache_creation_input_tokens": 6000, "output_tokens": 30},
    }
    _feed_all(
        assembler,
        [ServerSentEvent("message_start", json.dumps(start)), ServerSentEvent("message_delta", json.dumps(delta))],
    )
    assert assembler.usage() == Usage(
        input_tokens=9, output_tokens=30, cache_creation_input_tokens=6000, cache_creation_1h_input_tokens=6000
    )


@pytest.mark.parametrize("first", [True, False])
def test_anthropic_error_event_raises_stream_failed(first: bool) -> None:
    """An `error` event, first or mid-stream, raises StreamFailed with the API's type and message."""
    error = {
        "type": "error",
        "error": {"details": None, "type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_1",
    }
    events = [] if first else _events(anthropic_stream())[:5]
    events.append(ServerSentEvent("error", json.dumps(error)))
    assembler = AnthropicAssembler()
    with pytest.raises(StreamFailed) as info:
        _feed_all(assembler, events)
    assert (info.value.detail.error_type, info.value.detail.message, str(info.value)) == (
        "overloaded_error",
        "Overloaded",
        "Overloaded",
    )
    assert not assembler.complete


def test_anthropic_stream_without_message_stop_is_incomplete() -> None:
    """A stream cut before message_stop is not complete (the engine treats it as truncated)."""
    assembler = AnthropicAssembler()
    _feed_all(assembler, _events(anthropic_stream(final=False)))
    assert not assembler.complete


@pytest.mark.parametrize(
    "event",
    [
        ServerSentEvent("ping", '{"type": "ping"}'),
        ServerSentEvent("ping", ""),
        ServerSentEvent("message", "not json"),
        ServerSentEvent("some_future_event", '{"type": "some_future_event"}'),
    ],
)
def test_anthropic_ignores_ping_and_unknown_events(event: ServerSentEvent) -> None:
    """ping and unknown event names are dropped silently, as the SDK drops them, even without JSON data."""
    assembler = AnthropicAssembler()
    events = _events(anthropic_stream())
    assert _feed_all(assembler, [*events[:4], event, *events[4:]]) == TEXT_DELTAS
    assert assembler.message() == ANTHROPIC_MESSAGE


# ------------------------------------------------------------------------------------------------------ OpenAI

OPENAI_USAGE = {
    "prompt_tokens": 1400,
    "completion_tokens": 37,
    "total_tokens": 1437,
    "prompt_tokens_details": {"cached_tokens": 1024},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
OPENAI_BASE = {
    "id": "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL",
    "created": 1727346168,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_5050236cbd",
}
OPENAI_TEXTS = ["[1a2b3c4d] ", "Hello", " there", "!"]


def openai_stream(*, done: bool = True, tool: bool = False) -> bytes:
    """A Chat Completions stream with include_usage: role chunk, deltas, finish chunk, usage chunk, [DONE]."""

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {**OPENAI_BASE, "object": "chat.completion.chunk", "choices": choices, **extra}
        return f"data: {json.dumps(body)}\n\n".encode()

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    parts = [chunk(choice({"role": "assistant", "content": "", "refusal": None}))]
    if tool:
        parts.append(
            chunk(
                choice(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            }
                        ]
                    }
                )
            )
        )
        for piece in ['{"city"', ': "Paris"}']:
            parts.append(chunk(choice({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})))
        parts.append(
            chunk(
                choice(
                    {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "call_2",
                                "type": "function",
                                "function": {"name": "now", "arguments": "{}"},
                            }
                        ]
                    }
                )
            )
        )
        parts.append(chunk(choice({}, "tool_calls")))
    else:
        parts.extend(chunk(choice({"content": text})) for text in OPENAI_TEXTS)
        parts.append(chunk(choice({}, "stop")))
    parts.append(chunk([], usage=OPENAI_USAGE))
    if done:
        parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def test_openai_stream_rebuilds_the_json_message() -> None:
    """A full stream gives the non-streaming chat.completion's id, model, text, finish reason and usage."""
    json_shape = {
        **OPENAI_BASE,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "[1a2b3c4d] Hello there!"},
                "finish_reason": "stop",
            }
        ],
        "usage": OPENAI_USAGE,
    }
    assembler = OpenAIAssembler()
    texts = _feed_all(assembler, _events(openai_stream(), chunk=7))
    assert assembler.complete
    assert texts == OPENAI_TEXTS
    assert assembler.message() == json_shape
    assert (
        assembler.usage()
        == usage_from_openai(OPENAI_USAGE)
        == Usage(input_tokens=376, output_tokens=37, cache_read_input_tokens=1024)
    )
    assert Result(0, "a", message=assembler.message()).text == "[1a2b3c4d] Hello there!"


def test_openai_tool_calls_assembled() -> None:
    """Streamed tool-call fragments assemble into the JSON shape's tool_calls, content null."""
    assembler = OpenAIAssembler()
    assert _feed_all(assembler, _events(openai_stream(tool=True))) == []
    message = assembler.message()["choices"][0]
    assert message == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
            ],
        },
        "finish_reason": "tool_calls",
    }


def test_openai_stream_without_done_is_incomplete() -> None:
    """A stream that ends before data: [DONE] is not complete."""
    assembler = OpenAIAssembler()
    _feed_all(assembler, _events(openai_stream(done=False)))
    assert not assembler.complete
    assert assembler.usage() == usage_from_openai(OPENAI_USAGE)


def test_openai_error_chunk_raises_stream_failed() -> None:
    """A chunk with an `error` object raises StreamFailed with its type and message."""
    assembler = OpenAIAssembler()
    error = {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}
    events = [*_events(openai_stream())[:2], ServerSentEvent("message", json.dumps(error))]
    with pytest.raises(StreamFailed) as info:
        _feed_all(assembler, events)
    assert (info.value.detail.error_type, info.value.detail.message) == ("server_error", "The server had an error")


def test_openai_other_choices_are_ignored() -> None:
    """With n > 1 only choice 0 is assembled (the engine sends one choice)."""
    assembler = OpenAIAssembler()
    body = {
        **OPENAI_BASE,
        "choices": [{"index": 1, "delta": {"content": "other"}}, {"index": 0, "delta": {"content": "mine"}}],
    }
    assert assembler.feed(ServerSentEvent("message", json.dumps(body))) == "mine"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (None, Usage()),
        ({}, Usage()),
        ({"prompt_tokens": 14, "completion_tokens": 37, "total_tokens": 51}, Usage(input_tokens=14, output_tokens=37)),
        (
            {"prompt_tokens": 2048, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 1152}},
            Usage(input_tokens=896, output_tokens=1, cache_read_input_tokens=1152),
        ),
        (
            {"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": None},
            Usage(input_tokens=5, output_tokens=1),
        ),
    ],
)
def test_usage_from_openai(usage: dict[str, Any] | None, expected: Usage) -> None:
    """OpenAI usage maps onto Anthropic fields: cached prompt tokens become cache reads, not input."""
    assert usage_from_openai(usage) == expected


@pytest.mark.parametrize(
    "event",
    [
        ServerSentEvent("content_block_delta", "{not json"),
        ServerSentEvent("content_block_delta", '{"index": 7, "delta": {"type": "text_delta", "text": "x"}}'),
        ServerSentEvent("content_block_delta", '["a", "list"]'),
        ServerSentEvent("message_delta", '{"delta": "a string", "usage": 3}'),
        ServerSentEvent("content_block_stop", '{"index": "zero"}'),
    ],
)
def test_anthropic_malformed_event_is_a_value_error(event: ServerSentEvent) -> None:
    """A known event with unreadable JSON or the wrong shape raises ValueError (the engine's 'truncated')."""
    assembler = AnthropicAssembler()
    _feed_all(assembler, _events(anthropic_stream())[:3])
    with pytest.raises(ValueError, match=r"malformed|Expecting|invalid literal"):
        assembler.feed(event)


@pytest.mark.parametrize("data", ["{not json", '["a", "list"]', '{"choices": [{"delta": "text"}]}', '"str"'])
def test_openai_malformed_chunk_is_a_value_error(data: str) -> None:
    """A chunk with unreadable JSON or the wrong shape raises ValueError (the engine's 'truncated')."""
    with pytest.raises(ValueError, match=r"malformed|Expecting|invalid literal"):
        OpenAIAssembler().feed(ServerSentEvent("message", data))
