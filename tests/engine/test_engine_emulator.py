"""The engine against the real emulator on loopback: limits learnt from headers, faults, bad keys, order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx2
import pytest

import sluicegate
from sluicegate import Engine, RetryPolicy, Timeouts
from sluicegate.emulator import FaultSpec, RunningEmulator
from sluicegate.emulator.prompt import prompt_tag

pytestmark = pytest.mark.e2e

MODEL = "claude-haiku-4-5"


def _requests(n: int, *, words: int = 5, max_tokens: int = 32) -> list[dict[str, Any]]:
    filler = " ".join(["lorem"] * words)
    return [
        {
            "custom_id": f"item-{i}",
            "model": MODEL,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"Summarise ticket {i}: {filler}"}],
        }
        for i in range(n)
    ]


def _check_matched(results: list[sluicegate.Result], requests: list[dict[str, Any]]) -> None:
    """Every result is a success whose text carries its own input's prompt tag."""
    assert len(results) == len(requests)
    by_id = {r.custom_id: r for r in results}
    assert len(by_id) == len(requests)
    for req in requests:
        result = by_id[req["custom_id"]]
        assert result.ok, result.error
        params = {k: v for k, v in req.items() if k != "custom_id"}
        assert result.text.startswith(f"[{prompt_tag(params)}] ")


def _run(emu: RunningEmulator, requests: list[dict[str, Any]], minute: float, **kwargs: Any) -> list[sluicegate.Result]:
    async def main() -> list[sluicegate.Result]:
        async with Engine(api_key="sk-emulated", base_url=emu.base_url, minute=minute, **kwargs) as engine:
            with anyio.fail_after(60):
                return await engine.map(requests)

    return anyio.run(main)


@pytest.mark.parametrize(
    ("limits", "words", "max_tokens"),
    [
        pytest.param({"rpm": 3000, "itpm": 10_000_000, "otpm": 10_000_000}, 5, 32, id="rpm-bound"),
        pytest.param({"rpm": 100_000, "itpm": 60_000, "otpm": 10_000_000}, 150, 32, id="itpm-bound"),
        pytest.param({"rpm": 100_000, "itpm": 10_000_000, "otpm": 12_000}, 5, 64, id="otpm-bound"),
    ],
)
def test_learns_limits_and_finishes_without_loss(
    emulator: Callable[..., RunningEmulator], limits: dict[str, int], words: int, max_tokens: int
) -> None:
    """With no limits given, 300 requests under a binding limit all succeed, matched, with few 429s."""
    minute = 3.0
    emu = emulator(
        minute=minute,
        first_token_latency=0.05,
        per_token_latency=0.001,
        seed=3,
        min_output_tokens=20,
        max_output_tokens=60,
        **limits,
    )
    requests = _requests(300, words=words, max_tokens=max_tokens)
    results = _run(emu, requests, minute)
    _check_matched(results, requests)
    status = emu.stats()["status"]
    assert status.get("200") == 300
    assert status.get("429", 0) <= 15  # "few": under 5% of the requests


def test_nothing_lost_under_faults(emulator: Callable[..., RunningEmulator]) -> None:
    """5% 529, 2% 500 and 2% connection resets: every item still succeeds exactly once."""
    faults = (
        FaultSpec(kind="overloaded", probability=0.05),
        FaultSpec(kind="api_error", probability=0.02),
        FaultSpec(kind="reset", probability=0.02),
    )
    emu = emulator(minute=3.0, rpm=6000, first_token_latency=0.02, seed=5, faults=faults)
    requests = _requests(200)
    results = _run(emu, requests, 3.0, retry=RetryPolicy(initial_delay=0.05, max_delay=0.5))
    _check_matched(results, requests)
    assert sum(r.attempts for r in results) > 200  # faults really happened and were retried


def test_bad_key_stops_the_run_after_one_request(emulator: Callable[..., RunningEmulator]) -> None:
    """A 401 to the (streamed) probe aborts the run: one request reaches the server and every item says why."""
    emu = emulator(minute=3.0, invalid_keys=frozenset({"sk-bad"}))

    async def main() -> list[sluicegate.Result]:
        async with Engine(api_key="sk-bad", base_url=emu.base_url, minute=3.0) as engine:
            return await engine.map(_requests(500))

    results = anyio.run(main)
    assert len(results) == 500
    assert results[0].error is not None
    assert results[0].error.kind == "authentication"
    assert all(r.error is not None for r in results)
    status = emu.stats()["status"]
    assert sum(status.values()) == 1


