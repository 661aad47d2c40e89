"""One map()/as_completed() call's state (`_run`): items from any iterable, and how abort and drain stop waits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from sluicegate import BudgetExceededError, InputError, RequestItem, RunAbortedError
from sluicegate._run import Run, iterate_items

pytestmark = pytest.mark.anyio


@pytest.fixture
async def run() -> AsyncIterator[Run]:
    """A fresh run whose streams are closed at teardown."""
    state = Run(buffer=1, fill_aborted=True, fail_fast=False)
    yield state
    state.close_streams()


async def _items(requests: Any, defaults: dict[str, Any] | None = None) -> list[RequestItem]:
    return [item async for item in iterate_items(requests, defaults or {})]


async def test_params_become_items_numbered_in_order_with_defaults_under_them() -> None:
    """Plain params get their index, a custom_id (their own or the index) and the defaults beneath their own keys."""
    items = await _items([{"custom_id": "a", "max_tokens": 5}, {"messages": []}], {"model": "m", "max_tokens": 1})
    assert [(i.index, i.custom_id) for i in items] == [(0, "a"), (1, "1")]
    assert items[0].params == {"model": "m", "max_tokens": 5}
    assert items[1].params == {"model": "m", "max_tokens": 1, "messages": []}


async def test_an_async_iterable_and_ready_items_are_taken_as_they_are() -> None:
    """An async iterable is read lazily; a RequestItem keeps its index, id and line, only gaining the defaults."""

    async def source() -> AsyncIterator[Any]:
        yield RequestItem(index=7, custom_id="x", params={"max_tokens": 3}, line=12)
        yield {"custom_id": "y"}

    items = await _items(source(), {"model": "m"})
    assert items[0] == RequestItem(index=7, custom_id="x", params={"model": "m", "max_tokens": 3}, line=12)
    assert (items[1].index, items[1].custom_id, items[1].params) == (1, "y", {"model": "m"})


async def test_a_request_that_is_not_a_mapping_is_an_input_error() -> None:
    """A non-mapping request stops iteration with an InputError naming its position and type."""
    with pytest.raises(InputError, match="request 1 must be a mapping of params, not str"):
        await _items([{}, "hello"])


async def test_abort_cancels_the_waits_and_says_why(run: Run) -> None:
    """abort() cancels every wait in progress, makes later waits cancelled at once, and records the error."""
    woke: list[bool] = []

    async def waiter() -> None:
        with run.cancellable():
            await anyio.sleep_forever()
        woke.append(True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        run.abort("a bad key", kind="authentication")
    assert woke == [True]
    assert run.halted
    assert run.stopped.is_set()
    assert isinstance(run.error, RunAbortedError)
    assert not isinstance(run.error, BudgetExceededError)
    with run.cancellable() as scope:
        assert scope.cancel_called
    result = run.halted_result(RequestItem(index=3, custom_id="c", params={}, line=4), attempts=2)
    assert result.error is not None
    assert (result.error.kind, result.error.message, result.error.line, result.attempts) == (
        "authentication",
        "a bad key",
        4,
        2,
    )


async def test_the_first_abort_wins_and_a_budget_abort_is_a_budget_error(run: Run) -> None:
    """A second abort changes nothing; the budget flag makes the run's error a BudgetExceededError."""
    run.abort("over the cap", kind="budget_exceeded", budget=True)
    run.abort("later", kind="aborted")
    assert isinstance(run.error, BudgetExceededError)
    assert (run.abort_kind, run.abort_message) == ("budget_exceeded", "over the cap")


async def test_drain_stops_waits_without_an_error(run: Run) -> None:
    """drain() ends waits like an abort but leaves no error: the run stops gracefully."""
    run.drain()
    assert run.halted
    assert run.error is None
    with run.cancellable() as scope:
        assert scope.cancel_called
    result = run.halted_result(RequestItem(index=0, custom_id="a", params={}))
    assert result.error is not None
    assert result.error.message == "the run was stopped before this request finished"
