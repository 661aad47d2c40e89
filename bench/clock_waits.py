"""The cost of the limiter's waits for capacity, per admission, on the clocks a run can use.

`python -m bench.clock_waits [--admissions 20000] [--workers 64] [--repeats 3]`

64 tasks share one limiter paced at 60,000 requests a minute (every admission after the first second's burst
waits for refill), on three clocks: `FakeClock` (virtual time, the loop's timeouts), the same loop with a user
Clock that only forwards to it (the general path: the event raced against `clock.sleep`), and `SystemClock` in
real time (fewer admissions, since they take real seconds). CPU is the process's (time.process_time) per
admission; "ends at" is the clock's reading when the last admission was made, so two code versions can be checked
for the same pacing. Run it once per version (PYTHONPATH pointing at the other tree's src) to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import anyio

from sluicegate import Clock, SystemClock, Usage
from sluicegate.limits.limiter import Limiter, Limits
from sluicegate.testing import FakeClock

_RPM = 60_000.0


class _Forwarding:
    """A user's Clock that reads and sleeps through the loop's time: same pacing, but not a loop-timed class."""

    def __init__(self, inner: FakeClock) -> None:
        self._inner = inner

    def now(self) -> float:
        return self._inner.now()

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _admit(clock: Clock, admissions: int, workers: int) -> float:
    limiter = Limiter(Limits(requests_per_minute=_RPM), clock=clock, max_concurrency=workers)
    limiter.saw_response()
    left = admissions
    last = 0.0

    async def worker() -> None:
        nonlocal left, last
        while left > 0:
            left -= 1
            permit = await limiter.acquire(0, 0)
            last = clock.now()
            await anyio.lowlevel.checkpoint()
            permit.settle(Usage())

    started = clock.now()
    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    return last - started


def _measure(run: Callable[[], float], admissions: int) -> tuple[float, float]:
    cpu = time.process_time()
    ends_at = run()
    return (time.process_time() - cpu) / admissions * 1e6, ends_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admissions", type=int, default=20_000)
    parser.add_argument("--real-admissions", type=int, default=3_000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, real, w = args.admissions, args.real_admissions, args.workers

    def fake() -> float:
        clock = FakeClock()
        return clock.run(_admit, clock, n, w)

    def forwarding() -> float:
        clock = FakeClock()
        return clock.run(_admit, _Forwarding(clock), n, w)

    def system() -> float:
        return anyio.run(_admit, SystemClock(), real, w)

    cases = [("FakeClock", fake, n), ("user Clock on the fake loop", forwarding, n), ("SystemClock", system, real)]
    print(f"| clock | admissions | CPU µs per admission (median of {args.repeats}) | ends at (clock s) |")
    print("|---|---|---|---|")
    for name, run, count in cases:
        samples = [_measure(run, count) for _ in range(args.repeats)]
        cpu = statistics.median(s[0] for s in samples)
        print(f"| {name} | {count:,} | {cpu:.1f} | {samples[-1][1]:.4f} |")


if __name__ == "__main__":
    main()
