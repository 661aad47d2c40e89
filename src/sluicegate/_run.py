"""The state of one map()/as_completed() call: its result stream, its cancel scopes and why it stopped."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._exceptions import BudgetExceededError, InputError, RunAbortedError
from ._models import ErrorInfo, ErrorKind, RequestItem, Result

__all__ = ["Run", "iterate_items"]


class Run:
    """Shared by the dispatcher and the item tasks of one call."""

    def __init__(self, *, buffer: int, fill_aborted: bool, fail_fast: bool) -> None:
        self.send: MemoryObjectSendStream[Result]
        self.receive: MemoryObjectReceiveStream[Result]
        self.send, self.receive = anyio.create_memory_object_stream[Result](max_buffer_size=buffer)
        self.scope = anyio.CancelScope()
        self.fill_aborted = fill_aborted  # map(): every input item gets a result, even after an abort
        self.fail_fast = fail_fast
        self.finished = anyio.Event()  # the dispatcher and all item tasks have ended
        self.stopped = anyio.Event()  # set on abort or drain: waits for capacity or backoff end early
        self.error: RunAbortedError | None = None
        self.abort_kind: ErrorKind = "aborted"
        self.abort_message = ""
        self.draining = False
        self._waits: set[anyio.CancelScope] = set()

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[anyio.CancelScope]:
        """A scope that is cancelled when the run stops (abort or drain): for waits, never for attempts."""
        with anyio.CancelScope() as scope:
            if self.halted:
                scope.cancel()
            self._waits.add(scope)
            try:
                yield scope
            finally:
                self._waits.discard(scope)

    def close_streams(self) -> None:
        self.send.close()
        self.receive.close()

    def abort(self, message: str, *, kind: ErrorKind = "aborted", budget: bool = False) -> None:
        """Stop the run: nothing more is admitted; waiting items end with `kind`."""
        if self.error is not None:
            return
        self.abort_kind = kind
        self.abort_message = message
        self.error = BudgetExceededError(message) if budget else RunAbortedError(message)
        self._stop()

    def drain(self) -> None:
        """Graceful stop: take no new items, let in-flight attempts finish, end waiting retries."""
        self.draining = True
        self._stop()

    def _stop(self) -> None:
        self.stopped.set()
        for scope in list(self._waits):
            scope.cancel()

    @property
    def halted(self) -> bool:
        return self.error is not None or self.draining

    def halted_result(self, item: RequestItem, attempts: int = 0) -> Result:
        message = self.abort_message or "the run was stopped before this request finished"
        return Result(
            index=item.index,
            custom_id=item.custom_id,
            error=ErrorInfo(kind=self.abort_kind, message=message, line=item.line),
            attempts=attempts,
        )


def _to_item(raw: Any, index: int, defaults: Mapping[str, Any]) -> RequestItem:
    if isinstance(raw, RequestItem):
        if defaults:
            return RequestItem(raw.index, raw.custom_id, {**defaults, **raw.params}, raw.line)
        return raw
    if not isinstance(raw, Mapping):
        raise InputError(f"request {index} must be a mapping of params, not {type(raw).__name__}")
    params = {**defaults, **raw}
    custom_id = params.pop("custom_id", None)
    return RequestItem(index=index, custom_id=str(index) if custom_id is None else str(custom_id), params=params)


async def iterate_items(
    requests: Iterable[Any] | AsyncIterable[Any], defaults: Mapping[str, Any]
) -> AsyncIterator[RequestItem]:
    """Lazily turn any iterable or async iterable of params or RequestItems into RequestItems."""
    index = 0
    if isinstance(requests, AsyncIterable):
        async for raw in requests:
            yield _to_item(raw, index, defaults)
            index += 1
    else:
        for raw in requests:
            yield _to_item(raw, index, defaults)
            index += 1
