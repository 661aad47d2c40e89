"""The engine against an in-process API on the fake clock: pacing, order, retries, aborts, budgets."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import httpx2
import pytest
from mock_anthropic import MockAPI, error

import sluicegate
from sluicegate import Engine, Limits, RetryPolicy
from sluicegate.testing import FakeClock
from user_clocks import FourTimesFaster


def _requests(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"r{i}",
            "model": "claude-haiku-4-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": f"prompt number {i}"}],
            **extra,
        }
        for i in range(n)
    ]


def _engine(api: MockAPI, clock: FakeClock, **kwargs: Any) -> Engine:
    return Engine(
        api_key="sk-test-secret", base_url="http://api.test", transport=api.transport(), clock=clock, seed=1, **kwargs
    )


def _map_on_a_fake_clock(api: MockAPI, n: int) -> list[sluicegate.Result]:
    """map() of n requests to `api` with a fresh fake clock."""
    clock = FakeClock()

    async def main() -> list[sluicegate.Result]:
        async with _engine(api, clock) as engine:
            return await engine.map(_requests(n))

    return clock.run(main)


def test_map_returns_input_order_with_each_result_matched_to_its_input() -> None:
    """map() gives results in input order and every answer echoes its own prompt."""
    api = MockAPI(rpm=600, latency=2.0)
    results = _map_on_a_fake_clock(api, 50)
    assert [r.custom_id for r in results] == [f"r{i}" for i in range(50)]
    assert all(r.ok and r.text == f"echo: prompt number {i}" for i, r in enumerate(results))
    assert api.statuses[429] == 0


def test_learns_rpm_from_headers_and_runs_at_the_ceiling_without_429s() -> None:
    """No limits given: the window (60 s) is learnt from the headers; the server's full bucket is spent at once and
    the rest paced at RPM 60, so 120 requests take about one minute, with no 429."""
    clock = FakeClock()
    api = MockAPI(rpm=60, latency=3.0)

    async def main() -> list[sluicegate.Result]:
        async with _engine(api, clock) as engine:
            results = await engine.map(_requests(120))
            stats = engine.statistics()
            rpm = stats.limiter.requests_per_minute
            # Whole-second reset timestamps: the learnt rate is never above the server's, and close to it.
            assert rpm is not None
            assert 59.0 <= rpm <= 60.0
            assert stats.succeeded == 120
            return results

    results = clock.run(main)
    assert all(r.ok for r in results)
    assert api.statuses[429] == 0
    # 60 from the full bucket (after the 3 s probe), then 1 per second, plus the last answer's 3 s.
    assert 62.0 <= clock.now() <= 68.0


def test_given_limits_pace_from_the_first_request() -> None:
    """With RPM given, the engine never exceeds it even before any header arrives."""
    clock = FakeClock()
    api = MockAPI(rpm=30, latency=0.5, headers=False)

    async def main() -> None:
        async with _engine(api, clock, limits=Limits(requests_per_minute=30)) as engine:
            results = await engine.map(_requests(30))
            assert all(r.ok for r in results)

    clock.run(main)
    assert api.statuses[429] == 0
    assert 57.0 <= clock.now() <= 61.0


def test_as_completed_yields_in_completion_order() -> None:
    """as_completed yields a fast request before a slow one that was sent earlier, each as it finishes."""
    clock = FakeClock()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        body = request.read()
        slow = b"slow" in body
        await anyio.sleep(10.0 if slow else 1.0)
        text = "slow" if slow else "fast"
        return httpx2.Response(
            200,
            json={"content": [{"type": "text", "text": text}], "usage": {"input_tokens": 1, "output_tokens": 1}},
        )

    def req(custom_id: str, content: str) -> dict[str, Any]:
        messages = [{"role": "user", "content": content}]
        return {"custom_id": custom_id, "model": "m", "max_tokens": 5, "messages": messages}

    async def main() -> list[tuple[str, float]]:
        # The engine sends one probe request alone until its answer arrives; the warm-up "w" is that probe, so
        # the slow "a" and the fast "b" are then in flight together, "a" sent first.
        reqs = [req("w", "fast"), req("a", "slow"), req("b", "fast")]
        engine = Engine(api_key="k", base_url="http://t", transport=httpx2.MockTransport(handler), clock=clock)
        async with engine:
            return [(r.custom_id, clock.now()) async for r in engine.as_completed(reqs)]

    done = clock.run(main)
    assert [custom_id for custom_id, _ in done] == ["w", "b", "a"]
    # "b" is yielded when it finishes, about a second after it was sent, long before "a" does at 1 + 10 s. (How
    # soon after the probe "b" goes out is the limiter's pacing, not what this test is about.)
    assert done[0][1] == 1.0
    assert 2.0 <= done[1][1] < 3.0
    assert done[2][1] == 11.0


def test_retries_429_500_529_and_resets_until_success() -> None:
    """Scripted 429, 500, 529 and a dropped connection are retried; nothing is lost."""
    clock = FakeClock()

    def script(n: int, body: dict[str, object]) -> httpx2.Response | None:
        if n == 2:
            return error(429, "rate_limit_error", **{"retry-after": "3"})
        if n == 3:
            return error(500, "api_error")
        if n == 4:
            return error(529, "overloaded_error", "Overloaded")
        if n == 5:
            raise httpx2.RemoteProtocolError("peer closed connection")
        return None

    api = MockAPI(latency=0.5, script=script)

    async def main() -> None:
        async with _engine(api, clock) as engine:
            results = await engine.map(_requests(6))
            assert [r.ok for r in results] == [True] * 6
            assert sum(r.attempts for r in results) == 10
            reasons = engine.statistics().failures_by_reason
            assert reasons["rate_limited"] == 1
            assert reasons["overloaded"] == 1

    clock.run(main)


def test_429_pauses_everyone_for_retry_after() -> None:
    """After a 429 with retry-after 20, no request is sent for 20 s."""
    clock = FakeClock()
    sent_at: list[float] = []

    def script(n: int, body: dict[str, object]) -> httpx2.Response | None:
        sent_at.append(anyio.current_time())
        if n == 3:
            return error(429, "rate_limit_error", **{"retry-after": "20"})
        return None

    api = MockAPI(latency=1.0, script=script)

    async def main() -> None:
        async with _engine(api, clock, max_concurrency=1) as engine:
            results = await engine.map(_requests(5))
            assert all(r.ok for r in results)

    clock.run(main)
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert max(gaps) >= 20.0
    assert sum(1 for g in gaps if g >= 20.0) == 1


def test_400_is_not_retried_and_does_not_stop_the_run() -> None:
    """A 400 fails that item only, after one attempt; the others succeed."""
    clock = FakeClock()

    def script(n: int, body: dict[str, object]) -> httpx2.Response | None:
        if "number 1" in str(body):
            return error(400, "invalid_request_error", "messages.0: bad", **{"x-should-retry": "false"})
        return None

    api = MockAPI(latency=0.2, script=script)

    async def main() -> None:
        async with _engine(api, clock) as engine:
            results = await engine.map(_requests(4))
            bad = results[1]
            assert bad.error is not None
            assert bad.error.kind == "invalid_request"
            assert bad.attempts == 1
            assert "messages.0: bad" in bad.error.message
            assert [r.ok for r in results] == [True, False, True, True]

    clock.run(main)


def test_the_probe_asks_for_a_stream_and_a_json_answer_to_it_is_read_as_json() -> None:
    """Only the first request (the probe, alone) asks for a stream, for its early headers; a server that answers it
    with one JSON body anyway gives the same result as a plain call."""
    api = MockAPI(rpm=600, latency=1.0)
    results = _map_on_a_fake_clock(api, 5)
    assert api.streamed == [True, False, False, False, False]
    assert all(r.ok and r.text == f"echo: prompt number {i}" for i, r in enumerate(results))
    assert results[0].usage == results[1].usage


def test_401_stops_the_run_after_one_request() -> None:
    """A bad key: the probe's 401 aborts the run; map fills the rest with aborted results."""
    clock = FakeClock()
    api = MockAPI(script=lambda n, body: error(401, "authentication_error", "invalid x-api-key"))

    async def main() -> None:
        async with _engine(api, clock) as engine:
            results = await engine.map(_requests(1000))
            assert len(results) == 1000
            assert results[0].error is not None
            assert results[0].error.kind == "authentication"
            assert all(r.error is not None and r.error.kind == "aborted" for r in results[1:])

    clock.run(main)
    assert api.requests == 1


