"""The limiter against a simulated server on a fake clock: windows learnt from real header text, the start from
`remaining`, the slow-start ramp, the short-interval fallback and requests larger than a bucket."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import anyio
import pytest

from sluicegate import RateLimitSnapshot, Usage
from sluicegate._exceptions import InputError
from sluicegate._models import BucketView
from sluicegate.limits.headers import parse_anthropic_headers, parse_openai_headers
from sluicegate.limits.limiter import Limiter, Limits, Permit
from sluicegate.testing import FakeClock

_WALL = 1_800_000_000.37  # wall-clock seconds at fake time 0: the whole-second boundary falls mid-way


class Server:
    """Continuously refilled buckets (limit per `window` seconds) sending headers as the real APIs format them."""

    def __init__(self, clock: FakeClock, limits: dict[str, tuple[float, float]], *, style: str = "anthropic") -> None:
        self.clock = clock
        self.limits = limits  # name -> (limit, window seconds)
        self.level = {name: limit for name, (limit, _) in limits.items()}
        self.at = clock.now()
        self.style = style
        self.refused = 0

    def _refill(self) -> None:
        now = self.clock.now()
        for name, (limit, window) in self.limits.items():
            self.level[name] = min(limit, self.level[name] + (now - self.at) * limit / window)
        self.at = now

    def admit(self, charges: dict[str, float]) -> bool:
        """Take every charge, or refuse (a 429) when any bucket is short."""
        self._refill()
        # (1e-9: a refill computed in floats may fall a hair short of a whole request)
        if any(self.level[name] < amount - 1e-9 for name, amount in charges.items() if name in self.level):
            self.refused += 1
            return False
        for name, amount in charges.items():
            if name in self.level:
                self.level[name] -= amount
        return True

    def snapshot(self) -> RateLimitSnapshot:
        self._refill()
        wall = _WALL + self.clock.now()
        headers: dict[str, str] = {}
        for name, (limit, window) in self.limits.items():
            level = self.level[name]
            full_in = max(0.0, limit - level) * window / limit
            left = max(0, math.floor(level))
            if self.style == "anthropic":
                key = name.replace("_", "-")
                if name != "requests":
                    left = (left + 500) // 1000 * 1000
                stamp = math.floor(wall + full_in)
                headers[f"anthropic-ratelimit-{key}-limit"] = str(int(limit))
                headers[f"anthropic-ratelimit-{key}-remaining"] = str(left)
                headers[f"anthropic-ratelimit-{key}-reset"] = _rfc3339(stamp)
            else:
                reset = f"{math.ceil(full_in * 1000)}ms" if full_in < 1 else f"{math.ceil(full_in)}s"
                headers[f"x-ratelimit-limit-{name}"] = str(int(limit))
                headers[f"x-ratelimit-remaining-{name}"] = str(left)
                headers[f"x-ratelimit-reset-{name}"] = reset
        if self.style == "anthropic":
            return parse_anthropic_headers(headers, wall)
        return parse_openai_headers(headers)


def _rfc3339(stamp: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _drive(
    limiter: Limiter,
    server: Server,
    n: int,
    *,
    latency: float | Callable[[], float],
    tokens: tuple[int, int],
    counted_at_admission: bool = False,
) -> list[float]:
    """`n` requests through limiter and server by 64 workers; a refused one is retried. Completion times.
    `counted_at_admission`: each answer carries its headers as they stood when the request was admitted."""
    done: list[float] = []
    todo = list(range(n))
    input_tokens, output_tokens = tokens

    async def worker() -> None:
        while todo:
            todo.pop()
            while True:
                permit = await limiter.acquire(input_tokens, output_tokens)
                charges = {"requests": 1.0, "input_tokens": input_tokens, "output_tokens": output_tokens}
                charges["tokens"] = input_tokens + output_tokens
                if server.admit(charges):
                    break
                snapshot = server.snapshot()
                limiter.observe(snapshot)
                if not limiter.rate_limited(snapshot, input_tokens, output_tokens, admitted_at=permit.admitted_at):
                    limiter.cool_down(1.0)
                permit.release()
            counted = server.snapshot() if counted_at_admission else None
            await anyio.sleep(latency if isinstance(latency, float) else latency())
            limiter.observe(counted or server.snapshot(), since=permit.admitted_at)
            permit.settle(Usage(input_tokens=input_tokens, output_tokens=output_tokens))
            done.append(limiter._clock.now())

    async with anyio.create_task_group() as tg:
        for _ in range(64):
            tg.start_soon(worker)
    return done


@pytest.mark.parametrize(
    ("window", "requests", "n", "ideal"),
    [
        (60.0, 120, 480, (480 - 120) * 60.0 / 120),  # a real minute
        (6.0, 120, 480, (480 - 120) * 6.0 / 120),  # an emulator's 6-second minute
        (1.0, 20, 200, (200 - 20) * 1.0 / 20),  # a per-second limit
    ],
)
def test_window_is_learnt_from_anthropic_headers(window: float, requests: int, n: int, ideal: float) -> None:
    """No limits and no minute given: the window is learnt within 3% (never shorter), no request is refused,
    and the run finishes within 10% of a perfect client that spends the full bucket at once."""
    clock = FakeClock()
    server = Server(clock, {"requests": (requests, window)})

    async def main() -> list[float]:
        limiter = Limiter(clock=clock)
        done = await _drive(limiter, server, n, latency=window / 60.0, tokens=(10, 10))
        learnt = limiter.windows()["requests"]
        assert window <= learnt <= window * 1.03
        return done

    done = clock.run(main)
    assert server.refused == 0
    assert max(done) <= ideal * 1.10 + 2 * window / 60.0


@pytest.mark.parametrize("style", ["anthropic", "openai"])
def test_headers_counted_at_admission_and_read_an_answer_later_never_shorten_the_window(style: str) -> None:
    """A server that counts its headers at admission, answers taking 0.1-1.0 s of a 6 s window: the window learnt
    from headers read an answer late is never shorter than the server's, nothing is refused, and the run finishes
    within 15% of a perfect client (the cost of reaching back to the admission: `test_window.py`)."""
    clock = FakeClock()
    server = Server(clock, {"requests": (120, 6.0)}, style=style)
    latencies = itertools.cycle([0.1 + 0.9 * ((i * 0.618) % 1.0) for i in range(97)])

    async def main() -> list[float]:
        limiter = Limiter(clock=clock)
        done = await _drive(
            limiter, server, 480, latency=lambda: next(latencies), tokens=(10, 10), counted_at_admission=True
        )
        learnt = limiter.windows()["requests"]
        assert 6.0 <= learnt <= 6.0 * 1.12
        return done

    done = clock.run(main)
    assert server.refused == 0
    assert max(done) <= (480 - 120) * 6.0 / 120 * 1.15 + 2 * 1.0


def test_a_server_seen_to_count_at_the_end_gets_its_window_back_within_2_percent() -> None:
    """The same answers all 3 s late, from a real minute's 60 requests, counted as each answer ends: the start's burst
    shows that the server counts at the end (the requests bucket's `remaining` holds the whole burst), so the reset
    timestamps count from our reading again and the window is learnt within 2% (6% slow while undecided)."""
    clock = FakeClock()
    server = Server(clock, {"requests": (60, 60.0)})

    async def main() -> None:
        limiter = Limiter(clock=clock)
        await _drive(limiter, server, 120, latency=3.0, tokens=(10, 10))
        assert 60.0 <= limiter.windows()["requests"] <= 60.0 * 1.02

    clock.run(main)
    assert server.refused == 0


def test_only_a_reset_moment_reaches_back_to_the_admission() -> None:
    """An empty 120-per-6-s requests bucket counted at admission (t=0), its answer read at t=2: Anthropic's
    timestamp (full at 6 s, "4 s" from our reading) gives a window of at least 6 s (it was 5.04 s, faster than
    the server); OpenAI's duration ("6.000s" from the count) needs no reaching back and stays within 1%."""
    wall = 1_800_000_000.0
    anthropic_headers = {
        "anthropic-ratelimit-requests-limit": "120",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": _rfc3339(int(wall) + 6),
    }
    openai_headers = {
        "x-ratelimit-limit-requests": "120",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "6.000s",
    }
    for snapshot, longest in [
        (parse_anthropic_headers(anthropic_headers, wall + 2.0), 120 * (4.0 + 1.0 + 2.0) / 119),
        (parse_openai_headers(openai_headers), 120 * 6.001 / 119),
    ]:
        limiter = Limiter(clock=FakeClock(start=2.0))
        limiter.observe(snapshot, since=0.0)
        assert 6.0 <= limiter.windows()["requests"] <= longest


def test_per_day_requests_beside_per_minute_tokens_from_openai_headers() -> None:
    """Groq-style: 14,400 requests per day and 6,000 tokens per minute. The day is learnt as a day (the requests
    never bind), the minute as a minute (the tokens bind at 100 per second), and nothing is refused."""
    clock = FakeClock()
    server = Server(clock, {"requests": (14_400, 86_400.0), "tokens": (6_000, 60.0)}, style="openai")

    async def main() -> list[float]:
        limiter = Limiter(clock=clock)
        done = await _drive(limiter, server, 300, latency=1.0, tokens=(50, 50))
        windows = limiter.windows()
        assert 86_400.0 <= windows["requests"] <= 86_400.0 * 1.2
        assert 60.0 <= windows["tokens"] <= 61.0
        return done

    done = clock.run(main)
    assert server.refused == 0
    # 300 x 100 tokens: 6,000 at once, then 24,000 at 100 per second = 240 s.
    assert 240.0 <= max(done) <= 240.0 * 1.05 + 2.0


@pytest.mark.parametrize("time_to_headers", [1.0, 0.005])
def test_starts_from_remaining_and_ramps_by_doubling(time_to_headers: float) -> None:
    """After the probe's headers the client spends what the server says is left: 16 requests per second at first,
    doubling every quarter second (the time a refusal takes to come back), instead of the long-run rate. The same
    whether the headers took a whole second (a plain answer) or 5 ms (a stream's first token on a fast server)."""
    clock = FakeClock()
    server = Server(clock, {"requests": (1_000, 60.0)})

    async def main() -> list[float]:
        limiter = Limiter(clock=clock)
        probe = await limiter.acquire(0, 0)
        server.admit({"requests": 1.0})
        await anyio.sleep(time_to_headers)
        limiter.observe(server.snapshot(), since=probe.admitted_at)
        probe.settle(Usage())
        admitted: list[float] = []
        for _ in range(200):
            permit = await limiter.acquire(0, 0)
            admitted.append(clock.now() - time_to_headers)
            permit.settle(Usage())
        return admitted

    admitted = clock.run(main)
    per_round = [sum(1 for t in admitted if k * 0.25 <= t < (k + 1) * 0.25) for k in range(4)]
    assert admitted[:2] == [0.0, 1 / 16]
    assert 5 <= per_round[0] <= 6  # 4 per quarter second, growing within the quarter
    assert all(later >= 1.8 * earlier for earlier, later in itertools.pairwise(per_round))
    assert admitted[-1] < 1.5  # 200 requests out of the 999 left, far faster than 1,000 per minute's pace


def test_short_interval_server_costs_a_handful_of_429s_then_smooth_pacing() -> None:
    """A server enforcing 600 per minute also as 10 per second (burst 2): the ramp meets the short limit,
    the first 429 (with capacity left in the headers) switches to smooth pacing, which probes up to just below
    the short limit (a bucket that never drains teaches little about its window): at most 3 refused in all,
    and 300 requests within 25% of the 30 s the short limit allows."""
    clock = FakeClock()
    server = Server(clock, {"requests": (600, 60.0)})
    short = Server(clock, {"requests": (2, 0.2)})  # 10 per second with a burst of 2

    class Both(Server):
        def admit(self, charges: dict[str, float]) -> bool:
            if not short.admit(charges):
                self.refused += 1
                return False
            return server.admit(charges)

    both = Both(clock, {})
    both.snapshot = server.snapshot  # type: ignore[method-assign]

    async def main() -> list[float]:
        limiter = Limiter(clock=clock)
        done = await _drive(limiter, both, 300, latency=0.5, tokens=(10, 10))
        assert limiter._gates["requests"].smooth
        return done

    done = clock.run(main)
    assert both.refused <= 3
    assert len(done) == 300
    assert max(done) <= 300 / 10 * 1.25


def test_oversize_request_under_reserved_accounting_fails_at_once() -> None:
    """max_tokens 16,000 under a 10,000 output-token bucket that charges max_tokens: an InputError naming the
    field and the limit, at once, not a stall."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(clock=clock, output_accounting="reserved")
        limiter.observe(Server(clock, {"output_tokens": (10_000, 60.0)}).snapshot())
        with pytest.raises(InputError, match="max_tokens") as caught:
            await limiter.acquire(100, 16_000)
        assert "10,000 output tokens" in str(caught.value)
        assert clock.now() == 0.0

    clock.run(main)


def test_oversize_request_under_produced_accounting_is_admitted_and_charged_what_it_uses() -> None:
    """The same request where the server counts produced tokens: admitted at once, charged a share of the
    bucket at admission, then what it really produced; the next request is not stalled."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(clock=clock, output_accounting="produced")
        limiter.observe(Server(clock, {"output_tokens": (10_000, 60.0)}).snapshot())
        first = await limiter.acquire(100, 16_000)
        assert clock.now() == 0.0
        assert first.output_tokens == 2_500
        first.settle(Usage(input_tokens=100, output_tokens=800))
        mirror = limiter._gates["output_tokens"].mirror
        assert mirror is not None
        assert mirror.level(clock.now()) == 10_000 - 500 - 800
        second = await limiter.acquire(100, 16_000)
        assert clock.now() <= 1 / 16  # only the slow start's spacing (16 per second), no wait for the bucket
        second.settle(Usage(input_tokens=100, output_tokens=800))

    clock.run(main)


async def _a_second_into_the_ramp(clock: FakeClock, server: Server) -> tuple[Limiter, Permit]:
    """A limiter that learnt 600 RPM from a probe, then ramped for a second; with the last request it admitted."""
    limiter = Limiter(clock=clock, minute=60.0)
    probe = await limiter.acquire(0, 0)
    server.admit({"requests": 1.0})
    limiter.observe(server.snapshot(), since=probe.admitted_at)
    probe.settle(Usage())
    last = probe
    while clock.now() < 1.0:
        last = await limiter.acquire(0, 0)
        last.release(charged=True)
    return limiter, last


def test_a_short_interval_refusal_paces_no_faster_than_the_window_refills() -> None:
    """A refusal with room left in the headers, a second into the ramp (258/s): the window is known (a minute), so
    the pace starts at the 10/s it refills, not at half the refused rate: every step back from there would cost
    one more 429, and no pace above the refill rate lasts."""
    clock = FakeClock()
    server = Server(clock, {"requests": (600, 60.0)})

    async def main() -> None:
        limiter, last = await _a_second_into_the_ramp(clock, server)
        assert limiter._ramp.rate(last.admitted_at) > 200.0
        assert limiter.rate_limited(server.snapshot(), 0, 0, admitted_at=last.admitted_at)
        pace = limiter._gates["requests"].pace
        assert pace is not None
        assert pace.rate(10.0) == 10.0
        assert limiter.cooldown_until == -math.inf

    clock.run(main)


def test_a_refusal_s_own_reset_header_bounds_the_pace_it_starts() -> None:
    """No minute given and only the probe's answer seen (it bounds nothing): a 429 a second into the ramp, with
    room left, starts smooth pacing no faster than the refill its own reset header allows (about 10/s), not at
    half the ~250/s that was refused (every step back from there would cost one more 429)."""
    clock = FakeClock()
    server = Server(clock, {"requests": (600, 60.0)})

    async def main() -> None:
        limiter = Limiter(clock=clock)
        probe = await limiter.acquire(0, 0)
        server.admit({"requests": 1.0})
        limiter.observe(server.snapshot(), since=probe.admitted_at)
        probe.settle(Usage())
        gate = limiter._gates["requests"]
        assert gate.fastest() == math.inf
        last = probe
        while clock.now() < 1.0:
            last = await limiter.acquire(0, 0)
            server.admit({"requests": 1.0})
            last.release(charged=True)
        assert limiter._ramp.rate(last.admitted_at) > 200.0
        assert limiter.rate_limited(server.snapshot(), 0, 0, admitted_at=last.admitted_at)
        assert gate.pace is not None
        assert 10.0 <= gate.fastest() <= 12.0  # a whole-second reset for ~230 missing: within a fifth of 10/s
        assert gate.pace.rate(gate.rate() or 0.0) <= gate.fastest()

    clock.run(main)


def test_after_a_short_interval_refusal_the_next_request_waits_one_interval_of_the_pace() -> None:
    """The server's short-interval bucket is empty after a refusal, so the pace starts empty: the next request
    waits one interval of the new pace instead of going out at once into that bucket (a second 429)."""
    clock = FakeClock()
    server = Server(clock, {"requests": (600, 60.0)})

    async def main() -> None:
        limiter, last = await _a_second_into_the_ramp(clock, server)
        assert limiter.rate_limited(server.snapshot(), 0, 0, admitted_at=last.admitted_at)
        pace = limiter._gates["requests"].pace
        assert pace is not None
        refused_at = clock.now()
        following = await limiter.acquire(0, 0)
        assert following.admitted_at - refused_at >= 0.999 / pace.rate(10.0)
        assert following.admitted_at - refused_at <= 1.001 / pace.rate(10.0)

    clock.run(main)


async def _refused_once(
    limiter: Limiter, full: RateLimitSnapshot, refusal: RateLimitSnapshot, input_tokens: int, output_tokens: int
) -> None:
    """A full bucket's headers, then one request refused with `refusal`'s: handled by the limiter, no pause."""
    limiter.observe(full)
    refused = await limiter.acquire(input_tokens, output_tokens)
    refused.release()
    assert limiter.rate_limited(refusal, input_tokens, output_tokens, admitted_at=refused.admitted_at)


def test_a_429_from_an_empty_bucket_syncs_it_down_instead_of_pausing_the_run() -> None:
    """Our model said the output-token bucket had room, the server's headers say it is 6,000 in debt (empty, full
    again in 90 s at 200 per second): no shared pause; the bucket is synced to the debt, so the next request that
    needs 1,000 output tokens goes out after exactly 35 s of refill."""
    clock = FakeClock()
    full = RateLimitSnapshot(output_tokens=BucketView(limit=12_000, remaining=12_000, reset_in=0.0))
    debt = RateLimitSnapshot(output_tokens=BucketView(limit=12_000, remaining=0, reset_in=90.0))

    async def main() -> None:
        limiter = Limiter(clock=clock, minute=60.0, output_accounting="produced")
        await _refused_once(limiter, full, debt, 100, 1_000)
        assert limiter.cooldown_until == -math.inf
        await limiter.acquire(100, 1_000)
        assert clock.now() == 35.0

    clock.run(main)


def test_a_429_from_a_bucket_rounded_to_thousands_waits_for_what_is_surely_left() -> None:
    """The server refuses 1,024 reserved output tokens and says "1000" left, which means 500 to 1,499: the next
    request waits until even 500 has refilled to 1,024 (0.0786 s at 40,000 per 6 s). A mirror set to 1,000 lacked
    24 tokens (3.6 ms) and let the next request go as soon as anything else allowed, into the same refusal."""
    clock = FakeClock()
    full = RateLimitSnapshot(output_tokens=BucketView(40_000, 40_000, reset_in=0.0, remaining_error=501.0))
    short = RateLimitSnapshot(output_tokens=BucketView(40_000, 1_000, reset_in=5.0, remaining_error=501.0))

    async def main() -> None:
        limiter = Limiter(clock=clock, minute=6.0, output_accounting="reserved")
        await _refused_once(limiter, full, short, 10, 1_024)
        refused_at = clock.now()
        await limiter.acquire(10, 1_024)
        assert clock.now() - refused_at == pytest.approx((1_024 - 500) / (40_000 / 6.0), rel=1e-6)

    clock.run(main)


def test_with_limits_given_the_probe_goes_out_at_once() -> None:
    """30 requests per minute given: before any headers the client models one second of refill (half a request),
    but the probe, alone, is not held back by it; the next request waits for the probe's headers."""
    clock = FakeClock()
    server = Server(clock, {"requests": (30, 60.0)})

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=30), clock=clock)
        probe = await limiter.acquire(10, 10)
        assert clock.now() == 0.0
        server.admit({"requests": 1.0})
        with anyio.move_on_after(5.0):
            await limiter.acquire(10, 10)
            pytest.fail("a second request went out before the probe's headers")
        limiter.observe(server.snapshot(), since=probe.admitted_at)
        await limiter.acquire(10, 10)
        assert clock.now() == 5.0

    clock.run(main)
