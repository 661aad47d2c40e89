"""Pure OpenAI wire builders: duration-format resets, usage, chunks and error bodies."""

from __future__ import annotations

import random

import pytest

from sluicegate.emulator.openai_format import chunk, completion_id, error_body, format_duration, sse_data, usage_body


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.02, "20ms"),
        (0.0004, "1ms"),
        (0.9991, "1000ms"),
        (1.0, "1s"),
        (1.2, "2s"),
        (360.0, "6m0s"),
        (61.0, "1m1s"),
        (3725.0, "1h2m5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Resets use OpenAI's duration strings: ms below a second, whole seconds (rounded up) above."""
    assert format_duration(seconds) == text


def test_usage_and_ids() -> None:
    """Usage totals add up, details are present, ids have the chatcmpl- shape."""
    usage = usage_body(14, 37, cached_tokens=3)
    assert usage["total_tokens"] == 51
    assert usage["prompt_tokens_details"]["cached_tokens"] == 3
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    cid = completion_id(random.Random(1))
    assert cid.startswith("chatcmpl-")
    assert len(cid) == len("chatcmpl-ABfvaueLEMLNYbT8YzpJxsmiQ6HSY")


def test_chunk_usage_field_and_sse_framing() -> None:
    """With include_usage every chunk has a usage key; framing is data-only with a blank line."""
    c = chunk(id="i", created=1, model="m", fingerprint="fp", choices=[], include_usage=True)
    assert c["usage"] is None
    assert "usage" not in chunk(id="i", created=1, model="m", fingerprint="fp", choices=[])
    assert sse_data("[DONE]") == b"data: [DONE]\n\n"
    assert sse_data({"a": 1}) == b'data: {"a":1}\n\n'


def test_error_body_shape() -> None:
    """Every OpenAI error has message, type, param and code."""
    assert error_body("m", "tokens", "rate_limit_exceeded") == {
        "error": {"message": "m", "type": "tokens", "param": None, "code": "rate_limit_exceeded"}
    }
