"""The attempt gate's own rules on the fake clock: what a failure leaves charged, the breaker, unreachable hosts."""

from __future__ import annotations

import random
from collections.abc import Callable

import anyio
import pytest

from sluicegate._breaker import Breaker
from sluicegate._errors import ERROR_KINDS
from sluicegate._gate import AttemptGate, Pass
from sluicegate._models import Usage
from sluicegate.limits.limiter import Limiter, Limits
from sluicegate.retry import Outcome, RetryPolicy
from sluicegate.testing import FakeClock

OUTCOMES = [
    Outcome(status=400),
    Outcome(status=401),
    Outcome(status=402),
    Outcome(status=429, retry_after=0.0),
    Outcome(status=529),
    Outcome(status=500),
    Outcome(failure="connect"),
    Outcome(failure="timeout"),
    Outcome(failure="transport"),
    Outcome(failure="truncated"),
]


def _wait_after(release: Callable[[AttemptGate, Pass], object]) -> float:
    """At 60 RPM with the client's bucket emptied by two admissions, how long the next admission waits after
    `release` ends the first one."""
    clock = FakeClock()

    async def main() -> float:
        limiter = Limiter(Limits(requests_per_minute=60), clock=clock, max_concurrency=4)
        limiter.saw_response()
        gate = AttemptGate(retry=RetryPolicy(), clock=clock, rng=random.Random(1), limiter=limiter)
        first = await gate.acquire(10, 10)
        while True:  # empty the bucket, however full the limiter starts it
            started = clock.now()
            held = await gate.acquire(10, 10)
            if clock.now() > started:
                break
            gate.succeeded(held, Usage(input_tokens=10, output_tokens=10))
        started = clock.now()
        release(gate, first)
        await gate.acquire(10, 10)
        return clock.now() - started

    return clock.run(main)


@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda o: o.reason)
def test_a_failure_stays_charged_exactly_when_the_table_says_the_server_counted_it(outcome: Outcome) -> None:
    """With the bucket empty, the next admission waits as after a charged release when the table says the server
    counted the failure, and as after a full refund when it did not."""
    refunded = _wait_after(lambda gate, p: p.permit.release() if p.permit else None)
    charged = _wait_after(lambda gate, p: p.permit.release(charged=True) if p.permit else None)
    assert charged > refunded
    waited = _wait_after(lambda gate, p: gate.failed(p, outcome, 1))
    assert waited == (charged if ERROR_KINDS[outcome.kind].counted else refunded)


def _ticks(breaker: Breaker, clock: FakeClock, answers: list[bool]) -> None:
    """Send one attempt per answer through the breaker and record it (True = overloaded)."""

    async def main() -> None:
        for overloaded in answers:
            ticket = await breaker.wait_turn()
            breaker.record(ticket, overloaded=overloaded, target=8)

    clock.run(main)


def test_scattered_overloads_never_trip_the_breaker() -> None:
    """One 529 in every 7 answers (14%) over 700 answers leaves the breaker closed and holds nobody back."""
    clock = FakeClock()
    breaker = Breaker(clock)
    _ticks(breaker, clock, [i % 7 == 3 for i in range(700)])
    assert (breaker.state, breaker.trips, breaker.held_back, clock.now()) == ("closed", 0, 0.0, 0.0)


def test_the_retry_policy_shapes_the_gate_breaker() -> None:
    """A gate's breaker takes its settings from RetryPolicy's breaker_* fields: 3 overloads of the last 4 trip it,
    and the probes go out at 1, 3, 6, 9 s (interval 1 s doubled up to 3 s) while they fail."""
    clock = FakeClock()
    policy = RetryPolicy(
        breaker_window=4, breaker_min_failures=3, breaker_probe_interval=1.0, breaker_max_probe_interval=3.0
    )
    breaker = AttemptGate(retry=policy, clock=clock, rng=random.Random(1)).breaker
    probes: list[float] = []

    async def main() -> None:
        for overloaded in (True, False, True, True):
            breaker.record(await breaker.wait_turn(), overloaded=overloaded, target=8)
        assert breaker.state == "open"
        for _ in range(4):
            ticket = await breaker.wait_turn()
            probes.append(clock.now())
            breaker.record(ticket, overloaded=True, target=8)

    clock.run(main)
    assert probes == [1.0, 3.0, 6.0, 9.0]


