"""The Engine's dispatch: admitting items one at a time (cost cap, then gate) and starting a task for each.

Consumption is lazy and bounded: the dispatcher takes one input item at a time, waits for the limiter to admit
it, and only then starts a task for it, so live tasks are bounded by the concurrency (plus items waiting to
retry), never by the input size.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio

from ._clock import Clock
from ._cost_guard import CostGuard
from ._events import Event, RunAborted
from ._exceptions import InputError, SluicegateError
from ._gate import Pass
from ._item import ItemRunner
from ._models import RequestItem, Result
from ._run import Run, iterate_items
from ._stats import Counters
from .providers import Provider

__all__ = ["Dispatcher"]

_BACKOFF_ROOM = 1024  # items that may wait out a backoff beyond the concurrency bound


class Dispatcher:
    """The runs of one Engine: each map()/as_completed() is a Run fed by `dispatch`; create() is a one-item run."""

    def __init__(
        self,
        *,
        items: ItemRunner,
        guard: CostGuard,
        provider: Provider,
        defaults: Mapping[str, Any],
        counts: Counters,
        clock: Clock,
        cap: int,
        emit: Callable[[Event], None],
    ) -> None:
        self._items = items
        self._guard = guard
        self._provider = provider
        self._defaults = defaults
        self._counts = counts
        self._clock = clock
        self._cap = cap
        self._emit = emit
        self._runs: set[Run] = set()

    def drain(self) -> None:
        for run in list(self._runs):
            run.drain()

    def cancel(self) -> None:
        for run in list(self._runs):
            run.scope.cancel()

    async def one(self, params: Mapping[str, Any], on_text: Callable[[str], Awaitable[None]] | None = None) -> Result:
        """One request outside any map(): its own single-item run, its result returned rather than streamed."""
        run = Run(buffer=1, fill_aborted=False, fail_fast=True)
        run.close_streams()
        (item,) = [x async for x in iterate_items([params], self._defaults)]
        raw_in = self._items.input_estimator.raw(item.params)
        try:
            passed = await self._admit(run, item, raw_in)
        except InputError as exc:
            return self._items.refused(item, exc, 0, 0.0)
        if passed is None:
            return self._items.halted(run, item)
        return await self._items.execute(run, item, passed, raw_in, on_text=on_text)

    def start(
        self,
        tg: anyio.abc.TaskGroup,
        requests: Iterable[Any] | AsyncIterable[Any],
        *,
        fill_aborted: bool,
        fail_fast: bool,
    ) -> Run:
        run = Run(buffer=256, fill_aborted=fill_aborted, fail_fast=fail_fast)
        self._runs.add(run)
        tg.start_soon(self._dispatch, run, requests)
        return run

    async def stop_run(self, run: Run) -> None:
        """Cancel what is left of a run and wait until its tasks have released their slots."""
        run.scope.cancel()
        with anyio.CancelScope(shield=True):
            await run.finished.wait()

    async def _dispatch(self, run: Run, requests: Iterable[Any] | AsyncIterable[Any]) -> None:
        # Admitted items plus items waiting to retry stay below this, so memory is bounded by concurrency. Items
        # in backoff hold no concurrency slot, so the bound is wider than the cap: a few backing off must not
        # hold up the items behind them.
        outstanding = anyio.Semaphore(4 * self._cap + _BACKOFF_ROOM)
        try:
            async with run.send:
                with run.scope:
                    async with anyio.create_task_group() as tg:
                        async for item in iterate_items(requests, self._defaults):
                            if run.halted:
                                if run.fill_aborted:
                                    await run.send.send(self._items.halted(run, item))
                                    continue
                                break
                            try:  # no checkpoint (a turn of the loop) per item while there is room
                                outstanding.acquire_nowait()
                            except anyio.WouldBlock:
                                await outstanding.acquire()
                            self._counts.submitted += 1
                            raw_in = self._items.input_estimator.raw(item.params)
                            try:
                                passed = await self._admit(run, item, raw_in)
                            except InputError as exc:  # larger than a bucket: the server would refuse it forever
                                outstanding.release()
                                await run.send.send(self._items.refused(item, exc, 0, 0.0))
                                continue
                            if passed is None:
                                outstanding.release()
                                await run.send.send(self._items.halted(run, item))
                                continue
                            tg.start_soon(self._item_task, run, item, passed, raw_in, outstanding)
        except SluicegateError as exc:  # bad input from an iterable: stop the run and say why
            run.abort(str(exc))
            self._emit(RunAborted(at=self._clock.now(), reason=str(exc)))
        finally:
            self._runs.discard(run)
            run.finished.set()

    async def _item_task(
        self, run: Run, item: RequestItem, passed: Pass, raw_in: int, outstanding: anyio.Semaphore
    ) -> None:
        try:
            await run.send.send(await self._items.execute(run, item, passed, raw_in))
        finally:
            outstanding.release()

    async def _admit(self, run: Run, item: RequestItem, raw_in: int) -> Pass | None:
        """Wait for the cost cap and the gate; None when the run stopped meanwhile."""
        est_in, reserve, max_tokens = self._items.estimates(item, raw_in)
        guard = self._guard
        if guard.max_cost is not None:
            model = self._provider.model(item.params)
            worst = guard.prices.estimate_cost(model, est_in, max_tokens)
            if worst is None:
                message = f"no price is known for model {model!r}, so the cost cap cannot be enforced"
                self.abort(run, message, kind="budget_exceeded", budget=True)
                return None
            likely = guard.prices.estimate_cost(model, est_in, reserve) or worst
            # Money only reserved by requests in flight is not spent: wait for their answers before deciding.
            while (verdict := guard.budget.verdict(worst, likely)) == "wait":
                with run.cancellable() as scope:
                    await guard.budget.wait_settled()
                if scope.cancelled_caught or run.halted:
                    return None
            if verdict == "stop":
                message = (
                    f"the cost cap of ${guard.max_cost:.2f} is reached: ${guard.budget.spent:.4f} spent, and the "
                    f"next request would likely cost ${likely:.4f} (up to ${worst:.4f})"
                )
                self.abort(run, message, kind="budget_exceeded", budget=True)
                return None
            guard.budget.reserve(id(item), worst, likely)
        passed: Pass | None = None
        try:
            passed = await self._items.wait_for_pass(run, item, raw_in)
        finally:
            if passed is None:
                guard.budget.release(id(item))
        return passed

    def abort(
        self, run: Run, message: str, *, kind: Any = "aborted", budget: bool = False, everyone: bool = False
    ) -> None:
        if run.error is None:
            run.abort(message, kind=kind, budget=budget)
            self._emit(RunAborted(at=self._clock.now(), reason=message))
        if everyone:  # a bad key, an empty account or an unreachable host is the same for every run
            for other in list(self._runs):
                if other.error is None:
                    other.abort(message, kind="aborted")
