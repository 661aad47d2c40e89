"""The OpenAI surface refuses what Chat Completions refuses: unknown fields, max tokens over the model's limit, a
temperature out of range and a prompt over the context window, each a 400 the SDK raises as BadRequestError, and
the engine ends that one item at once with the API's message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

import sluicegate
from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.openai_validation import context_window, max_output_tokens

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

MSG: Any = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("model", "extra_body", "message", "param", "code"),
    [
        ("gpt-4o-mini", {"frobnicate": 1}, "Unrecognized request argument supplied: frobnicate", None, None),
        (
            "gpt-4o",
            {"max_completion_tokens": 20_000},
            "max_completion_tokens is too large: 20000. This model supports at most 16384 completion tokens",
            "max_completion_tokens",
            "invalid_value",
        ),
        ("gpt-5", {"max_tokens": 10**30}, "max_tokens is too large", "max_tokens", "invalid_value"),
        (
            "gpt-4o-mini",
            {"temperature": 2.5},
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
            "temperature",
            "decimal_above_max_value",
        ),
        ("gpt-4o-mini", {"temperature": -1}, "decimal below minimum value", "temperature", "decimal_below_min_value"),
    ],
)
async def test_out_of_range_values_are_refused(
    emulator: Callable[..., RunningEmulator],
    model: str,
    extra_body: dict[str, Any],
    message: str,
    param: str | None,
    code: str | None,
) -> None:
    """Each value the API refuses gets a 400 invalid_request_error with its message, param and code."""
    emu = emulator()
    async with openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model=model, messages=MSG, extra_body=extra_body)
    error = caught.value
    assert error.status_code == 400
    assert message in error.message
    assert (error.type, error.param, error.code) == ("invalid_request_error", param, code)
    assert emu.stats()["output_tokens"] == 0


async def test_an_oversize_prompt_is_refused(emulator: Callable[..., RunningEmulator]) -> None:
    """A prompt over gpt-4o's 128,000-token window: 400 context_length_exceeded naming both counts."""
    emu = emulator()
    huge = [{"role": "user", "content": "word " * 140_000}]
    async with openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=huge)  # type: ignore[arg-type]
    assert "This model's maximum context length is 128000 tokens" in caught.value.message
    assert (caught.value.param, caught.value.code) == ("messages", "context_length_exceeded")


async def test_the_limits_that_pass_are_answered(emulator: Callable[..., RunningEmulator]) -> None:
    """At the model's exact limit, and for a model the table does not name, the request is answered."""
    emu = emulator()
    async with openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="test", max_retries=0) as client:
        at_limit = await client.chat.completions.create(model="gpt-4o", messages=MSG, max_completion_tokens=16_384)
        other = await client.chat.completions.create(model="my-local-model", messages=MSG, temperature=2)
    assert at_limit.choices[0].message.content
    assert other.choices[0].message.content
    assert (max_output_tokens("gpt-4o-mini"), context_window("gpt-4.1-mini")) == (16_384, 1_047_576)


async def test_the_engine_ends_a_refused_item_at_once_and_goes_on(emulator: Callable[..., RunningEmulator]) -> None:
    """Through the engine: the refused item fails after one attempt with the API's message; the others succeed."""
    emu = emulator(minute=3.0, first_token_latency=0.01)
    requests = [
        {"custom_id": "ok", "model": "gpt-4o-mini", "max_completion_tokens": 16, "messages": MSG},
        {"custom_id": "too-many", "model": "gpt-4o", "max_completion_tokens": 20_000, "messages": MSG},
        {"custom_id": "extra", "model": "gpt-4o-mini", "max_completion_tokens": 16, "messages": MSG, "frob": 1},
    ]
    async with sluicegate.Engine(provider="openai", api_key="test", base_url=emu.openai_base_url) as engine:
        results = {r.custom_id: r for r in await engine.map(requests)}
    assert results["ok"].error is None
    for custom_id, text in (("too-many", "max_completion_tokens is too large"), ("extra", "Unrecognized request")):
        error = results[custom_id].error
        assert error is not None
        assert (error.kind, error.status, results[custom_id].attempts) == ("invalid_request", 400, 1)
        assert text in error.message
