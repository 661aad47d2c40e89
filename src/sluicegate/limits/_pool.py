"""Naming a shared pool (a hash, never the key) and sizing one process's share of the pool's concurrency."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PoolView", "pool_name", "rate_limit_class", "redacted"]

# claude-opus-4-7, claude-opus-4-1-20250805, claude-3-5-haiku-20241022 (old names put the version first)
_CLAUDE_FAMILY = re.compile(r"claude-(?:(\d+)-(?:\d+-)?)?([a-z]+)(?:-(\d{1,2})(?!\d))?")


def rate_limit_class(provider: str, model: str | None) -> str:
    """The set of models that share one rate limit, as far as a model name tells.

    Anthropic limits are per model class (all Opus 4.x share one, Sonnet 4.x another); OpenAI limits are per
    model. Without a model (each request names its own) the provider is the class.
    """
    if not model:
        return provider
    if provider == "anthropic":
        match = _CLAUDE_FAMILY.match(model)
        if match:
            old_major, family, major = match.groups()
            return f"anthropic:{family}-{major or old_major or ''}"
    return f"{provider}:{model}"


def pool_name(api_key: str, base_url: str, rate_class: str) -> str:
    """A stable name for every process on this key, endpoint and class; the key itself cannot be read back."""
    digest = hashlib.sha256(f"{api_key}\0{base_url.rstrip('/')}\0{rate_class}".encode()).hexdigest()
    return digest[:24]


def redacted(url: str) -> str:
    """The Redis URL without a password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _opt(value: str | bytes) -> float | None:
    text = value.decode() if isinstance(value, bytes) else value
    return float(text) if text else None


_NO_PACES: tuple[tuple[float | None, ...], ...] = ((None, None, None, None),) * 4


@dataclass(frozen=True, slots=True)
class PoolView:
    """What the pool knew at the last heartbeat: live processes, their demand, learnt limits and averages."""

    live: int = 1
    demand: float = 0.0  # items in flight or waiting, summed over the pool's processes
    pause: float = 0.0  # seconds left of a 429 pause
    seen: bool = False
    aimd: float = 4.0
    latency: float | None = None
    avg_in: float | None = None
    avg_out: float | None = None
    limits: tuple[float | None, ...] = (None, None, None, None)  # per window: requests, input, output, tokens
    rates: tuple[float | None, ...] = (None, None, None, None)  # per second
    smooth: tuple[bool, ...] = (False, False, False, False)  # paced smoothly (no longer spending the window)
    # Per dimension, the smooth pace's search (`pace.py`): pace, good and slowest refused pace (tokens per second),
    # and the shortest window the reset headers allow (seconds); None where the pool has none.
    paces: tuple[tuple[float | None, ...], ...] = _NO_PACES
    epoch: int = 0  # the pool's changes of pace so far (`_redis_lua.PACE`)

    @classmethod
    def parse(cls, reply: Sequence[str | bytes]) -> PoolView:
        live, demand, pause, seen, aimd, lat, avg_i, avg_o, *dims = (_opt(v) for v in reply)
        return cls(
            live=max(1, int(live or 1)),
            demand=demand or 0.0,
            pause=pause or 0.0,
            seen=bool(seen),
            aimd=aimd or 4.0,
            latency=lat,
            avg_in=avg_i,
            avg_out=avg_o,
            limits=tuple(dims[0:8:2]),
            rates=tuple(dims[1:8:2]),
            smooth=tuple(bool(v) for v in dims[8:12]),
            paces=tuple(tuple(dims[12 + 4 * k : 16 + 4 * k]) for k in range(4)) if len(dims) >= 28 else _NO_PACES,
            epoch=int(dims[28] or 0) if len(dims) > 28 else 0,
        )

    def ceiling(self) -> float | None:
        """Requests per second the pool's limits allow (None when no limit is known)."""
        req, inp, out, tok = self.rates
        found: list[float] = []
        if req:
            found.append(req)
        if inp and self.avg_in:
            found.append(inp / self.avg_in)
        if out and self.avg_out:
            found.append(out / self.avg_out)
        if tok and self.avg_in is not None and self.avg_out is not None:
            found.append(tok / max(1.0, self.avg_in + self.avg_out))
        return min(found) if found else None

    def concurrency(self) -> int:
        """The whole pool's concurrency: Little's law (rate x latency, doubled for headroom) when limits are
        known, the shared AIMD value when they are not."""
        rate = self.ceiling()
        if rate is not None:
            if self.latency is None:
                return 4 * self.live
            return math.ceil(rate * self.latency * 2.0) + 2
        return max(1, math.floor(self.aimd))

    def share(self, mine: int, reported: float) -> int:
        """This process's part of the pool's concurrency, in proportion to its demand (`mine` now, `reported`
        at the last heartbeat): an idle process holds no slots, a busy one gets at least one."""
        total = self.concurrency()
        others = max(0.0, self.demand - reported)
        if mine <= 0:
            return max(1, math.ceil(total / self.live))
        return max(1, math.ceil(total * mine / (others + mine)))
