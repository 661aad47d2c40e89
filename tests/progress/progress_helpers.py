"""Shared helpers of the progress tests: moving the fake clock to a time, and builders of engine events."""

from __future__ import annotations

from sluicegate._events import RequestCompleted
from sluicegate._models import ErrorInfo, ErrorKind, Result, Usage
from sluicegate.testing import FakeClock


def at(clock: FakeClock, t: float) -> None:
    """Move `clock` forward to time `t` (the tracker and renderers only read the time)."""
    clock.advance(t - clock.now())


def ok(
    at: float, *, index: int = 0, usage: Usage | None = None, cost: float | None = 0.0, model: str = "m"
) -> RequestCompleted:
    """A successful completion at clock time `at` (cost None: its model has no price)."""
    result = Result(
        index=index,
        custom_id=f"id-{index}",
        message={"model": model, "content": [{"type": "text", "text": "hi"}]},
        usage=usage or Usage(),
        cost=cost,
        attempts=1,
    )
    return RequestCompleted(at=at, result=result)


def failed(at: float, kind: ErrorKind, *, index: int = 0, attempts: int = 1) -> RequestCompleted:
    """A final error of `kind` at clock time `at`."""
    result = Result(index=index, custom_id=f"id-{index}", error=ErrorInfo(kind=kind, message=kind), attempts=attempts)
    return RequestCompleted(at=at, result=result)