def test_a_burst_trips_then_probes_at_growing_intervals_then_ramps_and_closes() -> None:
    """8 overloads trip it; with a 1 s cap, probes go out at 0.5, 1.5, 2.5, 3.5 s while they fail (the interval
    doubles up to the cap); a success ramps 8 (half the target), 10, 12, 14, then closes at 16."""
    clock = FakeClock()
    breaker = Breaker(clock, max_probe_interval=1.0)
    probes: list[float] = []

    async def main() -> None:
        for _ in range(8):
            ticket = await breaker.wait_turn()
            breaker.record(ticket, overloaded=True, target=16)
        assert breaker.state == "open"
        for overloaded in (True, True, True, False):
            ticket = await breaker.wait_turn()
            probes.append(clock.now())
            breaker.record(ticket, overloaded=overloaded, target=16)
        assert breaker.state == "ramp"
        # Ramp: eight may be in flight, then two more per success, until the target of 16 closes it.
        tickets = [await breaker.wait_turn() for _ in range(8)]
        with anyio.move_on_after(100.0):
            await breaker.wait_turn()
            pytest.fail("a ninth attempt went out with an allowance of 8")
        for allowance in (10, 12, 14):
            breaker.record(tickets.pop(0), overloaded=False, target=16)
            assert (breaker.state, breaker.allowance) == ("ramp", allowance)
            before = clock.now()
            tickets += [await breaker.wait_turn() for _ in range(3)]
            assert (clock.now(), len(tickets)) == (before, allowance)
        breaker.record(tickets.pop(0), overloaded=False, target=16)
        assert breaker.state == "closed"

    clock.run(main)
    assert probes == [0.5, 1.5, 2.5, 3.5]
    assert breaker.trips == 1


def test_by_default_an_overloaded_server_sees_two_probes_a_second() -> None:
    """RetryPolicy's defaults probe every 0.5 s, failed probes or not: the end of an overload is seen within half a
    second, and the server sees two requests a second from this client while it lasts."""
    clock = FakeClock()
    breaker = AttemptGate(retry=RetryPolicy(), clock=clock, rng=random.Random(1)).breaker
    probes: list[float] = []

    async def main() -> None:
        for _ in range(8):
            breaker.record(await breaker.wait_turn(), overloaded=True, target=8)
        for _ in range(6):
            ticket = await breaker.wait_turn()
            probes.append(clock.now())
            breaker.record(ticket, overloaded=True, target=8)

    clock.run(main)
    assert probes == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_answers_sent_before_the_trip_do_not_move_it() -> None:
    """Attempts in flight when it tripped come back as 529s or successes without opening or closing it again."""
    clock = FakeClock()
    breaker = Breaker(clock)

    async def main() -> None:
        in_flight = [await breaker.wait_turn() for _ in range(20)]
        for ticket in in_flight[:8]:
            breaker.record(ticket, overloaded=True, target=8)
        assert breaker.state == "open"
        breaker.record(in_flight[8], overloaded=False, target=8)  # would close a probe's round, but is stale
        for ticket in in_flight[9:]:
            breaker.record(ticket, overloaded=True, target=8)
        assert breaker.state == "open"
        probe = await breaker.wait_turn()
        assert clock.now() == 0.5  # the first probe interval, not stretched by the stale 529s
        breaker.record(probe, overloaded=False, target=8)
        assert breaker.state == "ramp"

    clock.run(main)


