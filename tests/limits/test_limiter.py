"""The limiter on a fake clock: pacing, learning from headers, the 429 pause, FIFO order and concurrency."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest

from sluicegate import BucketView, RateLimitSnapshot, Usage
from sluicegate.limits.limiter import Limiter, Limits
from sluicegate.testing import FakeClock


def test_requests_are_paced_at_the_rpm_rate_not_burst() -> None:
    """RPM 60 with no headers: one second's burst at t=0, then exactly one admission per second."""
    clock = FakeClock()
    times: list[float] = []

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=60), clock=clock)
        limiter.saw_response()
        for _ in range(10):
            permit = await limiter.acquire(0, 0)
            times.append(clock.now())
            permit.settle(Usage())

    clock.run(main)
    assert times == [float(i) for i in range(10)]


def test_input_tokens_bucket_binds() -> None:
    """ITPM 6,000 and 1,000-token requests: the bucket grows to hold two of them but starts with 1 s of refill
    (100 tokens), so the first waits 9 s, then one every 10 s, exactly the limit's rate."""
    clock = FakeClock()
    times: list[float] = []

    async def main() -> None:
        limiter = Limiter(Limits(input_tokens_per_minute=6000), clock=clock)
        limiter.saw_response()
        for _ in range(3):
            permit = await limiter.acquire(1000, 50)
            times.append(clock.now())
            permit.settle(Usage(input_tokens=1000, output_tokens=10))

    clock.run(main)
    assert times == [9.0, 19.0, 29.0]


def test_settle_refunds_unused_output_reservation() -> None:
    """Reserving 600 output tokens and producing 100 gives 500 back to the bucket at once."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(Limits(output_tokens_per_minute=6000), clock=clock)
        limiter.observe(RateLimitSnapshot(output_tokens=BucketView(limit=6000, remaining=6000, reset_in=0.0)))
        permit = await limiter.acquire(10, 600)
        permit.settle(Usage(input_tokens=10, output_tokens=100))
        stats = limiter.statistics()
        assert stats.in_flight == 0
        bucket = limiter._gates["output_tokens"].mirror
        assert bucket is not None
        assert bucket.level(clock.now()) == 5900

    clock.run(main)


def test_limits_are_learnt_from_headers_and_remaining_is_respected() -> None:
    """No limits given: the first snapshot creates the buckets; a low `remaining` pulls our level down."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(clock=clock, smooth=True)
        assert limiter.statistics().requests_per_minute is None
        exact = BucketView(limit=120, remaining=60, reset_in=30.0, remaining_error=0.0)
        limiter.observe(RateLimitSnapshot(requests=exact))
        assert limiter.windows() == {"requests": 60.0}  # 60 missing, full in 30 s: 120 per 60 s
        assert limiter.statistics().requests_per_minute == 120
        limiter.observe(RateLimitSnapshot(requests=BucketView(limit=120, remaining=0, reset_in=60.0)))
        await limiter.acquire(0, 0)
        assert clock.now() == 0.5  # empty: the next request waits for one refill at 2 per second

    clock.run(main)


def test_user_limit_is_a_ceiling_that_headers_do_not_raise() -> None:
    """The stricter of the user's limit and the server's wins."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=30), clock=clock)
        limiter.observe(RateLimitSnapshot(requests=BucketView(limit=1000, remaining=999, reset_in=0.0)))
        assert limiter.statistics().requests_per_minute == 30
        limiter.observe(RateLimitSnapshot(requests=BucketView(limit=20, remaining=19, reset_in=0.0)))
        assert limiter.statistics().requests_per_minute == 20

    clock.run(main)


def test_cooldown_pauses_everyone_then_resumes_with_bounded_jitter() -> None:
    """A 429 with retry-after 10 stops all admissions until 10 s plus at most 1 s of jitter."""
    clock = FakeClock()
    admitted: list[float] = []

    async def worker(limiter: Limiter) -> None:
        permit = await limiter.acquire(0, 0)
        admitted.append(clock.now())
        permit.settle(Usage())

    async def main() -> None:
        limiter = Limiter(clock=clock, rng=random.Random(7), max_concurrency=8)
        limiter.saw_response()
        limiter.cool_down(10.0)
        assert limiter.statistics().cooldown_remaining > 10.0
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(worker, limiter)

    clock.run(main)
    assert len(admitted) == 4
    assert all(10.0 <= t <= 11.0 for t in admitted)


def test_first_come_first_served_even_when_the_head_is_large() -> None:
    """A large request at the head is not overtaken by a small one queued after it."""
    clock = FakeClock()
    order: list[str] = []

    async def worker(limiter: Limiter, name: str, tokens: int) -> None:
        permit = await limiter.acquire(tokens, 0)
        order.append(name)
        permit.settle(Usage(input_tokens=tokens))

    async def main() -> None:
        limiter = Limiter(Limits(input_tokens_per_minute=600), clock=clock, max_concurrency=4)
        limiter.saw_response()
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker, limiter, "big", 300)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(worker, limiter, "small", 1)

    clock.run(main)
    assert order == ["big", "small"]
    assert clock.now() == 29.1  # 10 tokens at start: big waits 29 s, then small 0.1 s for its token


def test_single_probe_until_the_first_response() -> None:
    """Before any response only one request is in flight (a bad key costs one request, not a burst)."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(clock=clock)
        assert limiter.concurrency_limit() == 1
        first = await limiter.acquire(0, 0)
        with anyio.move_on_after(5):
            await limiter.acquire(0, 0)
            pytest.fail("second request admitted before any response")
        limiter.saw_response()
        first.settle(Usage())
        assert limiter.concurrency_limit() >= 4

    clock.run(main)


