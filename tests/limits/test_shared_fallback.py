"""The shared limiter's explicit local fallback (1/N of the limits while Redis is gone) and its refusal of
requests larger than a bucket, against a real redis-server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import anyio
import pytest

from local_servers import free_port, start_redis
from sluicegate import SharedLimitsUnavailableError as Unavailable
from sluicegate._exceptions import InputError
from sluicegate._models import BucketView, RateLimitSnapshot, Usage
from sluicegate.limits._fallback import scaled
from sluicegate.limits.limiter import Limits
from sluicegate.limits.shared import SharedLimiter

pytestmark = pytest.mark.anyio

LIMITS = Limits(requests_per_minute=60_000, input_tokens_per_minute=600_000)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.kill()
    server.wait(10)


async def test_redis_stopped_mid_run_falls_back_to_a_share_of_the_limits_and_back() -> None:
    """Two processes in the pool, Redis killed: each admits locally on half the limits; Redis back: shared again."""
    port = free_port()
    servers = [start_redis(port)]
    url = f"redis://127.0.0.1:{port}/0"
    a = SharedLimiter(url, name="fb", limits=LIMITS, fallback=True)
    b = SharedLimiter(url, name="fb", limits=LIMITS, fallback=True)
    try:
        async with a, b:
            a.saw_response()
            with anyio.fail_after(5):
                while a.statistics().requests_per_minute is None or a._pool.live < 2:  # noqa: ASYNC110 (heartbeat)
                    await anyio.sleep(0.05)
            (await a.acquire(10, 10)).settle(Usage(input_tokens=10, output_tokens=10))
            _stop(servers[0])
            with anyio.fail_after(5):
                permit = await a.acquire(10, 10)  # admitted without Redis, by the local fallback
            permit.settle(Usage(input_tokens=10, output_tokens=10))
            assert a.local_fallback
            stats = a.statistics()
            assert stats.requests_per_minute == pytest.approx(30_000)  # 1/N of the pool's limits, N = 2
            assert stats.input_tokens_per_minute == pytest.approx(300_000)
            servers.append(start_redis(port))
            with anyio.fail_after(10):
                while a.local_fallback:  # noqa: ASYNC110 (the heartbeat reconnects in real time)
                    await anyio.sleep(0.05)
                permit = await a.acquire(10, 10)
            permit.settle(Usage(input_tokens=10, output_tokens=10))
            assert a.statistics().binding != "shared_limits_lost"
    finally:
        for server in servers:
            _stop(server)


async def test_a_given_divisor_starts_locally_when_redis_is_down_at_start() -> None:
    """--shared-limits-fallback 4 and no Redis: the run starts on a quarter of the given limits."""
    limiter = SharedLimiter(f"redis://127.0.0.1:{free_port()}/0", name="x", limits=LIMITS, fallback=4)
    async with limiter:
        assert limiter.local_fallback
        limiter.saw_response()
        with anyio.fail_after(5):
            (await limiter.acquire(1, 1)).settle(Usage(input_tokens=1, output_tokens=1))
        assert limiter.statistics().requests_per_minute == pytest.approx(15_000)


async def test_the_fallback_without_a_divisor_is_still_an_error_at_start() -> None:
    """No Redis at start and no divisor: the number of processes is unknown, so the error asks for it."""
    limiter = SharedLimiter(f"redis://127.0.0.1:{free_port()}/0", name="x", limits=LIMITS, fallback=True)
    with pytest.raises(Unavailable, match="--shared-limits-fallback N"):
        await limiter.open()


def test_a_divisor_below_one_is_refused() -> None:
    """A divisor of 0 is a configuration error, not a division by zero later."""
    with pytest.raises(Exception, match="at least 1"):
        SharedLimiter("redis://127.0.0.1:1/0", name="x", fallback=0)


def test_headers_are_scaled_to_one_share_of_the_key() -> None:
    """limit and remaining are divided by N; the reset time (so the learnt window) is unchanged."""
    view = BucketView(limit=1000, remaining=500, reset_in=30.0, remaining_error=1.0)
    snapshot = scaled(RateLimitSnapshot(requests=view, tokens=None), 4)
    assert snapshot.requests == BucketView(limit=250, remaining=125, reset_in=30.0)
    assert snapshot.tokens is None


async def test_a_request_larger_than_a_bucket_is_refused_at_once(pool: Callable[..., SharedLimiter]) -> None:
    """Input above the input limit, or (reserved accounting) max_tokens above the output limit: InputError
    naming the field, before anything is reserved."""
    limits = Limits(input_tokens_per_minute=1_000, output_tokens_per_minute=500)
    async with pool(limits=limits) as limiter:
        with pytest.raises(InputError, match="1,001 input tokens") as info:
            await limiter.acquire(1_001, 10)
        assert info.value.field == "messages"
        with pytest.raises(InputError, match="output tokens") as info:
            await limiter.acquire(10, 501)
        assert info.value.field == "max_tokens"
        assert limiter.statistics().in_flight == 0


async def test_produced_output_is_not_refused_and_learnt_limits_count(pool: Callable[..., SharedLimiter]) -> None:
    """Where output counts as produced a large max_tokens passes; a limit learnt from headers refuses too."""
    async with pool(output_accounting="produced", limits=Limits(output_tokens_per_minute=60_000)) as limiter:
        limiter.saw_response()
        with anyio.fail_after(5):
            permit = await limiter.acquire(10, 100_000)
        assert permit.output_tokens == 15_000  # a quarter of the window's limit, as the in-process limiter holds
        permit.settle(Usage(input_tokens=10, output_tokens=10))
        limiter.observe(RateLimitSnapshot(input_tokens=BucketView(limit=2_000, remaining=2_000, reset_in=0.0)))
        with pytest.raises(InputError, match="2,000 input tokens"):
            await limiter.acquire(2_001, 1)
