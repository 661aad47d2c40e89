"""Retries that neither stall nor storm, on the fake clock: scattered 529s/500s, an all-529 window, a dead host."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from mock_anthropic import MockAPI, error

import sluicegate
from sluicegate import Engine, RetryPolicy
from sluicegate.testing import FakeClock


def _requests(n: int) -> list[dict[str, Any]]:
    return [
        {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"prompt {i}"}]}
        for i in range(n)
    ]


def _engine(api: MockAPI, clock: FakeClock, **kwargs: Any) -> Engine:
    return Engine(
        api_key="sk-test", base_url="http://api.test", transport=api.transport(), clock=clock, seed=1, **kwargs
    )


def _run(api: MockAPI, clock: FakeClock, n: int, **kwargs: Any) -> list[sluicegate.Result]:
    async def main() -> list[sluicegate.Result]:
        async with _engine(api, clock, **kwargs) as engine:
            return await engine.map(_requests(n))

    return clock.run(main)


def test_scattered_failures_do_not_slow_the_pipeline() -> None:
    """At 600 RPM, 300 requests with every 10th attempt a 529 or a 500 finish no later than a clean run plus the
    rate budget the 500s used (a 529 is not counted, a 500 may have been) and one second."""
    clean_clock, faulty_clock = FakeClock(), FakeClock()
    clean = MockAPI(rpm=600, latency=1.0)
    faulty = MockAPI(
        rpm=600,
        latency=1.0,
        script=lambda n, _: (
            (error(529 if n % 20 else 500, "overloaded_error" if n % 20 else "api_error")) if n % 10 == 0 else None
        ),
    )
    assert all(r.ok for r in _run(clean, clean_clock, 300))
    results = _run(faulty, faulty_clock, 300)
    assert all(r.ok for r in results)
    assert faulty.statuses[529] + faulty.statuses[500] >= 30
    assert faulty_clock.now() <= clean_clock.now() + faulty.statuses[500] / 10.0 + 1.0


def test_an_all_529_window_is_probed_not_stormed_and_the_run_ends_soon_after() -> None:
    """A 10 s all-529 window over the tail of 700 requests at 600 RPM (600 at once, then 10 per second): at most one
    request per 0.5 s (the probes) reaches the server during it once the breaker opens, and the run ends within 5 s
    of the window's end (a probe within half a second, the breaker's ramp, the last answers' latency)."""
    clock = FakeClock()
    window = (3.0, 13.0)
    during: list[float] = []

    def overloaded(n: int, body: dict[str, object]) -> httpx2.Response | None:
        now = anyio.current_time()
        if window[0] <= now < window[1]:
            during.append(now)
            return error(529, "overloaded_error", "Overloaded")
        return None

    api = MockAPI(rpm=600, latency=1.0, script=overloaded)
    results = _run(api, clock, 700)
    assert all(r.ok for r in results)
    # The attempts in flight when it began, then only probes.
    in_the_last_9_s = [t for t in during if t >= window[0] + 1.0]
    assert len(in_the_last_9_s) <= 18
    assert len(during) <= 40
    assert window[1] < clock.now() <= window[1] + 5.0


def test_a_host_that_refuses_every_connection_stops_the_run_with_one_error() -> None:
    """Every connection refused: the run stops after unreachable_after, the first item says why, the rest abort."""
    clock = FakeClock()
    attempts = 0

    def refuse(request: httpx2.Request) -> httpx2.Response:
        nonlocal attempts
        attempts += 1
        raise httpx2.ConnectError("[Errno -2] Name or service not known")

    async def main() -> list[sluicegate.Result]:
        engine = Engine(
            api_key="sk-test", base_url="http://nowhere.invalid", transport=httpx2.MockTransport(refuse), clock=clock
        )
        async with engine:
            results = await engine.map(_requests(20))
            with pytest.raises(sluicegate.UnreachableError, match="Name or service not known"):
                await engine.create(**_requests(1)[0])
            return results

    results = clock.run(main)
    errors = [r.error for r in results if r.error is not None]
    assert sorted(e.kind for e in errors) == ["aborted"] * 19 + ["unreachable"]
    assert all("Name or service not known" in e.message for e in errors)
    assert 10.0 <= clock.now() <= 25.0  # not the whole retry budget of every item
    assert attempts <= 30  # the first few, then the breaker's two probes a second; not 20 items x 10 attempts


def test_breaker_holds_retries_that_would_otherwise_each_run_their_own_timer() -> None:
    """Under a long overload, items do not exhaust their attempts: they wait for the breaker's probes instead."""
    clock = FakeClock()
    api = MockAPI(
        rpm=600,
        latency=0.5,
        script=lambda n, _: error(529, "overloaded_error") if anyio.current_time() < 60.0 else None,
    )
    results = _run(api, clock, 50, retry=RetryPolicy(max_attempts=5))
    assert all(r.ok for r in results)
    assert api.statuses[529] <= 140  # two probes a second for a minute, not 50 items x 5 attempts


def test_after_an_all_529_window_the_run_is_back_at_full_pace_within_two_answers() -> None:
    """700 requests at 600 RPM, 1 s answers, all 529s in [3, 13): the probe goes out at the window's end (probes
    every 0.5 s), its answer a second later opens the ramp at half the target (10 of 2 x 10/s x 1 s), their answers
    a second later close it, and the last 60 requests (the bucket refilled during the window) answer a second
    after that: the run ends three answers after the window, not after a slow start from a few requests."""
    clock = FakeClock()
    window = (3.0, 13.0)

    def overloaded(n: int, body: dict[str, object]) -> httpx2.Response | None:
        if window[0] <= anyio.current_time() < window[1]:
            return error(529, "overloaded_error", "Overloaded")
        return None

    api = MockAPI(rpm=600, latency=1.0, script=overloaded)
    results = _run(api, clock, 700)
    assert all(r.ok for r in results)
    assert clock.now() <= window[1] + 3 * 1.0 + 0.01
