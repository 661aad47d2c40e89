"""The explicit local fallback of a shared limiter: while Redis is gone, this process runs on 1/N of the limits.

Only with `shared_limits_fallback` (never silently): N is the number of processes the pool's lease set held at
the last heartbeat, or the divisor the user gave. The in-process limiter does the work, on the pool's known
limits divided by N and on every response's headers with `limit` and `remaining` divided by N (this process's
share of what the key has left). It paces smoothly: the other N - 1 processes spend the same key unseen.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Literal

from .._clock import Clock
from .._models import BucketView, RateLimitSnapshot
from .limiter import Limiter, Limits

__all__ = ["local_limiter", "scaled"]


def local_limiter(
    divisor: int,
    per_minute: tuple[float | None, ...],
    *,
    clock: Clock,
    max_concurrency: int | None,
    minute: float | None,
    output_accounting: Literal["produced", "reserved"],
    rng: random.Random,
) -> Limiter:
    """An in-process limiter on 1/`divisor` of `per_minute` (requests, input, output, combined tokens per window)."""
    req, inp, out, tok = (None if v is None else v / divisor for v in per_minute)
    limits = Limits(
        requests_per_minute=req, input_tokens_per_minute=inp, output_tokens_per_minute=out, tokens_per_minute=tok
    )
    return Limiter(
        limits,
        clock=clock,
        max_concurrency=max_concurrency,
        minute=minute,
        smooth=True,
        output_accounting=output_accounting,
        rng=rng,
    )


def scaled(snapshot: RateLimitSnapshot, divisor: int) -> RateLimitSnapshot:
    """The headers as one of `divisor` equal shares of the key would see them."""

    def share(view: BucketView | None) -> BucketView | None:
        if view is None:
            return None
        return replace(
            view,
            limit=max(1, view.limit // divisor),
            remaining=max(0, view.remaining // divisor),
            remaining_error=max(1.0, view.remaining_error / divisor),
        )

    return replace(
        snapshot,
        requests=share(snapshot.requests),
        input_tokens=share(snapshot.input_tokens),
        output_tokens=share(snapshot.output_tokens),
        tokens=share(snapshot.tokens),
    )
