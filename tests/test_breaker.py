"""The circuit breaker's recovery on the fake clock: the ramp's start, a flapping server, backoffs cut short."""

from __future__ import annotations

import anyio

from sluicegate._breaker import Breaker, Ticket
from sluicegate.testing import FakeClock


async def _trip(breaker: Breaker) -> None:
    for _ in range(8):
        breaker.record(await breaker.wait_turn(), overloaded=True, target=20)
    assert breaker.state == "open"


def test_the_ramp_starts_at_half_the_target_and_closes_there() -> None:
    """After a successful probe, half the target (10 of 20) may be in flight at once; five successes close it."""
    clock = FakeClock()
    breaker = Breaker(clock)

    async def main() -> None:
        await _trip(breaker)
        breaker.record(await breaker.wait_turn(), overloaded=False, target=20)
        assert (breaker.state, breaker.allowance) == ("ramp", 10)
        tickets = [await breaker.wait_turn() for _ in range(10)]
        assert clock.now() == 0.5  # all ten at once, right after the probe
        for ticket in tickets[:4]:
            breaker.record(ticket, overloaded=False, target=20)
        assert (breaker.state, breaker.allowance) == ("ramp", 18)
        breaker.record(tickets[4], overloaded=False, target=20)
        assert breaker.state == "closed"

    clock.run(main)


def test_a_server_that_flaps_is_probed_at_the_interval_it_reached_until_the_breaker_closes() -> None:
    """With a 1 s cap, a probe that succeeds, then a ramp that fails, reopens at the grown interval (1 s), not the
    base (0.5 s);
    only closing brings the base interval back for the next overload."""
    clock = FakeClock()
    breaker = Breaker(clock, max_probe_interval=1.0)
    probes: list[float] = []

    async def probe(overloaded: bool) -> None:
        ticket = await breaker.wait_turn()
        probes.append(clock.now())
        breaker.record(ticket, overloaded=overloaded, target=4)

    async def main() -> None:
        await _trip(breaker)
        await probe(True)  # 0.5 s; the interval grows to 1 s
        await probe(False)  # 1.5 s: ramp, two in flight
        first, second = await breaker.wait_turn(), await breaker.wait_turn()
        breaker.record(first, overloaded=True, target=4)
        breaker.record(second, overloaded=True, target=4)
        assert breaker.state == "open"
        await probe(False)  # 2.5 s: a second later, not half a second
        for _ in range(2):
            breaker.record(await breaker.wait_turn(), overloaded=False, target=4)
        assert breaker.state == "closed"
        await _trip(breaker)
        await probe(True)  # the next overload starts at the base interval again

    clock.run(main)
    assert probes == [0.5, 1.5, 2.5, 3.0]


def test_hold_ends_when_the_breaker_opens_and_sleeps_out_its_time_otherwise() -> None:
    """An item backing off from a 529 while closed stops sleeping the moment the breaker trips (it then waits for
    the probes); with no change of state it sleeps its whole time."""
    clock = FakeClock()
    breaker = Breaker(clock)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await breaker.hold(seconds)
        woke.append(clock.now())

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, 8.0)
            await clock.sleep(1.0)
            breaker.record(await breaker.wait_turn(), overloaded=False, target=20)  # no change of state
            await clock.sleep(1.0)
            await _trip(breaker)
        await sleeper(3.0)

    clock.run(main)
    assert woke == [2.0, 5.0]


def test_a_stale_answer_does_not_end_a_hold() -> None:
    """An answer that moves nothing (sent before the last trip) leaves a holding item asleep."""
    clock = FakeClock()
    breaker = Breaker(clock)
    woke: list[float] = []

    async def main() -> None:
        stale: Ticket = await breaker.wait_turn()
        await _trip(breaker)

        async def sleeper() -> None:
            await breaker.hold(4.0)
            woke.append(clock.now())

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await clock.sleep(0.25)
            breaker.record(stale, overloaded=False, target=20)

    clock.run(main)
    assert woke == [4.0]


def test_the_ramps_first_answers_being_529s_does_not_reopen_it_until_half_its_allowance_are() -> None:
    """529s come back before any success does: with ten let through, four scattered 529s leave it ramping (and each
    frees its slot for another attempt); a fifth, half the allowance, reopens it."""
    clock = FakeClock()
    breaker = Breaker(clock)

    async def main() -> None:
        await _trip(breaker)
        breaker.record(await breaker.wait_turn(), overloaded=False, target=20)
        tickets = [await breaker.wait_turn() for _ in range(10)]
        for ticket in tickets[:4]:
            breaker.record(ticket, overloaded=True, target=20)
        assert (breaker.state, breaker.allowance) == ("ramp", 10)
        tickets += [await breaker.wait_turn() for _ in range(4)]
        breaker.record(tickets[4], overloaded=True, target=20)
        assert breaker.state == "open"

    clock.run(main)