class _Recording(httpx2.AsyncBaseTransport):
    """A loopback transport that notes whether each request asked for a stream."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.streamed: list[bool] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.streamed.append(json.loads(await request.aread()).get("stream") is True)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_the_streamed_probe_gives_the_same_result_as_a_plain_call(emulator: Callable[..., RunningEmulator]) -> None:
    """The probe goes out as a stream (headers at its first token) and is reassembled into the very message and usage
    that the same prompt gets from a plain call."""
    emu = emulator(minute=3.0, first_token_latency=0.01, per_token_latency=0.001, seed=7)
    transport = _Recording()
    requests = [{**_requests(1, words=20, max_tokens=48)[0], "custom_id": f"same-{i}"} for i in range(3)]

    async def main() -> list[sluicegate.Result]:
        async with Engine(api_key="k", base_url=emu.base_url, transport=transport) as engine:
            return await engine.map(requests)

    probe, plain, _ = anyio.run(main)
    assert transport.streamed == [True, False, False]
    assert probe.ok, probe.error
    assert plain.ok, plain.error
    assert probe.message is not None
    assert plain.message is not None
    assert {**probe.message, "id": ""} == {**plain.message, "id": ""}
    assert probe.usage == plain.usage


def test_streaming_and_as_completed(emulator: Callable[..., RunningEmulator]) -> None:
    """stream() yields text deltas whose join is the final text; as_completed yields every item once."""
    emu = emulator(minute=3.0, first_token_latency=0.01, per_token_latency=0.001)

    async def main() -> None:
        async with Engine(api_key="k", base_url=emu.base_url, minute=3.0, timeouts=Timeouts(total=20)) as engine:
            params = _requests(1)[0]
            params.pop("custom_id")
            async with engine.stream(**params) as s:
                pieces = [text async for text in s.text_stream]
                result = await s.result()
            assert len(pieces) > 1
            assert "".join(pieces) == result.text
            assert result.text.startswith(f"[{prompt_tag(params)}] ")
            assert result.usage.output_tokens > 0
            ids = [r.custom_id async for r in engine.as_completed(_requests(40))]
            assert sorted(ids) == sorted(f"item-{i}" for i in range(40))

    anyio.run(main)


def test_streamed_requests_survive_truncation(emulator: Callable[..., RunningEmulator]) -> None:
    """Long outputs go out as streams; truncated streams and mid-stream errors are retried, nothing lost."""
    faults = (FaultSpec(kind="truncate", probability=0.2), FaultSpec(kind="stream_error", probability=0.2))
    emu = emulator(minute=3.0, seed=9, faults=faults)
    requests = _requests(60, max_tokens=16_000)  # above the threshold where the engine streams
    results = _run(emu, requests, 3.0, retry=RetryPolicy(initial_delay=0.05, max_delay=0.5))
    _check_matched(results, requests)
    injected = emu.stats()["faults"]
    assert injected.get("truncate", 0) > 0
    assert injected.get("stream_error", 0) > 0
    # Every injected fault cost one failed attempt that was retried: the results account for each of them.
    assert sum(r.attempts - 1 for r in results) >= injected["truncate"] + injected["stream_error"]


def test_sync_run_inside_a_running_event_loop(emulator: Callable[..., RunningEmulator]) -> None:
    """sluicegate.run works from plain code and from inside a running loop (as in a Jupyter cell)."""
    emu = emulator(minute=3.0)
    requests = _requests(10)
    direct = sluicegate.run(requests, api_key="k", base_url=emu.base_url, minute=3.0)
    _check_matched(direct, requests)

    async def notebook_cell() -> list[sluicegate.Result]:
        return sluicegate.run(requests, api_key="k", base_url=emu.base_url, minute=3.0)

    _check_matched(anyio.run(notebook_cell), requests)


def test_sync_run_uses_uvloop_without_touching_the_loop_policy(emulator: Callable[..., RunningEmulator]) -> None:
    """sluicegate.run runs its own loop on uvloop (installed here) and leaves the process's loop policy alone."""
    uvloop = pytest.importorskip("uvloop", reason="uvloop is not built for this platform")
    emu = emulator(minute=3.0)
    requests = _requests(3)
    loops: list[type] = []

    async def source() -> AsyncIterator[dict[str, Any]]:
        loops.append(type(asyncio.get_running_loop()))
        for request in requests:
            yield request

    policy = asyncio.get_event_loop_policy()
    _check_matched(sluicegate.run(source(), api_key="k", base_url=emu.base_url, minute=3.0), requests)
    assert loops == [uvloop.Loop]
    assert asyncio.get_event_loop_policy() is policy
    assert not isinstance(policy, uvloop.EventLoopPolicy)


