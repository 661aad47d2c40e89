"""The flex route (OpenAI `service_tier: "flex"`): batch prices on synchronous calls, with a standard fallback.

Every request is first sent with `service_tier: "flex"` by an engine that does not retry: flex capacity is best
effort, so a refusal (a 429 "resource unavailable"), an overload, a server error or an answer slower than the
flex timeout (too slow for the deadline) sends that one request again at once through the standard engine,
which retries as usual. A flex refusal is not billed, so nothing is paid twice; a request the flex engine
refused as invalid is final (the standard tier would refuse it too). Flex answers are priced at the batch rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import anyio

from .._models import RequestItem, Result
from ..engine import Engine
from ..pricing import PriceTable
from ..retry import RetryPolicy

__all__ = ["FLEX_RETRY", "flex_options", "flex_results", "flex_timeout_for"]

# One attempt: anything but a final refusal goes to the standard tier instead of being retried on flex.
FLEX_RETRY = RetryPolicy(max_attempts=1)
# Error kinds after which the standard tier is tried: capacity, overload, server trouble, too slow.
_FALL_BACK = frozenset({"rate_limited", "overloaded", "server", "transport", "timeout"})


def _flex(item: RequestItem) -> RequestItem:
    return dataclasses.replace(item, params={**item.params, "service_tier": "flex"})


async def flex_results(
    flex: Engine, standard: Engine, items: AsyncIterator[RequestItem], prices: PriceTable
) -> AsyncIterator[Result]:
    """Final results of `items`: flex answers (at the batch price), and standard answers for those flex did not
    serve. `flex` must not retry (FLEX_RETRY); both engines must be open."""
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
                if result.error is not None and result.error.kind in _FALL_BACK:
                    await send.send(original)
                    continue
                if result.ok:
                    model = str((result.message or {}).get("model") or "")
                    result = dataclasses.replace(result, cost=prices.cost(model, result.usage, batch=True))
                await out_send.send(result)

    async def run_standard() -> None:
        async with receive:
            async for result in standard.as_completed(receive):
                await out_send.send(result)

    async def both() -> None:
        async with out_send, anyio.create_task_group() as tg:
            tg.start_soon(run_flex)
            tg.start_soon(run_standard)

    async with anyio.create_task_group() as tg:
        tg.start_soon(both)
        async with out_receive:
            async for result in out_receive:
                yield result


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