def test_concurrency_cap_waits_for_a_release_and_release_refunds() -> None:
    """With max_concurrency 2 a third acquire waits until a slot is released; a 429-style release refunds."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=6000), clock=clock, max_concurrency=2, smooth=True)
        limiter.saw_response()
        a = await limiter.acquire(0, 0)
        await limiter.acquire(0, 0)
        async with anyio.create_task_group() as tg:

            async def third() -> None:
                await limiter.acquire(0, 0)
                assert clock.now() == 3.0

            tg.start_soon(third)
            await anyio.sleep(3)
            assert limiter.statistics().binding == "concurrency"
            a.release()
        bucket = limiter._gates["requests"].mirror
        assert bucket is not None
        # Started with one second of refill (100) before any header: 2 taken, 1 refunded, 300 refilled in 3 s.
        assert bucket.level(clock.now()) == 100 - 2 + 1 + 300 - 1

    clock.run(main)


def test_cancelled_head_passes_its_turn_on() -> None:
    """A waiter cancelled at the head of the queue does not block the ones behind it."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=60), clock=clock)
        limiter.saw_response()
        (await limiter.acquire(0, 0)).settle(Usage())
        with anyio.move_on_after(0.5):
            await limiter.acquire(0, 0)
        assert limiter.statistics().waiting == 0
        await limiter.acquire(0, 0)
        assert clock.now() == 1.0

    clock.run(main)


def test_adaptive_concurrency_without_limits_halves_on_overload() -> None:
    """With no known limits the concurrency grows per success and halves on a 529."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(clock=clock, max_concurrency=100)
        limiter.saw_response()
        assert limiter.concurrency_limit() == 4
        for _ in range(4):
            (await limiter.acquire(0, 0)).settle(Usage())
        assert limiter.concurrency_limit() == 8
        limiter.overloaded()
        assert limiter.concurrency_limit() == 4

    clock.run(main)


def test_limits_reject_nonsense() -> None:
    """A zero or negative limit is a configuration error."""
    with pytest.raises(ValueError, match="requests_per_minute"):
        Limits(requests_per_minute=0)


def test_no_burst_after_a_pause_when_pacing_smoothly() -> None:
    """Smooth pacing: after a 30 s cool-down the requests resume at the limit's rate, not as a storm."""
    clock = FakeClock()
    admitted: list[float] = []

    async def worker(limiter: Limiter) -> None:
        permit = await limiter.acquire(0, 0)
        admitted.append(clock.now())
        permit.settle(Usage())

    async def main() -> None:
        limiter = Limiter(
            Limits(requests_per_minute=600), clock=clock, max_concurrency=100, smooth=True, rng=random.Random(3)
        )
        limiter.saw_response()
        limiter.cool_down(30.0)
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(worker, limiter)

    clock.run(main)
    start = min(admitted)
    assert 30.0 <= start <= 31.0
    assert sum(1 for t in admitted if t < start + 1.0) <= 10 + 3  # 1 s at 10/s plus the 0.25 s pacing burst
    assert max(admitted) - start >= 3.6  # 40 requests at 10/s with 2.5 banked take at least 3.75 s


