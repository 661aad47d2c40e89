"""Shared helpers of the progress tests: a settable fake clock and builders of engine events."""

from __future__ import annotations

from sluicegate._events import RequestCompleted
from sluicegate._models import ErrorInfo, ErrorKind, Result, Usage


class SettableClock:
    """A clock whose time the test sets; sleeping is not supported here (the display tests use their own)."""

    def __init__(self, now: float = 0.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("the tracker never sleeps")


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
