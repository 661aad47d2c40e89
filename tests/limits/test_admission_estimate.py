"""A request that waited while the input estimator calibrated is charged the calibrated estimate, per limiter kind."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest
import redis.asyncio as aioredis

from sluicegate import BucketView, RateLimitSnapshot, Usage
from sluicegate.limits import _redis_lua as lua
from sluicegate.limits.limiter import Limiter, Limits
from sluicegate.limits.protocol import AdmissionPermit
from sluicegate.limits.shared import SharedLimiter
from sluicegate.testing import FakeClock
from sluicegate.tokens import InputEstimator

RAW = 1_000  # the heuristic's count of each prompt
COUNTED = 800  # what the server counts: the heuristic overcounts by a quarter


def _estimator() -> tuple[InputEstimator, Callable[[], int]]:
    estimator = InputEstimator()
    return estimator, functools.partial(estimator.calibrated, RAW)


def test_calibration_while_queued_is_charged_at_admission_in_process() -> None:
    """Two requests queue behind the probe at 1,100 (uncalibrated); the probe's count calibrates the estimator
    before its headers open the limiter, so both (the head and the follower it admits) are charged 880."""
    clock = FakeClock()
    permits: list[AdmissionPermit] = []

    async def main() -> None:
        estimator, estimate = _estimator()
        limiter = Limiter(Limits(input_tokens_per_minute=600_000), clock=clock)
        probe = await limiter.acquire(estimate(), 10)
        assert probe.input_tokens == 1_100

        async def queued() -> None:
            permits.append(await limiter.acquire(estimate(), 10, estimate=estimate))

        async with anyio.create_task_group() as tg:
            tg.start_soon(queued)
            tg.start_soon(queued)
            await anyio.lowlevel.checkpoint()
            await anyio.wait_all_tasks_blocked()
            estimator.observe(RAW, COUNTED)  # the probe's message_start
            view = BucketView(limit=600_000, remaining=500_000, reset_in=10.0, remaining_error=0.0)
            limiter.observe(RateLimitSnapshot(input_tokens=view), since=probe.admitted_at)
            gate = limiter._gates["input_tokens"]
            before = gate.consumed
        assert [p.input_tokens for p in permits] == [880, 880]
        assert gate.consumed - before == 2 * 880  # what the mirror was charged for them
        probe.settle(Usage(input_tokens=COUNTED, output_tokens=5))
        for permit in permits:
            permit.settle(Usage(input_tokens=COUNTED, output_tokens=5))

    clock.run(main)


def test_an_estimate_is_not_asked_again_once_admitted() -> None:
    """Admitted at once (nobody queued, capacity there): the charge is the estimate at the call, and a later
    calibration leaves the permit alone (the settle corrects it against the real count)."""
    clock = FakeClock()

    async def main() -> None:
        estimator, estimate = _estimator()
        limiter = Limiter(Limits(input_tokens_per_minute=600_000), clock=clock)
        limiter.saw_response()
        permit = await limiter.acquire(estimate(), 10, estimate=estimate)
        estimator.observe(RAW, COUNTED)
        assert permit.input_tokens == 1_100
        permit.settle(Usage(input_tokens=COUNTED, output_tokens=5))

    clock.run(main)


@pytest.mark.anyio
async def test_calibration_while_queued_is_charged_at_admission_shared(redis_url: str) -> None:
    """The Redis pool: a request queued behind the probe reserves the calibrated 880 when it reaches the head,
    not the 1,100 estimated when it queued (the pool's own count of input tokens taken says so)."""
    name = uuid.uuid4().hex
    estimator, estimate = _estimator()
    client = aioredis.Redis.from_url(redis_url)
    state = lua.pool_keys(f"sluicegate:{{{name}}}")[0]
    try:
        async with SharedLimiter(redis_url, name=name, limits=Limits(input_tokens_per_minute=600_000)) as limiter:
            probe = await limiter.acquire(estimate(), 10)
            assert float(await client.hget(state, "use:i") or 0) == 1_100
            permits: list[AdmissionPermit] = []

            async def queued() -> None:
                permits.append(await limiter.acquire(estimate(), 10, estimate=estimate))

            async with anyio.create_task_group() as tg:
                tg.start_soon(queued)
                with anyio.fail_after(5):
                    while limiter.statistics().waiting == 0:  # the queue has no event to wait on
                        await anyio.lowlevel.checkpoint()
                estimator.observe(RAW, COUNTED)  # the probe's message_start
                limiter.saw_response()
            assert [p.input_tokens for p in permits] == [880]
            assert float(await client.hget(state, "use:i") or 0) == 1_100 + 880
            probe.settle(Usage(input_tokens=COUNTED, output_tokens=5))
            permits[0].settle(Usage(input_tokens=COUNTED, output_tokens=5))
    finally:
        await client.aclose()