def test_a_scattered_overload_in_the_ramp_does_not_open_it_but_a_second_one_does() -> None:
    """While ramping with two allowed in flight, one 529 is tolerated; a second that makes half the answers 529s
    reopens it at the base probe interval; an attempt from the ramp that ends afterwards frees its slot for the
    next probe."""
    clock = FakeClock()
    breaker = Breaker(clock)
    probe_times: list[float] = []

    async def main() -> None:
        for _ in range(8):
            breaker.record(await breaker.wait_turn(), overloaded=True, target=4)
        breaker.record(await breaker.wait_turn(), overloaded=False, target=4)  # the probe: ramp, allowance 2
        first, second = await breaker.wait_turn(), await breaker.wait_turn()
        breaker.record(first, overloaded=True, target=4)
        assert breaker.state == "ramp"
        third = await breaker.wait_turn()
        breaker.record(third, overloaded=True, target=4)
        assert breaker.state == "open"
        reopened = clock.now()

        async def next_probe() -> None:
            await breaker.wait_turn()
            probe_times.append(clock.now() - reopened)

        async with anyio.create_task_group() as tg:
            tg.start_soon(next_probe)
            await clock.sleep(3.0)  # the probe waits for `second`, still in flight from the ramp
            assert probe_times == []
            breaker.record(second, overloaded=False, target=4)  # stale, but its slot is free now

    clock.run(main)
    assert probe_times == [3.0]


def test_connections_that_keep_failing_stop_the_run_after_unreachable_after() -> None:
    """Refused connections with no answer at all are retried until `unreachable_after`, then the run stops."""
    clock = FakeClock()
    gate = AttemptGate(retry=RetryPolicy(unreachable_after=10.0), clock=clock, rng=random.Random(3))
    decisions: list[tuple[float, str, bool]] = []

    async def main() -> None:
        attempt = 0
        while True:
            attempt += 1
            passed = await gate.acquire()
            verdict = gate.failed(passed, Outcome(failure="connect"), attempt)
            decisions.append((clock.now(), verdict.decision.reason, verdict.decision.abort_run))
            if not verdict.retry:
                return
            await gate.back_off(verdict)

    clock.run(main)
    assert decisions[-1][1:] == ("unreachable", True)
    assert decisions[-1][0] >= 10.0
    assert all(reason == "connect" and not stop for _, reason, stop in decisions[:-1])
    assert len(decisions) <= 8


def test_any_answer_resets_the_unreachable_clock() -> None:
    """A server that answers every few seconds (any status) is reachable: its refused connections never stop the run."""
    clock = FakeClock()
    gate = AttemptGate(retry=RetryPolicy(unreachable_after=10.0, max_attempts=100), clock=clock, rng=random.Random(3))

    async def main() -> None:
        answered = 0.0
        while clock.now() < 40.0:
            passed = await gate.acquire()
            verdict = gate.failed(passed, Outcome(failure="connect"), 1)
            assert not verdict.decision.abort_run, f"stopped at {clock.now()} s"
            if clock.now() - answered >= 5.0:
                gate.observe(None)
                answered = clock.now()
            await clock.sleep(1.0)

    clock.run(main)


def test_after_an_overload_the_ramp_aims_at_what_the_ceiling_keeps_in_flight() -> None:
    """600 RPM (10 per second) answered in 2 s keeps 20 in flight (Little's law): after a burst of 529s the
    breaker's ramp starts at half of twice that and closes at 40, not at the limiter's memory cap of 512."""
    clock = FakeClock()
    overloaded = Outcome(status=529)

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=600), clock=clock, minute=60.0)
        limiter.saw_response()
        gate = AttemptGate(retry=RetryPolicy(), clock=clock, rng=random.Random(1), limiter=limiter)
        answered = await gate.acquire(10, 10)
        await anyio.sleep(2.0)
        gate.succeeded(answered, Usage(input_tokens=10, output_tokens=10))
        for attempt in range(8):
            gate.failed(await gate.acquire(10, 10), overloaded, attempt + 1)
        assert gate.breaker.state == "open"
        probe = await gate.acquire(10, 10)
        await anyio.sleep(2.0)
        gate.succeeded(probe, Usage(input_tokens=10, output_tokens=10))
        assert (gate.breaker.state, gate.breaker.allowance) == ("ramp", 20)
        successes = 0
        while gate.breaker.state == "ramp":
            passed = await gate.acquire(10, 10)
            await anyio.sleep(2.0)
            gate.succeeded(passed, Usage(input_tokens=10, output_tokens=10))
            successes += 1
        assert successes == 10  # two more allowed per success: from 20 to 40

    clock.run(main)


