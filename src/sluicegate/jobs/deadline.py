"""A batch job with a deadline: when to give up on the batch, and sending what it did not finish online.

The rule (pure, time passed in): cancel once `now + cancel_allowance + online time of the unfinished items` reaches
the deadline. The online time is the binding rate limit's (requests, input or output tokens per minute) plus one
answer's latency, times a safety factor. After the cancel the job waits until every batch has ended, so an item
the batch finished while the cancel took effect is kept from the batch and never sent again; only items the
batch never processed (canceled, hence not billed) go online. Nothing is paid twice and nothing is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx2

from .._events import EventSink
from .._models import RequestItem, Result
from ..engine import Engine
from ..limits.limiter import Limits
from ..pricing import PriceTable
from .planner import format_duration
from .store import JobStore

__all__ = ["DeadlinePolicy", "OnlinePace", "deadline_instant", "deadline_setting", "finish_online"]


def deadline_setting(deadline: float | None) -> dict[str, str]:
    """The job setting a deadline makes (none without one): a resume with another --deadline is refused like any
    changed setting, naming both values and the command that keeps the stored one."""
    return {} if deadline is None else {"deadline": format_duration(deadline)}


def deadline_instant(store: JobStore, proposed: float) -> float:
    """When the job must end, on the wall clock: `proposed` on the job's first run, the stored instant on every
    resume (a resumed run does not get the whole duration again)."""
    return float(store.db.remember("deadline_at", repr(proposed)))


@dataclass(frozen=True, slots=True, kw_only=True)
class OnlinePace:
    """How fast the online route goes: per-minute limits (Anthropic's published Tier 1 unless given), the real
    seconds a rate-limit minute lasts (60; less for an emulator in compressed time) and one answer's latency."""

    requests_per_minute: float = 50.0
    input_tokens_per_minute: float = 30_000.0
    output_tokens_per_minute: float = 8_000.0
    minute: float = 60.0
    latency: float = 30.0

    def seconds(self, items: int, input_tokens: float, output_tokens: float) -> float:
        """Real seconds to send `items` online (0 for none)."""
        if items <= 0:
            return 0.0
        minutes = max(
            items / self.requests_per_minute,
            input_tokens / self.input_tokens_per_minute,
            output_tokens / self.output_tokens_per_minute,
        )
        return minutes * self.minute + self.latency


@dataclass(kw_only=True)
class DeadlinePolicy:
    """Decides, poll by poll, whether the batches must be cancelled for the job to end by `deadline_at`.

    Times are seconds on one clock (the caller's). Average tokens per item are learnt from what was submitted.
    """

    deadline_at: float
    pace: OnlinePace
    cancel_allowance: float = 120.0  # a cancel takes effect within this (the API's "canceling" phase)
    safety: float = 1.25
    _items: int = field(default=0, init=False)
    _input: int = field(default=0, init=False)
    _output: int = field(default=0, init=False)

    def submitted(self, input_tokens: int, output_tokens: int) -> None:
        """One item went into a batch with these estimated tokens (input, expected output)."""
        self._items += 1
        self._input += input_tokens
        self._output += output_tokens

    def online_seconds(self, unfinished: int) -> float:
        """Seconds to send `unfinished` average items online, with the safety factor."""
        if unfinished <= 0:
            return 0.0
        per = max(1, self._items)
        tokens_in, tokens_out = unfinished * self._input / per, unfinished * self._output / per
        return self.safety * self.pace.seconds(unfinished, tokens_in, tokens_out)

    def cancel_at(self, unfinished: int) -> float:
        """The latest moment to cancel so that `unfinished` items still end online before the deadline."""
        return self.deadline_at - self.cancel_allowance - self.online_seconds(unfinished)

    def should_cancel(self, now: float, unfinished: int) -> bool:
        return unfinished > 0 and now >= self.cancel_at(unfinished)

    def next_poll(self, now: float, unfinished: int, interval: float) -> float:
        """Seconds to the next poll: the interval, cut short so the cancel moment is not overslept."""
        return max(0.0, min(interval, self.cancel_at(unfinished) - now))


async def finish_online(
    items: AsyncIterator[RequestItem],
    record: Callable[[Result], None],
    *,
    provider: Literal["anthropic", "openai"],
    api_key: str,
    base_url: str,
    limits: Limits | None,
    prices: PriceTable,
    minute: float,
    transport: httpx2.AsyncBaseTransport | None = None,
    max_cost: float | None = None,
    sinks: Sequence[EventSink] = (),
) -> None:
    """Send the items through the engine at the online price, recording each result as it comes. A stop of the
    whole run (a bad key, a spend cap) propagates as RunAbortedError; the items not finished stay pending.
    `max_cost` caps what these items may cost (BudgetExceededError when the next would not fit)."""
    engine = Engine(
        provider=provider,
        api_key=api_key,
        base_url=base_url,
        limits=limits,
        prices=prices,
        minute=minute,
        transport=transport,
        max_cost=max_cost,
        sinks=sinks,
    )
    async with engine:
        async for result in engine.as_completed(items):
            record(result)