def test_as_completed_raises_run_aborted_after_a_spend_cap() -> None:
    """A spend-cap 429 (no retry-after) is not retried and stops the run with RunAbortedError."""
    clock = FakeClock()

    def script(n: int, body: dict[str, object]) -> httpx2.Response | None:
        if n >= 3:
            resp = {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": "You have reached your API usage limits",
                    "details": {"error_code": "enforced_spend_limit_reached"},
                },
            }
            return httpx2.Response(429, json=resp)
        return None

    api = MockAPI(latency=1.0, script=script)

    async def main() -> None:
        async with _engine(api, clock) as engine:
            seen: list[sluicegate.Result] = []

            async def consume() -> None:
                async for result in engine.as_completed(_requests(500)):
                    seen.append(result)

            with pytest.raises(sluicegate.RunAbortedError, match="usage limits"):
                await consume()
            assert sum(r.ok for r in seen) == 2
            assert api.requests <= 8

    clock.run(main)


def test_max_cost_stops_admission_before_the_cap() -> None:
    """With a cost cap, admission stops before spent + reserved could pass it; the error says so."""
    clock = FakeClock()
    api = MockAPI(latency=1.0, output_tokens=16)

    async def main() -> None:
        # haiku 4.5: $1 in / $5 out per MTok; worst case per request ~ 16 out + ~5 in tokens ~ $0.000085
        async with _engine(api, clock, max_cost=0.001) as engine:
            with pytest.raises(sluicegate.BudgetExceededError, match="cost cap"):
                async for _ in engine.as_completed(_requests(100)):
                    pass
            stats = engine.statistics()
            assert 0 < stats.cost <= 0.001
            assert stats.succeeded < 100

    clock.run(main)


