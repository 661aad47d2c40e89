"""The emulator refuses what the real API refuses: max_tokens over the model's limit, unknown top-level fields,
a temperature out of range and a prompt over the context window, each a 400 the SDK raises as BadRequestError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from sluicegate.emulator import RunningEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

MSG: Any = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("extra_body", "expected"),
    [
        ({"max_tokens": 10**30}, "max_tokens: "),
        ({"max_tokens": 64_001}, "64000, which is the maximum allowed number of output tokens"),
        ({"frobnicate": 1}, "frobnicate: Extra inputs are not permitted"),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
    ],
)
async def test_out_of_range_values_are_refused(
    emulator: Callable[..., RunningEmulator], extra_body: dict[str, Any], expected: str
) -> None:
    """Each value the API documents as invalid gets a 400 invalid_request_error naming the field."""
    # Sent as extra_body: the SDK's own checks (a long-request guard on max_tokens) would stop some before the wire.
    emu = emulator()
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=10,
                messages=MSG,
                extra_body=extra_body,  # type: ignore[arg-type]
            )
    assert caught.value.status_code == 400
    assert expected in str(caught.value)


async def test_an_oversize_prompt_is_refused(emulator: Callable[..., RunningEmulator]) -> None:
    """A prompt over the 200,000-token context window: 400 'prompt is too long', nothing generated."""
    emu = emulator()
    huge = [{"role": "user", "content": "word " * 400_000}]
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=huge)  # type: ignore[arg-type]
    assert "prompt is too long" in str(caught.value)
    assert emu.stats()["output_tokens"] == 0
