"""Before a run: how many tokens, how much money (online and with the Batch API) and how long at given limits."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import pricing
from .._models import RequestItem, Usage
from ..pricing import PriceTable
from ..tokens import heuristic_tokens
from .reader import InputProblem

__all__ = ["Estimate", "ModelEstimate", "estimate"]


@dataclass
class ModelEstimate:
    """Totals for one model. Input tokens are a character-based estimate (about ±15% for English prose)."""

    requests: int = 0
    input_tokens: int = 0
    max_output_tokens: int = 0
    expected_output_tokens: int = 0

    def cost(
        self, model: str, output_tokens: int, *, batch: bool = False, prices: PriceTable | None = None
    ) -> float | None:
        """USD for these requests with `output_tokens` of answers (None: no price); `prices` defaults to the shipped
        table."""
        table = prices if prices is not None else pricing.default_table()
        return table.cost(model, Usage(input_tokens=self.input_tokens, output_tokens=output_tokens), batch=batch)


@dataclass
class Estimate:
    models: dict[str, ModelEstimate] = field(default_factory=dict)
    invalid: int = 0
    first_problems: list[InputProblem] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(m.requests for m in self.models.values())

    def minutes(
        self, rpm: float | None, itpm: float | None, otpm: float | None, *, expected: bool = True
    ) -> float | None:
        """Minutes the job needs at these per-minute limits (the binding one decides); None if none given."""
        totals = list(self.models.values())
        out = sum(m.expected_output_tokens if expected else m.max_output_tokens for m in totals)
        spans = [
            amount / limit
            for amount, limit in (
                (self.requests, rpm),
                (sum(m.input_tokens for m in totals), itpm),
                (out, otpm),
            )
            if limit
        ]
        return max(spans) if spans else None


def estimate(
    parsed: Iterable[RequestItem | InputProblem], *, expected_output_fraction: float = 0.25, keep_problems: int = 5
) -> Estimate:
    """Aggregate an input stream. Expected output is `expected_output_fraction` of max_tokens (answers rarely use
    all of it); the maximum is max_tokens itself, the most a run can be billed."""
    result = Estimate()
    for item in parsed:
        if isinstance(item, InputProblem):
            result.invalid += 1
            if len(result.first_problems) < keep_problems:
                result.first_problems.append(item)
            continue
        params = item.params
        model = str(params.get("model") or "?")
        max_tokens = params.get("max_tokens") or params.get("max_completion_tokens") or 0
        max_tokens = max_tokens if isinstance(max_tokens, int) else 0
        row = result.models.setdefault(model, ModelEstimate())
        row.requests += 1
        row.input_tokens += heuristic_tokens(params)
        row.max_output_tokens += max_tokens
        row.expected_output_tokens += math.ceil(max_tokens * expected_output_fraction)
    return result