def test_a_probes_200_headers_move_the_breaker_before_its_answer_ends() -> None:
    """With 40 in flight as the target (600 RPM, 2 s answers), the probe's 200 headers open the ramp (20 at once)
    and the first ten of the ramp's 200 headers close it, all at the probe's time; the answers ending later change
    nothing."""
    clock = FakeClock()
    overloaded = Outcome(status=529)

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=600), clock=clock, minute=60.0)
        limiter.saw_response()
        gate = AttemptGate(retry=RetryPolicy(), clock=clock, rng=random.Random(1), limiter=limiter)
        answered = await gate.acquire(10, 10)
        await anyio.sleep(2.0)
        gate.succeeded(answered, Usage(input_tokens=10, output_tokens=10))
        for attempt in range(8):
            gate.failed(await gate.acquire(10, 10), overloaded, attempt + 1)
        probe = await gate.acquire(10, 10)
        assert gate.held(probe)
        probed_at = clock.now()
        gate.accepted(probe)
        assert (gate.breaker.state, gate.breaker.allowance) == ("ramp", 20)
        ramp = [await gate.acquire(10, 10) for _ in range(20)]
        assert all(gate.held(p) for p in ramp)
        for p in ramp:
            gate.accepted(p)
        assert (gate.breaker.state, clock.now()) == ("closed", probed_at)
        await anyio.sleep(2.0)
        for p in (probe, *ramp):
            gate.succeeded(p, Usage(input_tokens=10, output_tokens=10))
        assert gate.breaker.state == "closed"
        assert not gate.held(await gate.acquire(10, 10))

    clock.run(main)


class _CountingLimiter(Limiter):
    """A limiter that counts the overloads it is told of (each halves its adaptive concurrency)."""

    halvings = 0

    def overloaded(self) -> None:
        self.halvings += 1
        super().overloaded()


def test_overloads_the_breaker_holds_use_up_no_attempt_and_leave_the_concurrency_alone() -> None:
    """20 attempts in flight all get a 529: the 7 before the trip are the items' own (a private backoff, an attempt
    used up, the concurrency halved); the one that trips it and the 12 after are the breaker's: retried with no
    wait and no attempt used up even on an item's last attempt, and the limiter is not told again."""
    clock = FakeClock()

    async def main() -> None:
        limiter = _CountingLimiter(Limits(requests_per_minute=6_000), clock=clock, minute=60.0)
        limiter.saw_response()
        policy = RetryPolicy()
        gate = AttemptGate(retry=policy, clock=clock, rng=random.Random(1), limiter=limiter)
        passes = [await gate.acquire(10, 10) for _ in range(20)]
        verdicts = [gate.failed(p, Outcome(status=529), policy.max_attempts - 1) for p in passes]
        assert all(v.counts and v.retry for v in verdicts[:7])
        assert any(v.wait > 0 for v in verdicts[:7])
        assert gate.breaker.state == "open"
        assert all(not v.counts and v.retry and v.wait == 0.0 for v in verdicts[7:])
        last = gate.failed(await gate.acquire(10, 10), Outcome(status=529), policy.max_attempts)
        assert (last.retry, last.counts) == (True, False)  # the probe, on an item's last attempt
        assert limiter.halvings == 7

    clock.run(main)


def test_a_backoff_after_an_overload_ends_when_the_breaker_opens() -> None:
    """An item backing off from a 529 while the breaker is closed (a long private timer) stops sleeping when a
    burst trips the breaker, and then waits for the probe instead of its timer."""
    clock = FakeClock()

    async def main() -> None:
        gate = AttemptGate(retry=RetryPolicy(initial_delay=10.0), clock=clock, rng=random.Random(1))
        verdict = gate.failed(await gate.acquire(), Outcome(status=529), 3)
        assert verdict.wait > 2.0  # this seed draws 2.7 s
        woke: list[float] = []

        async def item() -> None:
            await gate.back_off(verdict)
            woke.append(clock.now())
            await gate.acquire()
            woke.append(clock.now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(item)
            await clock.sleep(1.0)
            for attempt in range(7):
                gate.failed(await gate.acquire(), Outcome(status=529), attempt + 1)
            assert gate.breaker.state == "open"
        assert woke == [1.0, 1.5]  # woken at the trip, let through as the first probe

    clock.run(main)
