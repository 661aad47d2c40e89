"""Counters the emulator exposes at GET /_emulator/stats."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

# Seconds of timeline kept: memory stays bounded however long the emulator runs.
TIMELINE_SECONDS = 3600
# Answers whose time and status are kept (the newest): enough for a benchmark's run, bounded for a long-lived server.
ANSWER_LOG = 100_000

MESSAGES = "POST /v1/messages"
BATCH_OUTCOMES = ("succeeded", "errored", "canceled", "expired")
_TOKEN_FIELDS = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_input_tokens", "cache_read_tokens"),
    ("cache_creation_input_tokens", "cache_write_tokens"),
)


class Stats:
    """Counts per status, endpoint and fault, token totals, peak concurrency and a per-second timeline.

    `status`, `in_flight`, `peak_concurrent` and the timeline cover the generation requests (/v1/messages and
    /v1/chat/completions); `endpoints` counts every API request by route and status. Token totals include
    what batches processed; `batch_tokens` is that part of them.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.status: Counter[int] = Counter()
        self.endpoints: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.batch_requests: Counter[str] = Counter()
        self.batch_tokens: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.timeline: dict[int, list[int]] = {}
        self.answers: deque[tuple[float, int]] = deque(maxlen=ANSWER_LOG)

    def enter(self) -> None:
        """A request started."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self._slot(int(self._now()))[2] += 1

    def leave(self, status: int, endpoint: str = MESSAGES) -> None:
        """A generation request to `endpoint` ended with `status`."""
        self.in_flight -= 1
        self.status[status] += 1
        self.endpoints[endpoint][status] += 1
        now = self._now()
        self.answers.append((now, status))
        slot = self._slot(int(now))
        if status == 200:
            slot[0] += 1
        elif status == 429:
            slot[1] += 1

    def _slot(self, second: int) -> list[int]:
        """The timeline's counters (ok, rate_limited, requests) of `second`."""
        slot = self.timeline.get(second)
        if slot is None:
            slot = self.timeline[second] = [0, 0, 0]
            if len(self.timeline) > TIMELINE_SECONDS:
                # Dicts keep insertion order and seconds only grow, so the first key is the oldest.
                del self.timeline[next(iter(self.timeline))]
        return slot

    def count(self, endpoint: str, status: int) -> None:
        """A request to a non-generation endpoint (count_tokens, batches) ended with `status`."""
        self.endpoints[endpoint][status] += 1

    def batch_result(self, result: Mapping[str, Any]) -> None:
        """One batch request reached its outcome; a succeeded one adds its message's usage to the token totals."""
        self.batch_requests[str(result.get("type"))] += 1
        message = result.get("message")
        usage = message.get("usage") if isinstance(message, Mapping) else None
        if not isinstance(usage, Mapping):
            return
        for field, attr in _TOKEN_FIELDS:
            tokens = usage.get(field)
            if isinstance(tokens, int):
                setattr(self, attr, getattr(self, attr) + tokens)
                self.batch_tokens[field] += tokens

    def as_dict(self) -> dict[str, Any]:
        """The JSON of GET /_emulator/stats."""
        return {
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "endpoints": {
                name: {str(k): v for k, v in sorted(counts.items())} for name, counts in sorted(self.endpoints.items())
            },
            "batch_requests": {outcome: self.batch_requests[outcome] for outcome in BATCH_OUTCOMES},
            "batch_tokens": {field: self.batch_tokens[field] for field, _ in _TOKEN_FIELDS},
            "faults": dict(self.faults),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            "in_flight": self.in_flight,
            "peak_concurrent": self.peak_in_flight,
            "timeline": [
                {"second": s, "ok": v[0], "rate_limited": v[1], "requests": v[2]}
                for s, v in sorted(self.timeline.items())
            ],
            "answers": [[round(t, 4), status] for t, status in self.answers],
        }


async def leave_after(body: AsyncIterable[T], stats: Stats, status: int, endpoint: str = MESSAGES) -> AsyncIterator[T]:
    """Yield a streamed body, counting the request as in flight until the stream ends (or breaks)."""
    try:
        async for chunk in body:
            yield chunk
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
        stats.leave(status, endpoint)
