"""The permit of one attempt admitted by the shared limiter: settling is queued to Redis, never awaited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._models import Usage

if TYPE_CHECKING:
    from .shared import SharedLimiter


class SharedPermit:
    """One admitted attempt, reserved in the pool under `rid`; settling is queued, never awaited."""

    __slots__ = ("_done", "_limiter", "admitted_at", "input_tokens", "output_tokens", "rid")

    def __init__(self, limiter: SharedLimiter, rid: str, input_tokens: int, output_tokens: int, at: float) -> None:
        self._limiter = limiter
        self.rid = rid
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.admitted_at = at
        self._done = False

    def settle(self, usage: Usage) -> None:
        """Success: charge what the server counted, refund the rest, free the slot."""
        self._finish("ok", usage.rate_limited_input_tokens, usage.output_tokens)

    def release(self, *, charged: bool = False) -> None:
        """Failure without usage: free the slot; `charged` keeps the request and input tokens spent."""
        self._finish("charged" if charged else "refund", 0, 0)

    def _finish(self, mode: str, used_in: int, used_out: int) -> None:
        if self._done:
            return
        self._done = True
        self._limiter._finish(self, mode, used_in, used_out)
