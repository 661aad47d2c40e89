"""The flex route (OpenAI `service_tier: "flex"`): batch prices on synchronous calls, with a standard fallback.

Every request is first sent with `service_tier: "flex"` by an engine that does not retry: flex capacity is best
effort, so a refusal (a 429 "resource unavailable"), an overload, a server error or an answer slower than the
flex timeout (too slow for the deadline) sends that one request again at once through the standard engine,
which retries as usual. A flex refusal is not billed, so nothing is paid twice; a request the flex engine
refused as invalid is final (the standard tier would refuse it too). The flex engine prices at the batch rate
(`PriceTable.at_batch_rate`), so its results, the live progress and a `--max-cost` cap count flex answers at what
they are billed; the standard engine shares that one cap (`Engine.share_cost_cap`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from .._events import Event, EventSink, RequestCompleted
from .._models import RequestItem, Result
from ..engine import Engine
from ..retry import RetryPolicy

__all__ = ["FLEX_RETRY", "falls_back", "flex_options", "flex_results", "flex_sinks", "flex_timeout_for"]

# One attempt: anything but a final refusal goes to the standard tier instead of being retried on flex.
FLEX_RETRY = RetryPolicy(max_attempts=1)
# Error kinds after which the standard tier is tried: capacity, overload, server trouble, too slow.
_FALL_BACK = frozenset({"rate_limited", "overloaded", "server", "transport", "timeout"})


def _flex(item: RequestItem) -> RequestItem:
    return dataclasses.replace(item, params={**item.params, "service_tier": "flex"})


def falls_back(result: Result) -> bool:
    """Flex did not serve this item (capacity, overload, server trouble, too slow): the standard tier takes it."""
    return result.error is not None and result.error.kind in _FALL_BACK


def flex_sinks(sinks: Sequence[EventSink]) -> list[EventSink]:
    """The flex engine's sinks: an item flex hands to the standard tier is not finished, so its RequestCompleted is
    not passed on (the progress, the spend holds and the warm-up wait for the standard tier's)."""

    def only_final(sink: EventSink) -> EventSink:
        def forward(event: Event) -> None:
            if not (isinstance(event, RequestCompleted) and falls_back(event.result)):
                sink(event)

        return forward

    return [only_final(sink) for sink in sinks]


async def flex_results(flex: Engine, standard: Engine, items: AsyncIterator[RequestItem]) -> AsyncIterator[Result]:
    """Final results of `items`: flex answers (priced by the flex engine's table, the batch rate), and standard
    answers for those flex did not serve. `flex` must not retry (FLEX_RETRY); both engines must be open."""
    originals: dict[str, RequestItem] = {}
    send, receive = anyio.create_memory_object_stream[RequestItem](max_buffer_size=1024)
    out_send, out_receive = anyio.create_memory_object_stream[Result](max_buffer_size=1024)

    async def flexed() -> AsyncIterator[RequestItem]:
        async for item in items:
            originals[item.custom_id] = item
            yield _flex(item)

    async def run_flex() -> None:
        async with send:
            async for result in flex.as_completed(flexed()):
                original = originals.pop(result.custom_id)
                if falls_back(result):
                    await send.send(original)
                    continue
                await out_send.send(result)

    async def run_standard() -> None:
        async with receive:
            async for result in standard.as_completed(receive):
                await out_send.send(result)

    async def both() -> None:
        async with out_send, anyio.create_task_group() as tg:
            tg.start_soon(run_flex)
            tg.start_soon(run_standard)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(both)
            async with out_receive:
                async for result in out_receive:
                    yield result
    except BaseExceptionGroup as group:
        # The run's own stop (the cost cap, a bad key) reaches the caller as itself, as from one engine.
        raise _first_error(group) from None


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first plain error in a (nested) exception group, else the group itself (a cancellation, an exit)."""
    for exc in group.exceptions:
        found = _first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, Exception) and not isinstance(found, BaseExceptionGroup):
            return found
    return group


def flex_timeout_for(left: float | None, longest: float) -> float:
    """How long a flex answer may take before it is asked again on the standard tier: `longest` without a
    deadline, else at most half the time left, so the standard retry still has the other half (1 s at least)."""
    if left is None:
        return longest
    return max(1.0, min(longest, left / 2))


def flex_options(flex_timeout: float) -> dict[str, Any]:
    """Engine options of the flex engine: one attempt, and a read timeout past which the answer is too slow."""
    from .._config import Timeouts

    return {"retry": FLEX_RETRY, "timeouts": Timeouts(total=flex_timeout)}
