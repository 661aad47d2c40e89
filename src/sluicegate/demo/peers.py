"""The naive approaches people copy from tutorials, written faithfully, shared by `sluicegate demo` and the bench.

Each peer takes documents (Messages params with a `custom_id`) and writes an outcome per document into a
`Recorder` as it finishes, so a peer stopped at a time cap still reports what it got. None of them is "fixed":
they behave the way the snippets they come from behave, which is the point of the comparison; a document the
snippet drops without an error gets no outcome at all, and the scorer counts it as missing.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic

__all__ = [
    "PEERS",
    "Outcome",
    "Recorder",
    "gather_all",
    "semaphore_backoff",
    "semaphore_retry_after",
    "sequential",
]

Document = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One document's final answer text or error, and the attempts the peer itself made (None if hidden by the SDK)."""

    custom_id: str
    text: str | None
    error: str | None
    attempts: int | None
    at: float  # seconds since the peer started


@dataclass
class Recorder:
    """Collects outcomes as they finish; thread-safe because the sequential peer runs in a worker thread.

    `listener`, when given, is called with each outcome as it is recorded (live progress).
    """

    started: float = field(default_factory=time.monotonic)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    listener: Callable[[Outcome], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, custom_id: str, text: str, attempts: int | None) -> None:
        self._put(Outcome(custom_id, text, None, attempts, time.monotonic() - self.started))

    def fail(self, custom_id: str, error: BaseException | str, attempts: int | None) -> None:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self._put(Outcome(custom_id, None, message[:300], attempts, time.monotonic() - self.started))

    def _put(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes[outcome.custom_id] = outcome
        if self.listener is not None:
            self.listener(outcome)


def split(doc: Document) -> tuple[str, dict[str, Any]]:
    """A document's custom_id and the Messages parameters it carries."""
    params = dict(doc)
    return str(params.pop("custom_id")), params


def _text(message: Any) -> str:
    return "".join(getattr(block, "text", "") for block in message.content)


async def send_and_record(client: anthropic.AsyncAnthropic, doc: Document, rec: Recorder) -> None:
    """One document through an `AsyncAnthropic` client, recorded as its answer's text or its API error."""
    custom_id, params = split(doc)
    try:
        message = await client.messages.create(**params)
    except anthropic.APIError as exc:
        rec.fail(custom_id, exc, None)
    else:
        rec.ok(custom_id, _text(message), None)


def sequential(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    deadline: float,
    request_timeout: float = 60.0,
    **_: Any,
) -> None:
    """A for-loop over the sync client (SDK default retries): the first thing everyone writes."""
    client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=request_timeout)
    try:
        for doc in docs:
            if time.monotonic() >= deadline:  # the demo's time cap; the tutorial loop has none
                return
            custom_id, params = split(doc)
            try:
                message = client.messages.create(**params)
            except anthropic.APIError as exc:
                rec.fail(custom_id, exc, None)
            else:
                rec.ok(custom_id, _text(message), None)
    finally:
        client.close()


async def gather_all(
    docs: Sequence[Document], rec: Recorder, *, base_url: str, api_key: str, request_timeout: float = 60.0, **_: Any
) -> None:
    """Everything at once with `asyncio.gather` on `AsyncAnthropic`, relying on the SDK's default retries."""
    client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=request_timeout)
    try:
        await asyncio.gather(*(send_and_record(client, doc, rec) for doc in docs))
    finally:
        await client.close()


async def semaphore_backoff(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    time_scale: float = 1.0,
    concurrency: int = 10,
    max_retries: int = 5,
    request_timeout: float = 60.0,
    **_: Any,
) -> None:
    """The classic pattern: `Semaphore(10)`, SDK retries off, retry RateLimitError after `2**attempt` + jitter.

    As in the snippet, a document still refused after `max_retries` attempts falls out of the loop with no answer
    and no error: it is missing, not failed. Other API errors are reported as failures.

    `time_scale` shrinks the sleeps by the same factor the emulator compresses its minute, so the pattern keeps
    its real-world proportions.
    """

    def pause(attempt: int, _: anthropic.RateLimitError) -> float:
        return (float(2**attempt) + random.random()) * time_scale

    await _semaphore_retry(docs, rec, base_url, api_key, request_timeout, concurrency, max_retries, pause)


async def semaphore_retry_after(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    concurrency: int = 20,
    max_retries: int = 5,
    request_timeout: float = 60.0,
    **_: Any,
) -> None:
    """`Semaphore(20)`, SDK retries off, on RateLimitError sleep what the `retry-after` header says.

    Out of retries, a document is dropped without an error, as in the snippet (see `semaphore_backoff`).
    """

    def pause(_: int, exc: anthropic.RateLimitError) -> float:
        return float(exc.response.headers.get("retry-after", "1"))

    await _semaphore_retry(docs, rec, base_url, api_key, request_timeout, concurrency, max_retries, pause)


async def _semaphore_retry(
    docs: Sequence[Document],
    rec: Recorder,
    base_url: str,
    api_key: str,
    request_timeout: float,
    concurrency: int,
    max_retries: int,
    pause: Callable[[int, anthropic.RateLimitError], float],
) -> None:
    """The snippet both semaphore peers share: SDK retries off, a RateLimitError sleeps `pause(attempt, error)`
    and tries again; out of retries the document is dropped without an error, as the snippet's loop drops it."""
    client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=request_timeout)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(doc: Document) -> None:
        custom_id, params = split(doc)
        async with semaphore:
            for attempt in range(max_retries):
                try:
                    message = await client.messages.create(**params)
                except anthropic.RateLimitError as exc:
                    if attempt == max_retries - 1:
                        return  # the loop ends and returns None: the document is silently dropped
                    await asyncio.sleep(pause(attempt, exc))
                except anthropic.APIError as exc:
                    rec.fail(custom_id, exc, attempt + 1)
                    return
                else:
                    rec.ok(custom_id, _text(message), attempt + 1)
                    return

    try:
        await asyncio.gather(*(one(doc) for doc in docs))
    finally:
        await client.close()


# name -> (label, function); the sequential one is synchronous and runs in a worker thread.
PEERS: dict[str, tuple[str, Any]] = {
    "sequential": ("for loop", sequential),
    "gather": ("asyncio.gather", gather_all),
    "semaphore10": ("Semaphore(10)+2^n", semaphore_backoff),
    "semaphore20": ("Semaphore(20)+retry-after", semaphore_retry_after),
}
