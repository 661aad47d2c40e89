"""An in-process Anthropic stand-in for engine tests on the fake clock: buckets, latency, scripted failures."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import httpx2

from sluicegate.limits.bucket import TokenBucket

Script = Callable[[int, dict[str, object]], httpx2.Response | None]


def _reset(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prompt_of(body: dict[str, object]) -> str:
    messages = body.get("messages")
    assert isinstance(messages, list)
    content = messages[-1]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


@dataclass
class MockAPI:
    """Answers `echo: <prompt>` after `latency` virtual seconds; enforces RPM/ITPM/OTPM like the real API.

    `script(n, body)` may return a response for the n-th request (1-based) to inject failures.
    Input tokens are counted as len(prompt) // 4 + 1; output tokens as `output_tokens`.
    """

    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    latency: float = 1.0
    output_tokens: int = 10
    headers: bool = True
    slots: int | None = None  # a server that runs this many at once and queues the rest (like a local vLLM)
    script: Script | None = None
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    keys: set[str] = field(default_factory=set)
    streamed: list[bool] = field(default_factory=list)  # whether each request asked for a stream (answered in JSON)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _slots: anyio.CapacityLimiter | None = None

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def _bucket(self, name: str, limit: int) -> TokenBucket:
        if name not in self._buckets:
            self._buckets[name] = TokenBucket(limit, now=anyio.current_time())
        return self._buckets[name]

    def _limit_headers(self, now: float) -> dict[str, str]:
        out: dict[str, str] = {}
        if not self.headers:
            return out
        for name, limit in (("requests", self.rpm), ("input-tokens", self.itpm), ("output-tokens", self.otpm)):
            if limit is None:
                continue
            b = self._bucket(name, limit)
            remaining = max(0, int(b.level(now)))
            if name != "requests":
                remaining = int(round(remaining, -3))
            out[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            out[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
            out[f"anthropic-ratelimit-{name}-reset"] = _reset(b.full_in(now))
        return out

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        n = self.requests
        self.keys.add(request.headers.get("x-api-key", ""))
        body = json.loads(request.content)
        self.streamed.append(body.get("stream") is True)
        if self.script is not None:
            scripted = self.script(n, body)
            if scripted is not None:
                self.statuses[scripted.status_code] += 1
                return scripted
        now = anyio.current_time()
        in_tokens = len(prompt_of(body)) // 4 + 1
        for name, limit, amount in (
            ("requests", self.rpm, 1),
            ("input-tokens", self.itpm, in_tokens),
            ("output-tokens", self.otpm, 1),
        ):
            if limit is None:
                continue
            wait = self._bucket(name, limit).wait_time(amount, now)
            if wait > 0:
                self.statuses[429] += 1
                headers = {"retry-after": str(max(1, int(wait + 0.999))), "x-should-retry": "true"}
                headers.update(self._limit_headers(now))
                error = {"type": "error", "error": {"type": "rate_limit_error", "message": f"rate limited: {name}"}}
                return httpx2.Response(429, json=error, headers=headers)
        if self.rpm is not None:
            self._bucket("requests", self.rpm).take(1, now)
        if self.itpm is not None:
            self._bucket("input-tokens", self.itpm).take(in_tokens, now)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.slots is None:
                await anyio.sleep(self.latency)
            else:
                if self._slots is None:
                    self._slots = anyio.CapacityLimiter(self.slots)
                async with self._slots:
                    await anyio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        out = min(self.output_tokens, int(body.get("max_tokens", 1)))  # type: ignore[call-overload]
        if self.otpm is not None:
            self._bucket("output-tokens", self.otpm).take(out, anyio.current_time())
        self.statuses[200] += 1
        message = {
            "id": f"msg_{n}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [{"type": "text", "text": f"echo: {prompt_of(body)}"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": in_tokens, "output_tokens": out},
        }
        return httpx2.Response(200, json=message, headers=self._limit_headers(anyio.current_time()))


def error(status: int, error_type: str, message: str = "boom", **headers: str) -> httpx2.Response:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return httpx2.Response(status, json=body, headers=headers)
