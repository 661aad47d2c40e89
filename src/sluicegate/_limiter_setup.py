"""The Engine's limiter: a local one, or the same limiter with its state in a Redis pool shared by every process.

Also names the shared pool (`shared_pool_name`, public through `sluicegate.engine`) and opens and closes the
limiter with the Engine.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

from ._clock import Clock
from ._exceptions import ConfigError
from .limits._pool import pool_name, rate_limit_class
from .limits.limiter import Limiter, Limits
from .limits.protocol import LimiterLike

__all__ = ["DEFAULT_BASE_URLS", "build_limiter", "close_limiter", "open_limiter", "shared_pool_name"]

DEFAULT_BASE_URLS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}


def build_limiter(
    limits: Limits | None,
    *,
    clock: Clock,
    max_concurrency: int | None,
    minute: float | None,
    smooth: bool,
    output_accounting: Literal["produced", "reserved"],
    rng: random.Random,
    shared_limits: str | None,
    shared_pool: Callable[[], str],
    shared_limits_fallback: bool | int,
) -> LimiterLike:
    """A local Limiter, or with `shared_limits` a SharedLimiter on the pool `shared_pool()` names."""
    # `minute` only overrides the windows the limiter learns from the headers; `smooth` skips the burst.
    # Built even when shared: it checks the arguments the same way for both.
    local = Limiter(
        limits,
        clock=clock,
        max_concurrency=max_concurrency,
        minute=minute,
        smooth=smooth,
        output_accounting=output_accounting,
        rng=rng,
    )
    if shared_limits is None:
        return local
    try:
        from .limits.shared import SharedLimiter
    except ImportError as exc:
        raise ConfigError("shared_limits needs the redis client: pip install 'sluicegate[redis]'") from exc
    return SharedLimiter(
        shared_limits, name=shared_pool(), limits=limits, clock=clock, max_concurrency=max_concurrency,
        minute=minute, rng=rng, output_accounting=output_accounting, fallback=shared_limits_fallback, smooth=smooth,
    )  # fmt: skip


def shared_pool_name(provider: str, api_key: str, base_url: str | None, model: str | None) -> str:
    """The shared-limits pool of a key, endpoint (None: the provider's default) and model's rate-limit class."""
    return pool_name(api_key, base_url or DEFAULT_BASE_URLS[provider], rate_limit_class(provider, model))


async def open_limiter(limiter: LimiterLike) -> None:
    """A shared limiter connects to its pool (raising SharedLimitsUnavailableError); a local one has nothing to do."""
    opener = getattr(limiter, "open", None)
    if opener is not None:
        await opener()


async def close_limiter(limiter: LimiterLike) -> None:
    closer = getattr(limiter, "aclose", None)
    if closer is not None:
        await closer()
