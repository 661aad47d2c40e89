"""The cost cap's bookkeeping: what is spent, what each request in flight may still cost, and whether to admit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import anyio

__all__ = ["CostBudget", "Verdict"]

Verdict = Literal["admit", "wait", "stop"]


@dataclass(frozen=True, slots=True)
class _Held:
    worst: float  # the cost if the answer uses all of max_tokens
    likely: float  # the cost with the learnt output estimate


class CostBudget:
    """Admits a request while the cap can still hold, waits while money is only reserved, stops when it is spent.

    The guarantee: the final spend is at most the cap plus one request's worst cost. A request is admitted when
    (1) what is spent plus the likely cost of everything in flight and of this request fits the cap, and (2) what is
    spent plus the worst cost of everything already in flight fits it. (2) bounds the overshoot to this request's
    worst cost; (1) keeps the expected spend under the cap. When either fails while requests are in flight, their
    answers settle what they really cost (usually far less than the worst), so the caller waits and asks again; only
    with nothing in flight is the answer "stop", and the spend it reports is then final.
    """

    def __init__(self, cap: float | None) -> None:
        self.cap = cap
        self.spent = 0.0
        self._held: dict[int, _Held] = {}
        self._worst = 0.0
        self._likely = 0.0
        self._settled = anyio.Event()

    @property
    def reserved(self) -> float:
        """The worst cost of the requests in flight (what could still be spent)."""
        return self._worst

    def verdict(self, worst: float, likely: float) -> Verdict:
        """Whether a request with these costs may go now, should wait for answers in flight, or must not go."""
        if self.cap is None:
            return "admit"
        if self.spent + self._likely + likely <= self.cap and self.spent + self._worst <= self.cap:
            return "admit"
        return "wait" if self._held else "stop"

    def reserve(self, key: int, worst: float, likely: float) -> None:
        """Hold a request's costs until `release(key)` (one hold per key)."""
        held = _Held(worst, likely)
        self._held[key] = held
        self._worst += worst
        self._likely += likely

    def spend(self, cost: float) -> None:
        """Record what an answer really cost."""
        self.spent += cost

    def release(self, key: int) -> None:
        """The request ended (answered, failed or cancelled): its hold goes and waiters look again."""
        held = self._held.pop(key, None)
        if held is None:
            return
        self._worst -= held.worst
        self._likely -= held.likely
        if not self._held:  # float drift must not leave a phantom reservation behind
            self._worst = self._likely = 0.0
        self._settled.set()
        self._settled = anyio.Event()

    async def wait_settled(self) -> None:
        """Until some request in flight releases its hold."""
        await self._settled.wait()
