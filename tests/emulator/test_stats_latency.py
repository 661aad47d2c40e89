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
from sluicegate.emulator.stats import ANSWER_LOG, TIMELINE_SECONDS, Stats

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


def test_stats_count_arrivals_per_second_and_log_each_answer() -> None:
    """The timeline counts requests by the second they arrived; `answers` keeps each answer's time and status."""
    clock = [2.5]
    stats = Stats(lambda: clock[0])
    stats.enter()
    stats.enter()
    clock[0] = 3.25
    stats.leave(529)
    stats.enter()
    clock[0] = 4.5
    stats.leave(200)
    stats.leave(200)
    data = stats.as_dict()
    assert [(row["second"], row["requests"], row["ok"]) for row in data["timeline"]] == [
        (2, 2, 0),
        (3, 1, 0),
        (4, 0, 2),
    ]
    assert data["answers"] == [[3.25, 529], [4.5, 200], [4.5, 200]]


def test_answer_log_is_bounded() -> None:
    """Only the newest ANSWER_LOG answers are kept, however long the server runs."""
    clock = [0.0]
    stats = Stats(lambda: clock[0])
    for i in range(ANSWER_LOG + 10):
        clock[0] = float(i)
        stats.leave(200)
    assert len(stats.answers) == ANSWER_LOG
    assert stats.answers[0] == (10.0, 200)


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
        endpoints = {"POST /v1/messages": {"200": 6, "429": 1}, "POST /v1/messages/batches": {"200": 1}}
        assert stats["endpoints"] == endpoints
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
        assert after["endpoints"] == {}
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


async def _wait_ended(client: anthropic.AsyncAnthropic, batch_id: str) -> int:
    """Poll until the batch ends; the number of retrieve calls made."""
    for polls in range(1, 301):  # bounded: the batches of these tests end within about a real second
        if (await client.messages.batches.retrieve(batch_id)).processing_status == "ended":
            return polls
        await anyio.sleep(0.01)
    raise AssertionError("batch did not end")


@pytest.mark.e2e
@pytest.mark.anyio
async def test_stats_count_token_counting_and_every_batch_route(emulator: Factory) -> None:
    """count_tokens and each batch route are counted by status; processed batch requests by outcome and tokens."""
    emu = emulator(minute=0.6, batch_seconds=30.0)  # a batch takes 0.3 real seconds
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as client:
        message = await client.messages.create(**_params())
        for text in ("a", "b"):
            await client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": text}])
        requests: Any = [{"custom_id": f"r{i}", "params": _params(f"b{i}")} for i in range(3)]
        requests.append({"custom_id": "bad", "params": {**_params(), "model": "claude-no-such-model"}})
        batch = await client.messages.batches.create(requests=requests)
        polls = await _wait_ended(client, batch.id)
        results = [r.result async for r in await client.messages.batches.results(batch.id)]  # retrieves first
        await client.messages.batches.list()
        await client.messages.batches.delete(batch.id)
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.batches.cancel(batch.id)
    stats = emu.stats()
    assert stats["status"] == {"200": 1}  # generation requests only, as before
    assert stats["endpoints"] == {
        "DELETE /v1/messages/batches/{batch_id}": {"200": 1},
        "GET /v1/messages/batches": {"200": 1},
        "GET /v1/messages/batches/{batch_id}": {"200": polls + 1},
        "GET /v1/messages/batches/{batch_id}/results": {"200": 1},
        "POST /v1/messages": {"200": 1},
        "POST /v1/messages/batches": {"200": 1},
        "POST /v1/messages/batches/{batch_id}/cancel": {"404": 1},
        "POST /v1/messages/count_tokens": {"200": 2},
    }
    assert stats["batch_requests"] == {"succeeded": 3, "errored": 1, "canceled": 0, "expired": 0}
    usages = [r.message.usage for r in results if r.type == "succeeded"]
    batch_in, batch_out = sum(u.input_tokens for u in usages), sum(u.output_tokens for u in usages)
    assert stats["batch_tokens"] == {
        "input_tokens": batch_in,
        "output_tokens": batch_out,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    assert batch_in > 0
    assert stats["input_tokens"] == message.usage.input_tokens + batch_in
    assert stats["output_tokens"] == message.usage.output_tokens + batch_out
    assert stats["in_flight"] == 0
    assert sum(s["ok"] for s in stats["timeline"]) == 1


@pytest.mark.e2e
@pytest.mark.anyio
async def test_stats_count_canceled_and_expired_batch_requests(emulator: Factory) -> None:
    """Requests a cancel or the deadline ends unprocessed are counted as canceled and expired, with no tokens."""
    # Requests fall due after 100,000 emulated seconds; a cancel ends a batch after 1, the deadline after 100 (1 s).
    emu = emulator(minute=0.6, batch_seconds=100_000.0, batch_deadline=100.0)
    requests: Any = [{"custom_id": f"r{i}", "params": _params()} for i in range(2)]
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as client:
        canceled = await client.messages.batches.create(requests=requests)
        expiring = await client.messages.batches.create(requests=requests[:1])
        await client.messages.batches.cancel(canceled.id)
        await _wait_ended(client, canceled.id)
        await _wait_ended(client, expiring.id)
    stats = emu.stats()
    assert stats["batch_requests"] == {"succeeded": 0, "errored": 0, "canceled": 2, "expired": 1}
    assert set(stats["batch_tokens"].values()) == {0}
    assert stats["input_tokens"] == stats["output_tokens"] == 0
    assert stats["endpoints"]["POST /v1/messages/batches"] == {"200": 2}
    assert stats["endpoints"]["POST /v1/messages/batches/{batch_id}/cancel"] == {"200": 1}
