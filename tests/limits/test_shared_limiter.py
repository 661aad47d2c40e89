"""SharedLimiter on a real redis-server: shared learning and pauses, start-up failure, losing Redis mid-run."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import anyio
import pytest
import redis.asyncio as aioredis

from local_servers import free_port, start_redis
from sluicegate import SharedLimitsUnavailableError as Unavailable
from sluicegate._models import BucketView, RateLimitSnapshot, Usage
from sluicegate.limits.limiter import Limits
from sluicegate.limits.shared import SharedLimiter

pytestmark = pytest.mark.anyio


async def test_unreachable_redis_at_start_is_a_clear_error_without_the_password() -> None:
    """A port nobody listens on: SharedLimitsUnavailableError naming the URL, never the password."""
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    limiter = SharedLimiter(url, name="x")
    with pytest.raises(Unavailable, match="cannot reach the shared-limits Redis") as info:
        await limiter.open()
    assert "hunter2" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


async def test_limits_learnt_by_one_process_reach_the_others(pool: Callable[..., SharedLimiter]) -> None:
    """Headers observed by A become B's limits at B's next heartbeat."""
    async with pool() as a, pool() as b:
        await _learn(a, b)


async def _learn(a: SharedLimiter, b: SharedLimiter) -> None:
    snapshot = RateLimitSnapshot(
        requests=BucketView(limit=50, remaining=49, reset_in=1.0),
        output_tokens=BucketView(limit=8_000, remaining=8_000, reset_in=0.0),
    )
    a.observe(snapshot)
    with anyio.fail_after(5):
        while b.statistics().requests_per_minute is None:  # noqa: ASYNC110 (B's heartbeat runs on real time)
            await anyio.sleep(0.05)
    stats = b.statistics()
    assert (stats.requests_per_minute, stats.output_tokens_per_minute) == (50, 8_000)


async def test_the_pool_reads_a_reset_moment_from_the_admission_of_a_late_answer(
    pool: Callable[..., SharedLimiter],
) -> None:
    """An empty 120-per-6-s bucket counted at admission, its answer read 2 s later: the timestamp says full in 4 s,
    a window of 5.04 s read as counted at our reading (1,428 a minute, faster than the server's 1,200); the pool
    reaches back to the admission, as one process does, and paces no faster than the server."""
    view = BucketView(limit=120, remaining=0, reset_in=4.0, reset_error=1.0, reset_absolute=True)
    async with pool() as a:
        now = 100.0
        a.observe(RateLimitSnapshot(requests=view), now, since=now - 2.0)
        with anyio.fail_after(5):
            while a.statistics().requests_per_minute is None:  # noqa: ASYNC110 (the outbox runs on real time)
                await anyio.sleep(0.05)
        per_minute = a.statistics().requests_per_minute
        assert per_minute is not None
        assert per_minute <= 1200.0
        assert per_minute == pytest.approx(120 / (120 * 7.0 / 119) * 60.0, rel=1e-3)


async def test_a_429_in_one_process_pauses_the_others(pool: Callable[..., SharedLimiter]) -> None:
    """A's cool-down holds B's next admission back until the pause ends."""
    limits = Limits(requests_per_minute=60_000)
    async with pool(limits=limits) as a, pool(limits=limits) as b:
        await _pause(a, b)


async def _pause(a: SharedLimiter, b: SharedLimiter) -> None:
    b.saw_response()
    a.cool_down(0.4)
    await anyio.sleep(0.05)  # A's pause reaches Redis through its outbox
    started = anyio.current_time()
    permit = await b.acquire(10, 10)
    assert anyio.current_time() - started >= 0.3
    permit.settle(Usage(input_tokens=10, output_tokens=10))


async def test_a_permit_cancelled_while_waiting_gives_its_reservation_back(
    pool: Callable[..., SharedLimiter], redis_url: str
) -> None:
    """An acquire cancelled during its scheduled wait frees the slot and its reservation leaves the pool."""
    async with pool(limits=Limits(requests_per_minute=60), smooth=True) as a:  # one request per second
        await _cancel(a, redis_url)


async def _cancel(a: SharedLimiter, redis_url: str) -> None:
    a.saw_response()
    first = await a.acquire(1, 1)
    with anyio.move_on_after(0.2) as scope:
        await a.acquire(1, 1)  # reserved, to be sent in a second
    assert scope.cancelled_caught
    assert a.statistics().in_flight == 1
    await anyio.sleep(0.1)  # the refund goes out through the outbox
    client = aioredis.Redis.from_url(redis_url)
    try:
        reservations = await client.hlen(f"{a._prefix}:res")
    finally:
        await client.aclose()
    assert reservations == 1  # only the first, still in flight
    first.settle(Usage(input_tokens=1, output_tokens=1))
    assert a.statistics().in_flight == 0


async def test_losing_redis_pauses_admission_and_a_restart_resumes_it() -> None:
    """Redis killed mid-run: acquire waits (binding shared_limits_lost), then succeeds once Redis is back."""
    port = free_port()
    servers = [start_redis(port)]
    limiter = SharedLimiter(f"redis://127.0.0.1:{port}/0", name="lost", limits=Limits(requests_per_minute=60_000))
    try:
        async with limiter:
            await _lose_and_recover(limiter, servers, port)
    finally:
        for server in servers:
            server.kill()
            server.wait(10)


async def _lose_and_recover(limiter: SharedLimiter, servers: list[subprocess.Popen[bytes]], port: int) -> None:
    limiter.saw_response()
    (await limiter.acquire(1, 1)).settle(Usage(input_tokens=1, output_tokens=1))
    servers[0].kill()
    servers[0].wait(10)
    with anyio.move_on_after(0.8) as waited:
        await limiter.acquire(1, 1)
    assert waited.cancelled_caught  # nothing was admitted without Redis
    assert limiter.statistics().binding == "shared_limits_lost"
    servers.append(start_redis(port))
    with anyio.fail_after(10):
        permit = await limiter.acquire(1, 1)
    permit.settle(Usage(input_tokens=1, output_tokens=1))
    assert limiter.reconnects == 1
    # The restarted Redis had forgotten the limits: this process gave its own back to the pool.
    with anyio.fail_after(5):
        while limiter.statistics().requests_per_minute != 60_000:  # noqa: ASYNC110 (the heartbeat's real time)
            await anyio.sleep(0.05)
