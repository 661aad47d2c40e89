"""1-hour cache writes end to end: the Engine against the emulator reports the TTL split and prices it."""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from typing import Any

import anyio
import pytest

import sluicegate
from sluicegate import Engine
from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.prompt import prompt_blocks

pytestmark = pytest.mark.e2e

MODEL = "claude-haiku-4-5"  # $1 in, $5 out, 5m writes $1.25, 1h writes $2 per million; caches from 4096 tokens
SYSTEM = "lorem " * 4000  # about 6000 tokens: above the minimum on its own


def _params(*, five_minute_tail: bool) -> dict[str, Any]:
    question: dict[str, Any] = {"type": "text", "text": "ipsum " * 1500}
    if five_minute_tail:  # a second breakpoint after the 1h one: the tokens between them are a 5m write
        question["cache_control"] = {"type": "ephemeral", "ttl": "5m"}
    return {
        "model": MODEL,
        "max_tokens": 40,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [{"role": "user", "content": [question, {"type": "text", "text": "Summarise."}]}],
    }


def _create(emu: RunningEmulator, params: dict[str, Any], stream: bool) -> sluicegate.Result:
    async def main() -> sluicegate.Result:
        async with Engine(api_key="sk-emulated", base_url=emu.base_url, stream=stream) as engine:
            with anyio.fail_after(30):
                return await engine.create(**params)

    return anyio.run(main)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("five_minute_tail", [False, True], ids=["1h-only", "1h-then-5m"])
def test_one_hour_writes_are_split_out_and_priced_at_the_1h_rate(
    emulator: Callable[..., RunningEmulator], stream: bool, five_minute_tail: bool
) -> None:
    """A ttl=1h breakpoint's write comes back as the 1h part of the usage and costs $2/MTok, not $1.25."""
    emu = emulator(seed=1)
    params = _params(five_minute_tail=five_minute_tail)
    cumulative = list(accumulate(b.tokens for b in prompt_blocks(params)))
    one_hour = cumulative[0]  # everything up to and including the system block
    five_minute = cumulative[1] - cumulative[0] if five_minute_tail else 0

    result = _create(emu, params, stream)

    usage = result.usage
    assert result.ok, result.error
    assert usage.cache_creation_1h_input_tokens == one_hour
    assert usage.cache_creation_5m_input_tokens == five_minute
    assert usage.cache_creation_input_tokens == one_hour + five_minute
    assert usage.cache_read_input_tokens == 0
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    expected = (usage.input_tokens * 1.0 + usage.output_tokens * 5.0 + five_minute * 1.25 + one_hour * 2.0) / 1e6
    assert result.cost == pytest.approx(expected, rel=1e-12)
    # Priced at the 5m rate it would be $0.75/MTok cheaper on the 1h part: the difference is really there.
    all_5m = (usage.input_tokens * 1.0 + usage.output_tokens * 5.0 + (five_minute + one_hour) * 1.25) / 1e6
    assert result.cost is not None
    assert result.cost - all_5m == pytest.approx(one_hour * 0.75 / 1e6, rel=1e-9)