def test_create_raises_the_final_error() -> None:
    """create() returns a Result on success and raises BadRequestError on a 400."""
    clock = FakeClock()

    def script(n: int, body: dict[str, object]) -> httpx2.Response | None:
        return error(404, "not_found_error", "model: nope") if body.get("model") == "nope" else None

    api = MockAPI(latency=0.1, script=script)

    async def main() -> None:
        async with _engine(api, clock, default_params={"max_tokens": 8}) as engine:
            ok = await engine.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
            assert ok.text == "echo: hi"
            with pytest.raises(sluicegate.BadRequestError, match="model: nope"):
                await engine.create(model="nope", messages=[{"role": "user", "content": "hi"}])

    clock.run(main)


def test_attempt_limit_gives_up_with_the_last_reason() -> None:
    """An item that always gets 529 fails after max_attempts with kind overloaded."""
    clock = FakeClock()
    api = MockAPI(script=lambda n, body: error(529, "overloaded_error", "Overloaded"))

    async def main() -> None:
        async with _engine(api, clock, retry=RetryPolicy(max_attempts=3, max_delay=2.0)) as engine:
            (result,) = await engine.map(_requests(1))
            assert result.error is not None
            assert result.error.kind == "overloaded"
            assert result.attempts == 3

    clock.run(main)
    assert api.requests == 3


