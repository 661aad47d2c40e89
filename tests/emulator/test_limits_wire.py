"""Rate-limit behaviour as clients see it: header formats, burst cap, output accounting, spend cap."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anthropic
import anyio
import httpx2
import openai
import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.prompt import count_tokens

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Factory = Callable[..., RunningEmulator]
MODEL = "claude-haiku-4-5"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
H = "anthropic-ratelimit-"


def _params(text: str = "x", max_tokens: int = 50) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}


async def _statuses(emu: RunningEmulator, params: dict[str, Any], n: int) -> list[httpx2.Response]:
    """Fire `n` identical requests at once; the responses in completion order."""
    out: list[httpx2.Response] = []
    async with httpx2.AsyncClient(
        base_url=emu.base_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}, timeout=30
    ) as http:

        async def one() -> None:
            out.append(await http.post("/v1/messages", json=params))

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
    return out


async def test_header_formats_rounding_reset_and_retry_after(emulator: Factory) -> None:
    """Token remaining is rounded to thousands, requests remaining exact, resets RFC 3339, retry-after = ceil."""
    # A real minute: input refills 100 tokens per second, slow enough that timing noise cannot matter.
    emu = emulator(rpm=50, itpm=6_000, otpm=8_000, minute=60.0)
    params = _params("a" * 19_972)
    assert count_tokens(params) == 5_000
    second = _params("b" * 19_692)
    assert count_tokens(second) == 4_930
    async with httpx2.AsyncClient(
        base_url=emu.base_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    ) as http:
        ok = await http.post("/v1/messages", json=params)
        assert ok.status_code == 200
        usage = ok.json()["usage"]
        assert ok.headers[H + "requests-remaining"] == "49"
        assert ok.headers[H + "input-tokens-remaining"] == "1000"
        # 8000 minus the output produced (under 100 tokens) rounds back to 8000.
        assert usage["output_tokens"] < 100
        assert ok.headers[H + "output-tokens-remaining"] == "8000"
        assert ok.headers[H + "tokens-limit"] == "14000"
        assert ok.headers[H + "tokens-remaining"] == "9000"
        for name in ("requests", "input-tokens", "output-tokens", "tokens"):
            assert RFC3339.match(ok.headers[H + f"{name}-reset"])
        reset = datetime.fromisoformat(ok.headers[H + "input-tokens-reset"]).timestamp()
        # Full again after 5000 tokens at 100/s: 50 s from now, truncated to the second.
        assert time.time() + 45 <= reset <= time.time() + 51

        limited = await http.post("/v1/messages", json=second)
        assert limited.status_code == 429
        # 3930 tokens missing at 100 per second is 39.3 s: rounded up, never down or to nearest.
        assert limited.headers["retry-after"] == "40"
        assert limited.headers["x-should-retry"] == "true"
        assert limited.headers[H + "input-tokens-remaining"] == "1000"
        body = limited.json()
        assert body["error"]["type"] == "rate_limit_error"
        assert "6,000 input tokens per minute" in body["error"]["message"]


async def test_burst_cap_limits_simultaneous_requests_below_the_minute(emulator: Factory) -> None:
    """With burst=5 only 5 of 10 simultaneous requests pass although the minute bucket holds 60."""
    emu = emulator(rpm=60, burst=5, minute=60.0)  # the burst refills one request per real second
    started = time.monotonic()
    responses = await _statuses(emu, _params(), 10)
    refill = int(time.monotonic() - started)  # requests the burst bucket regained while the 10 were served
    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert 5 <= len(ok) <= 5 + refill
    assert len(ok) + len(limited) == 10
    for r in limited:
        assert r.headers["retry-after"] == "1"
        # The minute bucket is far from empty: the short-interval cap refused these.
        assert int(r.headers[H + "requests-remaining"]) >= 50


@pytest.mark.parametrize(("mode", "admitted", "stream_remaining"), [("reserved", 2, "5000"), ("produced", 3, "8000")])
async def test_output_accounting_modes(emulator: Factory, mode: str, admitted: int, stream_remaining: str) -> None:
    """Reserved mode holds max_tokens of OTPM per request in flight; produced mode charges only real output."""
    # A one-hour minute freezes refill during the test; the latency keeps the first requests in flight.
    emu = emulator(otpm=8_000, minute=3600.0, output_accounting=mode, first_token_latency=1.0)
    params = _params(max_tokens=3_000)
    responses = await _statuses(emu, params, 3)
    assert sum(r.status_code == 200 for r in responses) == admitted
    for r in responses:
        if r.status_code == 429:
            assert "output tokens per minute" in r.json()["error"]["message"]
    emu.reset()
    async with (
        anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as client,
        client.messages.stream(**params) as stream,
    ):
        # Stream headers are sent at admission, before any output is produced.
        assert stream.response.headers[H + "output-tokens-remaining"] == stream_remaining
        await stream.get_final_message()


async def test_spend_cap_anthropic(emulator: Factory) -> None:
    """The spend-cap 429 has no retry-after and names enforced_spend_limit_reached, on every attempt."""
    emu = emulator(spend_cap=True)
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as client:
        for _ in range(2):
            with pytest.raises(anthropic.RateLimitError) as exc_info:
                await client.messages.create(**_params())
            err = exc_info.value
            assert "retry-after" not in err.response.headers
            assert err.request_id is not None
            assert err.request_id.startswith("req_")
            assert isinstance(err.body, dict)
            assert err.body["error"]["type"] == "rate_limit_error"
            assert err.body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert emu.stats()["status"] == {"429": 2}


async def test_spend_cap_openai(emulator: Factory) -> None:
    """OpenAI's spend cap is a 429 insufficient_quota with x-should-retry false."""
    emu = emulator(spend_cap=True)
    async with openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as exc_info:
            await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    err = exc_info.value
    assert err.code == "insufficient_quota"
    assert err.type == "insufficient_quota"
    assert err.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in err.response.headers