def test_the_head_admits_every_waiter_that_fits_in_the_same_pass() -> None:
    """Three slots freed at once: the head admits itself and the two behind it before it returns (one wake,
    not one event-loop turn per admission), in queue order."""
    clock = FakeClock()
    seen: list[tuple[int, int]] = []

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=600_000), clock=clock, max_concurrency=3)
        limiter.saw_response()
        held = [await limiter.acquire(0, 0) for _ in range(3)]

        async def waiter(i: int) -> None:
            await limiter.acquire(0, 0)
            seen.append((i, limiter.statistics().in_flight))

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(waiter, i)
                await anyio.lowlevel.checkpoint()
            assert limiter.statistics().waiting == 3
            for permit in held:
                permit.settle(Usage())
        assert seen[0] == (0, 3)  # the head saw all three admitted when it returned
        assert [i for i, _ in seen] == [0, 1, 2]

    clock.run(main)


def test_a_waiter_admitted_by_the_head_then_cancelled_gives_its_slot_back() -> None:
    """A follower cancelled just before the head's pass admits it (the cancellation is already on its way)
    returns the permit it was given: the slot is free again and nothing is left queued."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=600_000), clock=clock, max_concurrency=2)
        limiter.saw_response()
        held = [await limiter.acquire(0, 0) for _ in range(2)]
        follower = anyio.CancelScope()
        outcome: list[str] = []

        async def head() -> None:
            await limiter.acquire(0, 0)
            outcome.append(f"head admitted, {limiter.statistics().in_flight} in flight")

        async def behind() -> None:
            with follower:
                await limiter.acquire(0, 0)
                outcome.append("follower admitted")

        async with anyio.create_task_group() as tg:
            tg.start_soon(head)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(behind)
            await anyio.lowlevel.checkpoint()
            for permit in held:
                permit.settle(Usage())  # wakes the head first...
            follower.cancel()  # ...then cancels the follower, which the head's pass admits before it runs
        assert outcome == ["head admitted, 2 in flight"]
        assert limiter.statistics().in_flight == 1  # the follower's permit came back
        assert limiter.statistics().waiting == 0

    clock.run(main)


def test_capacity_at_hand_is_taken_without_yielding_to_the_event_loop() -> None:
    """With nobody waiting and room in every gate, `acquire` completes on its first step (no event-loop turn),
    so a burst that fits passes in the turn it arrives in; one that does not fit still waits in the queue."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=600_000), clock=clock, max_concurrency=2)
        limiter.saw_response()
        for _ in range(2):
            step = limiter.acquire(0, 0)
            with pytest.raises(StopIteration) as done:  # finished without suspending once
                step.send(None)
            assert done.value.value.admitted_at == clock.now()
        assert limiter.statistics().in_flight == 2
        third = limiter.acquire(0, 0)
        third.send(None)  # the concurrency cap is reached: it suspends, queued
        assert limiter.statistics().waiting == 1
        third.close()
        assert limiter.statistics().waiting == 0

    clock.run(main)


def test_a_settle_after_the_mirror_took_the_servers_count_does_not_correct_it_again() -> None:
    """Request A was charged 1,250 input tokens for 1,000 counted. A later response's `remaining` (which holds A's
    real 1,000) raises the mirror to the server's count; A's settle then leaves the mirror alone instead of
    refunding its 250 a second time, which would let through requests the server refuses."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(clock=clock, minute=60.0)
        probe = await limiter.acquire(1_000, 10)
        view = BucketView(limit=100_000, remaining=99_000, reset_in=0.6, remaining_error=0.0)
        limiter.observe(RateLimitSnapshot(input_tokens=view), since=probe.admitted_at)
        probe.settle(Usage(input_tokens=1_000, output_tokens=5))
        a = await limiter.acquire(1_250, 10)
        b = await limiter.acquire(1_000, 10)
        gate = limiter._gates["input_tokens"]
        assert gate.mirror is not None
        raised = BucketView(limit=100_000, remaining=98_000, reset_in=1.2, remaining_error=0.0)
        limiter.observe(RateLimitSnapshot(input_tokens=raised), since=b.admitted_at)
        level = gate.mirror.level(clock.now())
        assert level == 98_001 - 1_000  # what the server says is left, less B's own charge (maybe not in it yet)
        a.settle(Usage(input_tokens=1_000, output_tokens=5))
        assert gate.mirror.level(clock.now()) == level
        b.settle(Usage(input_tokens=1_000, output_tokens=5))
        assert gate.mirror.level(clock.now()) == level

    clock.run(main)