def test_lazy_consumption_of_a_huge_generator() -> None:
    """A generator of 10 million items is consumed lazily: stopping early reads only a bounded prefix."""
    clock = FakeClock()
    api = MockAPI(latency=1.0)
    taken = 0

    def gen() -> Any:
        nonlocal taken
        for req in iter(int, 1):  # endless
            taken += 1
            yield {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": str(req)}]}

    async def main() -> None:
        async with _engine(api, clock, max_concurrency=8) as engine:
            count = 0
            async for _ in engine.as_completed(gen()):
                count += 1
                if count == 100:
                    break

    clock.run(main)
    assert taken < 100 + 2 * 8 + 5


def test_the_key_never_appears_in_repr_or_results() -> None:
    """The API key is not in the engine's repr nor in any result line."""
    clock = FakeClock()
    api = MockAPI(script=lambda n, body: error(401, "authentication_error", "invalid x-api-key"))

    async def main() -> None:
        engine = _engine(api, clock)
        assert "sk-test-secret" not in repr(engine)
        async with engine:
            results = await engine.map(_requests(3))
        assert all("sk-test-secret" not in str(r.to_batch_line()) for r in results)

    clock.run(main)
    assert api.keys == {"sk-test-secret"}


def test_fail_fast_stops_at_the_first_failed_item() -> None:
    """map(fail_fast=True) raises RunAbortedError naming the failed item instead of returning results."""
    clock = FakeClock()

    def script(n: int, body: dict[str, object]) -> httpx2.Response | None:
        return error(400, "invalid_request_error", "bad prompt") if "number 2" in str(body) else None

    api = MockAPI(latency=1.0, script=script)

    async def main() -> None:
        async with _engine(api, clock, max_concurrency=1) as engine:
            with pytest.raises(sluicegate.RunAbortedError, match="r2"):
                await engine.map(_requests(50), fail_fast=True)

    clock.run(main)
    assert api.requests < 10


def test_deadline_gives_up_and_cooldown_events_are_emitted() -> None:
    """A per-item deadline ends retries of an always-429 item; each 429 emits a CooldownStarted event."""
    clock = FakeClock()
    events: list[object] = []
    api = MockAPI(script=lambda n, body: error(429, "rate_limit_error", **{"retry-after": "10"}))

    async def main() -> None:
        retry = RetryPolicy(deadline=35.0)
        async with _engine(api, clock, retry=retry, sinks=[events.append]) as engine:
            (result,) = await engine.map(_requests(1))
            assert result.error is not None
            assert result.error.kind == "rate_limited"

    clock.run(main)
    cooldowns = [e for e in events if isinstance(e, sluicegate.CooldownStarted)]
    # 429s at about 0, 10, 20 and 30 s: the last would pass the 35 s deadline, so the item gives up there, but
    # that 429 still pauses everyone else.
    assert len(cooldowns) == 4
    assert api.requests == 4


def test_without_headers_concurrency_stops_growing_when_the_server_queues() -> None:
    """A header-less server with 8 slots: rising latency stops and reverses AIMD growth instead of queueing
    hundreds (slow start overshoots once, by about one round trip)."""
    clock = FakeClock()
    api = MockAPI(latency=1.0, headers=False, slots=8)

    async def main() -> None:
        async with _engine(api, clock) as engine:
            results = await engine.map(_requests(400))
            assert all(r.ok for r in results)
            assert engine.statistics().limiter.concurrency_limit <= 24

    clock.run(main)
    assert api.max_in_flight <= 40
    assert clock.now() <= 400 / 8 * 1.2  # still close to the server's capacity of 8 per second


def test_without_headers_429s_halve_the_concurrency() -> None:
    """A header-less server that answers 429 above 6 in flight: AIMD settles below it, nothing fails."""
    clock = FakeClock()
    state = {"busy": 0}

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if state["busy"] >= 6:
            return httpx2.Response(
                429, json={"type": "error", "error": {"type": "rate_limit_error", "message": "busy"}}
            )
        state["busy"] += 1
        try:
            await anyio.sleep(1.0)
        finally:
            state["busy"] -= 1
        return httpx2.Response(
            200, json={"content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 3, "output_tokens": 2}}
        )

    async def main() -> None:
        engine = Engine(
            api_key="k",
            base_url="http://t",
            transport=httpx2.MockTransport(handler),
            clock=clock,
            seed=2,
            retry=RetryPolicy(initial_delay=0.1, max_delay=1.0),
        )
        async with engine:
            results = await engine.map(_requests(200))
            assert all(r.ok for r in results)
            rejected = engine.statistics().failures_by_reason.get("rate_limited", 0)
            assert rejected < 60

    clock.run(main)


def test_the_engine_paces_by_the_users_own_clock() -> None:
    """RPM 60 on a user's clock four times faster than the loop: ten requests take 9 s of pacing plus one answer's
    latency (1/64 loop s, 1/16 s of that clock), all on that clock. Waits for capacity timed on the loop's
    clock would run four times too long between the engine's own wake-ups and end later."""
    loop = FakeClock()
    user = FourTimesFaster(loop)
    api = MockAPI(latency=1 / 64, headers=False)

    async def main() -> list[sluicegate.Result]:
        async with Engine(
            api_key="sk-test-secret",
            base_url="http://api.test",
            transport=api.transport(),
            clock=user,
            seed=1,
            limits=Limits(requests_per_minute=60),
        ) as engine:
            return await engine.map(_requests(10))

    results = loop.run(main)
    assert all(r.ok for r in results)
    assert (user.now(), loop.now()) == (9.0625, 2.265625)