async def test_count_tokens_has_its_own_request_limit(emulator: Factory) -> None:
    """count_tokens uses a separate RPM: exhausting it leaves Messages untouched, and the reverse."""
    emu = emulator(rpm=2, count_tokens_rpm=3, minute=3600.0)
    counted: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as client:
        for _ in range(2):
            await client.messages.create(**_params())
        for _ in range(3):
            assert (await client.messages.count_tokens(**counted)).input_tokens == count_tokens(counted)
        with pytest.raises(anthropic.RateLimitError) as exc_info:
            await client.messages.count_tokens(**counted)
        assert int(exc_info.value.response.headers["retry-after"]) >= 1
        assert exc_info.value.response.headers["x-should-retry"] == "true"
        assert "token counting" in str(exc_info.value)
        with pytest.raises(anthropic.RateLimitError) as messages_limited:
            await client.messages.create(**_params())
        assert "2 requests per minute" in str(messages_limited.value)


async def test_resets_follow_the_compressed_minute_for_both_providers(emulator: Factory) -> None:
    """With a 6-second minute, a bucket missing M of L requests is full in M x 6 / L real seconds: the Anthropic
    reset timestamp (whole seconds, truncated) and the OpenAI duration both say so, so a client can learn the
    window from them without being told the minute."""
    emu = emulator(rpm=120, itpm=10_000_000, otpm=10_000_000, minute=6.0, first_token_latency=0.01)  # 20 per s
    for path, flavor in (("/v1/messages", "anthropic"), ("/v1/chat/completions", "openai")):
        # Each provider's route has its own key, so each starts from a full bucket.
        headers = {"x-api-key": flavor, "authorization": f"Bearer {flavor}", "anthropic-version": "2023-06-01"}
        body: dict[str, Any] = _params()
        async with httpx2.AsyncClient(base_url=emu.base_url, headers=headers, timeout=30) as http:

            async def one(client: httpx2.AsyncClient, url: str, payload: dict[str, Any]) -> None:
                assert (await client.post(url, json=payload)).status_code == 200

            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(one, http, path, body)
            response = await http.post(path, json=body)
            now = time.time()
        assert response.status_code == 200
        if flavor == "anthropic":
            missing = 120 - int(response.headers[H + "requests-remaining"])
            full_in = datetime.fromisoformat(response.headers[H + "requests-reset"]).timestamp() - now
            assert missing * 0.05 - 1.1 <= full_in <= missing * 0.05 + 0.1
        else:
            missing = 120 - int(response.headers["x-ratelimit-remaining-requests"])
            reset = response.headers["x-ratelimit-reset-requests"]
            seconds = int(reset[:-2]) / 1000 if reset.endswith("ms") else int(reset[:-1])
            assert missing * 0.05 - 0.1 <= seconds <= missing * 0.05 + 1.0
        assert 20 <= missing <= 101  # 101 taken, minus the refill while they were served (a few seconds at most)


@pytest.mark.parametrize(("counted", "remaining"), [("end", "8000"), ("admission", "4000")])
async def test_headers_are_counted_at_the_end_or_at_admission(emulator: Factory, counted: str, remaining: str) -> None:
    """`headers_counted`: an answer's output headers show the refund of the unused reservation only when counted
    at its end; counted at admission, they show the bucket as the limit check left it (the whole reservation out)."""
    emu = emulator(otpm=8_000, minute=3600.0, output_accounting="reserved", headers_counted=counted)
    async with httpx2.AsyncClient(
        base_url=emu.base_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}, timeout=10
    ) as http:
        answer = await http.post("/v1/messages", json=_params(max_tokens=4_000))
        assert answer.status_code == 200
        produced = answer.json()["usage"]["output_tokens"]
        assert produced <= 64  # so the end's count rounds to 8,000, never to 4,000
        assert answer.headers[H + "output-tokens-remaining"] == remaining
