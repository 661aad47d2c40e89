"""The SDK drop-in path (beside the engine's overload tests, sharing their mock API) under an all-529 window."""

from __future__ import annotations

import asyncio

import anthropic
import anyio
import httpx2
from mock_anthropic import MockAPI, error

from sluicegate.integrations import LimitedTransport
from sluicegate.testing import FakeClock


def _gather_through(window: tuple[float, float], n: int) -> tuple[int, list[float], FakeClock]:
    """`n` prompts gathered at once through the drop-in over a mock API (600 RPM, 1 s answers) that answers 529 to
    everything in `window`: how many came back right, when the requests in the window arrived, the clock."""
    during: list[float] = []

    def overloaded(_: int, body: dict[str, object]) -> httpx2.Response | None:
        if window[0] <= anyio.current_time() < window[1]:
            during.append(anyio.current_time())
            return error(529, "overloaded_error", "Overloaded")
        return None

    clock = FakeClock()
    api = MockAPI(rpm=600, latency=1.0, script=overloaded)
    transport = LimitedTransport(transport=api.transport(), clock=clock, seed=1)

    async def main() -> int:
        client = anthropic.AsyncAnthropic(
            api_key="k", base_url="http://api.test", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
        )

        async def one(i: int) -> int:
            message = await client.messages.create(
                model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": f"prompt {i}"}]
            )
            return int(message.content[0].text == f"echo: prompt {i}")  # type: ignore[union-attr]

        async with client:
            return sum(await asyncio.gather(*(one(i) for i in range(n))))

    return clock.run(main), during, clock


def test_gathered_requests_queued_at_the_limiter_do_not_storm_an_overload() -> None:
    """300 requests gathered at once, a 10 s all-529 window: the server sees a few requests per second during it
    (not every request queued at the limiter), every request is answered, and the run ends soon after."""
    answered, during, clock = _gather_through((5.0, 15.0), 300)
    assert answered == 300
    assert len(during) <= 30
    assert len([t for t in during if t >= 6.0]) <= 9  # a probe at most every 0.5 s after the first second
    assert clock.now() <= 30.0 + 10.0 + 5.0  # 300 at 10/s, the lost window, and at most 5 s more


def test_the_drop_in_is_back_at_full_pace_as_soon_as_the_engine_after_an_all_529_window() -> None:
    """The engine's recovery test through the SDK drop-in: 700 gathered requests at 600 RPM, 1 s answers, all 529s
    in [3, 13): two probes a second during the window once it trips, and the run ends three answers after it
    (the probe's, the ramp's, the last requests')."""
    window = (3.0, 13.0)
    answered, during, clock = _gather_through(window, 700)
    assert answered == 700
    assert len([t for t in during if t >= window[0] + 1.0]) <= 18
    assert clock.now() <= window[1] + 3 * 1.0 + 0.01
