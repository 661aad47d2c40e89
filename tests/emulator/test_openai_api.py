"""The OpenAI surface over a real loopback server, driven by the official `openai` SDK.

The chat route is served on its own with a small backend (a real token bucket for requests, a deterministic
text) in place of the emulator core, so these tests pin the OpenAI wire format independently of the core.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import anyio
import httpx2
import openai
import pytest
from starlette.applications import Starlette

from sluicegate.emulator import EmulatorConfig
from sluicegate.emulator.bucket import Bucket
from sluicegate.emulator.openai_api import Completion, Throttled, openai_routes
from sluicegate.emulator.openai_format import format_duration
from sluicegate.emulator.prompt import prompt_tag
from sluicegate.emulator.state import EmulatorState

pytestmark = pytest.mark.e2e


class _Admitted:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers
        self.finished: list[int] = []

    def headers(self) -> dict[str, str]:
        return self._headers

    def finish(self, output_tokens: int) -> None:
        self.finished.append(output_tokens)


class _Backend:
    """A request bucket per emulated minute of `minute` real seconds, and a 12-token deterministic answer."""

    def __init__(self, rpm: int, minute: float, invalid: frozenset[str], spend_cap: bool) -> None:
        self.rng = random.Random(1)
        self._rpm = rpm
        self._scale = 60.0 / minute
        self._t0 = time.monotonic()
        self._bucket = Bucket(rpm, period=60.0, now=0.0)
        self._invalid = invalid
        self._spend_cap = spend_cap

    def _now(self) -> float:
        return (time.monotonic() - self._t0) * self._scale

    def key_status(self, key: str) -> str | None:
        if key in self._invalid:
            return "invalid"
        return "quota" if self._spend_cap else None

    def admit(self, key: str, model: str, input_tokens: int, max_tokens: int) -> _Admitted:
        now = self._now()
        ok = self._bucket.wait_time(1, now) == 0
        if ok:
            self._bucket.take(1, now)
        level = max(0, int(self._bucket.level(now)))
        headers = {
            "x-ratelimit-limit-requests": str(self._rpm),
            "x-ratelimit-remaining-requests": str(level),
            "x-ratelimit-reset-requests": format_duration(self._bucket.full_in(now) / self._scale),
        }
        if not ok:
            wait = self._bucket.wait_time(1, now) / self._scale
            raise Throttled(max(1, int(wait + 0.999)), "requests", headers)
        return _Admitted(headers)

    def generate(self, params: Mapping[str, Any]) -> Completion:
        words = [f"[{prompt_tag(params)}]", *(f"w{i}" for i in range(11))]
        n = min(len(words), int(params["max_tokens"]))
        return Completion(" ".join(words[:n]), n, "end_turn" if n == len(words) else "max_tokens")

    def delays(self, output_tokens: int) -> tuple[float, float]:
        return 0.0, 0.0

    def prompt_cache(self, key: str, prompt: Mapping[str, Any]) -> tuple[int, Callable[[], None]]:
        return 0, lambda: None

    def fault(self) -> None:
        return None


@pytest.fixture
def chat_server(serve: Callable[[Any], str]) -> Callable[..., Any]:
    """Factory: the OpenAI routes alone (a scripted backend in place of the core) on a loopback server."""

    def start(
        rpm: int = 1000, minute: float = 60.0, invalid_keys: frozenset[str] = frozenset(), spend_cap: bool = False
    ) -> Any:
        backend = _Backend(rpm, minute, invalid_keys, spend_cap)
        app = Starlette(routes=openai_routes(EmulatorState(EmulatorConfig()), backend=backend))
        return SimpleNamespace(openai_base_url=serve(app) + "/v1")

    return start


MESSAGES: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]


def _client(emu: Any, key: str = "test") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key=key, max_retries=0)


def test_chat_completion(chat_server: Callable[..., Any]) -> None:
    """A plain call returns a ChatCompletion whose text carries the prompt tag and whose usage adds up."""
    emu = chat_server()

    async def main() -> None:
        async with _client(emu) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=50
            )
            completion = raw.parse()
            assert raw.headers["x-ratelimit-limit-requests"]
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert completion.object == "chat.completion"
        assert completion.id.startswith("chatcmpl-")
        text = completion.choices[0].message.content or ""
        assert text.startswith(f"[{prompt_tag({'messages': MESSAGES})}] ")
        assert completion.choices[0].finish_reason in ("stop", "length")
        usage = completion.usage
        assert usage is not None
        assert usage.prompt_tokens > 0
        assert 0 < usage.completion_tokens <= 50
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    anyio.run(main)


def test_stream_with_usage(chat_server: Callable[..., Any]) -> None:
    """A stream rebuilds the same text as the JSON call and ends with a usage chunk with no choices."""
    emu = chat_server()

    async def main() -> None:
        async with _client(emu) as client:
            plain = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=40)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                max_tokens=40,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [c async for c in stream]
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == plain.choices[0].message.content
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == [plain.choices[0].finish_reason]
        last = chunks[-1]
        assert last.choices == []
        assert last.usage is not None
        assert plain.usage is not None
        assert last.usage.completion_tokens == plain.usage.completion_tokens
        assert all(c.usage is None for c in chunks[:-1])

    anyio.run(main)


def test_stream_wire_ends_with_done(chat_server: Callable[..., Any]) -> None:
    """On the wire the stream is data-only lines, terminated by `data: [DONE]`."""
    emu = chat_server()

    async def main() -> None:
        async with httpx2.AsyncClient() as http:
            body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 10, "stream": True}
            r = await http.post(
                f"{emu.openai_base_url}/chat/completions", json=body, headers={"authorization": "Bearer k"}
            )
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in r.text.split("\n\n") if e]
        assert all(e.startswith("data: ") for e in events)
        assert events[-1] == "data: [DONE]"
        assert "event:" not in r.text

    anyio.run(main)


def test_rate_limit_error(chat_server: Callable[..., Any]) -> None:
    """An empty request bucket gives openai.RateLimitError with code rate_limit_exceeded and retry-after."""
    emu = chat_server(rpm=2, minute=60.0)

    async def main() -> None:
        async with _client(emu) as client:
            for _ in range(2):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
            with pytest.raises(openai.RateLimitError) as info:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
        err = info.value
        assert err.code == "rate_limit_exceeded"
        assert int(err.response.headers["retry-after"]) >= 1
        assert err.response.headers["x-ratelimit-remaining-requests"] == "0"

    anyio.run(main)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_bad_request_body(chat_server: Callable[..., Any], body: dict[str, Any], param: str) -> None:
    """Invalid bodies get a 400 with the OpenAI error shape naming the parameter."""
    emu = chat_server()

    async def main() -> None:
        async with httpx2.AsyncClient() as http:
            r = await http.post(
                f"{emu.openai_base_url}/chat/completions", json=body, headers={"authorization": "Bearer k"}
            )
        assert r.status_code == 400
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
        assert error["param"] == param

    anyio.run(main)


def test_missing_key_is_authentication_error(chat_server: Callable[..., Any]) -> None:
    """No key at all is a 401 in the OpenAI error shape."""
    emu = chat_server()

    async def main() -> None:
        async with httpx2.AsyncClient() as http:
            body = {"model": "gpt-4o-mini", "messages": MESSAGES}
            r = await http.post(f"{emu.openai_base_url}/chat/completions", json=body)
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "invalid_request_error"

    anyio.run(main)


def test_invalid_key_and_spend_cap(chat_server: Callable[..., Any]) -> None:
    """A rejected key is AuthenticationError invalid_api_key; the spend cap is a 429 insufficient_quota, no retry."""
    emu = chat_server(invalid_keys=frozenset({"bad"}))
    capped = chat_server(spend_cap=True)

    async def main() -> None:
        async with _client(emu, key="bad") as client:
            with pytest.raises(openai.AuthenticationError) as auth:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert auth.value.code == "invalid_api_key"
        async with _client(capped) as client:
            with pytest.raises(openai.RateLimitError) as quota:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert quota.value.code == "insufficient_quota"
        assert quota.value.response.headers["x-should-retry"] == "false"
        assert "retry-after" not in quota.value.response.headers

    anyio.run(main)