def test_openai_provider_against_the_emulator(emulator: Callable[..., RunningEmulator]) -> None:
    """The OpenAI provider runs chat completions (JSON and stream) and learns x-ratelimit limits."""
    emu = emulator(minute=3.0, rpm=3000)

    async def main() -> None:
        async with Engine(provider="openai", api_key="k", base_url=emu.openai_base_url, minute=3.0) as engine:
            reqs = [
                {
                    "custom_id": f"o{i}",
                    "model": "gpt-4o-mini",
                    "max_tokens": 32,
                    "messages": [{"role": "user", "content": f"hello {i}"}],
                }
                for i in range(20)
            ]
            results = await engine.map(reqs)
            assert all(r.ok for r in results)
            assert all(r.usage.output_tokens > 0 for r in results)
            assert engine.statistics().limiter.requests_per_minute == 3000 * 60 / 3.0  # per real minute
            async with engine.stream(
                model="gpt-4o-mini", max_tokens=32, messages=[{"role": "user", "content": "stream me"}]
            ) as s:
                text = "".join([t async for t in s.text_stream])
            assert text == (await s.result()).text

    anyio.run(main)


def test_idle_timeout_retries_a_hung_connection(emulator: Callable[..., RunningEmulator]) -> None:
    """A request the server never answers hits the idle timeout and is retried; nothing is lost."""
    emu = emulator(minute=3.0, seed=2, faults=(FaultSpec(kind="hang", probability=0.1),))
    requests = _requests(30)
    results = _run(
        emu, requests, 3.0, timeouts=Timeouts(idle=0.5, total=5.0), retry=RetryPolicy(initial_delay=0.01, max_delay=0.1)
    )
    _check_matched(results, requests)
    assert any(r.attempts > 1 for r in results)


def test_cancelling_a_run_leaks_no_task_and_no_slot(emulator: Callable[..., RunningEmulator]) -> None:
    """Cancelling map() mid-flight frees every limiter slot and leaves no task behind."""
    import asyncio

    emu = emulator(minute=3.0, first_token_latency=0.5)

    async def main() -> None:
        async with Engine(api_key="k", base_url=emu.base_url, minute=3.0) as engine:
            with anyio.move_on_after(1.0):
                await engine.map(_requests(200))
            assert engine.limiter.statistics().in_flight == 0
            assert engine.statistics().in_flight == 0
        assert len(asyncio.all_tasks()) == 1  # only this test's own task

    anyio.run(main)


def test_a_streamed_line_reports_its_start_well_before_its_end(emulator: Callable[..., RunningEmulator]) -> None:
    """A request with `"stream": true` is streamed: ResponseStarted comes at its first event, long before the
    answer ends; an unstreamed one starts when it arrives whole. Each result is the same message either way."""
    emu = emulator(first_token_latency=0.05, per_token_latency=0.02, min_output_tokens=30, max_output_tokens=30)
    events: list[Any] = []
    requests = _requests(2, max_tokens=64)
    requests[0]["stream"] = True
    results = _run(emu, requests, 60.0, sinks=[events.append], stream=False)
    started = {e.custom_id: e.at for e in events if isinstance(e, sluicegate.ResponseStarted)}
    ended = {e.result.custom_id: e.at for e in events if isinstance(e, sluicegate.RequestCompleted)}
    assert ended["item-0"] - started["item-0"] >= 0.3  # 30 tokens at 20 ms each still to come after the start
    assert ended["item-1"] - started["item-1"] < 0.1
    assert [r.ok for r in results] == [True, True]
    assert results[0].message is not None
    assert results[0].message["type"] == "message"
