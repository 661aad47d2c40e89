"""Seeded latency, the slow-first-byte fault, GET /_emulator/stats and POST /_emulator/reset."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import httpx2
import pytest

from sluicegate.emulator import EmulatorConfig, FaultSpec, RunningEmulator, latency
from sluicegate.emulator.state import EmulatorState
from sluicegate.emulator.stats import TIMELINE_SECONDS, Stats

Factory = Callable[..., RunningEmulator]
MODEL = "claude-haiku-4-5"
SYSTEM = "lorem " * 4000  # above the model's minimum cacheable length
REMAINING_OUT = "anthropic-ratelimit-output-tokens-remaining"


def _params(text: str = "x") -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 40, "messages": [{"role": "user", "content": text}]}


def _draws(**config: Any) -> list[float]:
    state = EmulatorState(EmulatorConfig(**config))
    return [latency.first_token(state) for _ in range(200)]


def test_jitter_is_seeded_and_bounded() -> None:
    """The same seed gives the same latencies; all stay within base * (1 +- jitter); another seed differs."""
    first = _draws(seed=5, first_token_latency=1.0, jitter=0.5)
    assert first == _draws(seed=5, first_token_latency=1.0, jitter=0.5)
    assert first != _draws(seed=6, first_token_latency=1.0, jitter=0.5)
    assert all(0.5 <= d <= 1.5 for d in first)
    assert len(set(first)) > 100


def test_heavy_tail_is_ten_times_slower_and_seeded() -> None:
    """heavy_tail=p makes a seeded share of responses exactly 10x slower; p=1 makes all of them."""
    assert set(_draws(first_token_latency=0.2, heavy_tail=1.0)) == {2.0}
    some = _draws(seed=3, first_token_latency=0.2, heavy_tail=0.25)
    assert some == _draws(seed=3, first_token_latency=0.2, heavy_tail=0.25)
    slow = sum(d > 1.0 for d in some)
    assert set(some) == {0.2, 2.0}
    assert 20 <= slow <= 80  # a quarter of 200, give or take what this seed draws
    assert _draws(first_token_latency=0.0, jitter=0.5, heavy_tail=1.0) == [0.0] * 200


def test_stats_timeline_is_bounded() -> None:
    """The per-second timeline keeps only the newest TIMELINE_SECONDS seconds, however long the server runs."""
    clock = [0.0]
    stats = Stats(lambda: clock[0])
    for second in range(TIMELINE_SECONDS + 50):
        clock[0] = float(second)
        stats.leave(200 if second % 2 else 429)
    timeline = stats.as_dict()["timeline"]
    assert len(timeline) == TIMELINE_SECONDS
    assert timeline[0]["second"] == 50
    assert timeline[-1]["second"] == TIMELINE_SECONDS + 49
    assert stats.status[200] + stats.status[429] == TIMELINE_SECONDS + 50


@pytest.mark.e2e
@pytest.mark.anyio
async def test_slow_fault_delays_the_first_byte(emulator: Factory) -> None:
    """The slow fault keeps a stream silent for `delay` seconds after the status line, then answers normally."""
    emu = emulator(faults=(FaultSpec(kind="slow", probability=1.0, delay=0.4),))
    async with httpx2.AsyncClient(
        base_url=emu.base_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}, timeout=10
    ) as http:
        started = time.monotonic()
        async with http.stream("POST", "/v1/messages", json={**_params(), "stream": True}) as resp:
            assert resp.status_code == 200
            chunks = resp.aiter_bytes()
            first = await chunks.__anext__()
            waited = time.monotonic() - started
            rest = b"".join([c async for c in chunks])
        assert first.startswith(b"event: message_start")
        assert waited >= 0.4
        assert b"event: message_stop" in first + rest
        started = time.monotonic()
        plain = await http.post("/v1/messages", json={**_params(), "max_tokens": 1})  # one token: 0.5 s
        assert plain.status_code == 200
        assert time.monotonic() - started >= 0.4
    assert emu.stats()["faults"] == {"slow": 2}


@pytest.mark.e2e
@pytest.mark.anyio
async def test_stats_contents_and_reset(emulator: Factory) -> None:
    """Stats count statuses, tokens, cache use, peak concurrency and a timeline; reset forgets all of it."""
    emu = emulator(rpm=6, minute=3600.0, first_token_latency=0.6, seed=2)
    cached = {**_params(), "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]}
    usages: list[Any] = []
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as client:

        async def one(params: dict[str, Any]) -> None:
            with contextlib.suppress(anthropic.RateLimitError):
                usages.append((await client.messages.create(**params)).usage)

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(one, _params(f"q{i}"))
        await one(cached)
        await one(cached)
        await one(_params("over the limit"))  # the 7th request of an rpm-6 minute
        requests: Any = [{"custom_id": "a", "params": _params()}]
        batch = await client.messages.batches.create(requests=requests)
        stats = emu.stats()
        assert stats["status"] == {"200": 6, "429": 1}
        assert stats["input_tokens"] == sum(u.input_tokens for u in usages)
        assert stats["output_tokens"] == sum(u.output_tokens for u in usages)
        assert stats["cache_creation_input_tokens"] == usages[4].cache_creation_input_tokens > 4000
        assert stats["cache_read_input_tokens"] == usages[5].cache_read_input_tokens > 4000
        assert stats["peak_concurrent"] == 4
        assert stats["in_flight"] == 0
        assert stats["faults"] == {}
        timeline = stats["timeline"]
        assert sum(s["ok"] for s in timeline) == 6
        assert sum(s["rate_limited"] for s in timeline) == 1

        emu.reset()
        after = emu.stats()
        assert after["status"] == {}
        assert after["timeline"] == []
        assert after["input_tokens"] == after["output_tokens"] == after["peak_concurrent"] == 0
        raw = await client.messages.with_raw_response.create(**cached)
        assert raw.headers["anthropic-ratelimit-requests-remaining"] == "5"  # buckets are full again
        assert (await raw.parse()).usage.cache_creation_input_tokens > 4000  # the cache was emptied
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.batches.retrieve(batch.id)


@pytest.mark.e2e
@pytest.mark.anyio
async def test_open_streams_count_in_flight_and_hang_up_settles_output(emulator: Factory) -> None:
    """Streams count as in flight until they end; a client hanging up mid-stream frees its OTPM reservation."""
    emu = emulator(otpm=8_000, minute=3600.0, output_accounting="reserved", per_token_latency=0.5)
    params = {**_params(), "max_tokens": 3_000, "stream": True}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    async with httpx2.AsyncClient(base_url=emu.base_url, headers=headers, timeout=10) as http:
        async with (
            http.stream("POST", "/v1/messages", json=params) as one,
            http.stream("POST", "/v1/messages", json=params) as two,
        ):
            assert one.headers[REMAINING_OUT] == "5000"
            assert two.headers[REMAINING_OUT] == "2000"
            # Keep the iterators referenced: a collected one closes its response, which hangs up early.
            bodies = [one.aiter_bytes(), two.aiter_bytes()]
            for body in bodies:
                assert (await body.__anext__()).startswith(b"event: message_start")
            assert emu.stats()["in_flight"] == 2
        for _ in range(100):  # bounded: the server notices the hang-ups within a few polls
            if emu.stats()["in_flight"] == 0:
                break
            await anyio.sleep(0.02)
        stats = emu.stats()
        assert stats["in_flight"] == 0
        assert stats["peak_concurrent"] == 2
        assert stats["status"] == {"200": 2}
        plain = await http.post("/v1/messages", json={**_params(), "max_tokens": 1})  # one token: 0.5 s
        # Both 3000-token reservations came back (minus the little output streamed); leaking them would leave 2000.
        assert plain.headers[REMAINING_OUT] == "8000"
