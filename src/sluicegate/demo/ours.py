"""sluicegate itself as one more system in the comparison: the Engine over the same documents."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sluicegate import Engine, Limits, SystemClock
from sluicegate.demo.peers import Document, Recorder

__all__ = ["run_sluicegate"]


async def run_sluicegate(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    limits: tuple[int, int, int] | None = None,
    max_concurrency: int | None = None,
    minute: float | None = None,
    output_accounting: str | None = None,
    samples: list[tuple[float, int, int]] | None = None,
    **_: Any,
) -> None:
    """Run the documents through `Engine.as_completed`; `limits` = (rpm, itpm, otpm) or None to learn them.

    `minute` overrides the window the engine learns from the headers (None: learn it); `output_accounting` is how
    the server counts output tokens ("produced" or "reserved"; None: the provider's default).

    When `samples` is given, (seconds, in_flight, concurrency_limit) is appended ten times a second.
    """
    given: Limits | None = None
    if limits is not None:
        rpm, itpm, otpm = limits
        given = Limits(requests_per_minute=rpm, input_tokens_per_minute=itpm, output_tokens_per_minute=otpm)
    engine_kwargs: dict[str, Any] = {"provider": "anthropic", "api_key": api_key, "base_url": base_url}
    engine_kwargs["limits"] = given
    if max_concurrency is not None:
        engine_kwargs["max_concurrency"] = max_concurrency
    if minute is not None:
        engine_kwargs["minute"] = minute
    if output_accounting is not None:
        engine_kwargs["output_accounting"] = output_accounting
    async with Engine(**engine_kwargs) as engine:
        sampler = asyncio.create_task(_sample(engine, rec.started, samples)) if samples is not None else None
        try:
            async for result in engine.as_completed([dict(doc) for doc in docs]):
                if result.ok:
                    rec.ok(result.custom_id, result.text, result.attempts)
                else:
                    error = result.error
                    rec.fail(result.custom_id, f"{error.kind}: {error.message}" if error else "error", result.attempts)
        finally:
            if sampler is not None:
                sampler.cancel()


async def _sample(engine: Engine, started: float, samples: list[tuple[float, int, int]]) -> None:
    clock = SystemClock()
    for _ in range(100_000):  # bounded: ~3 hours at 10 Hz
        stats = engine.statistics()
        samples.append((clock.now() - started, stats.in_flight, stats.limiter.concurrency_limit))
        await clock.sleep(0.1)
