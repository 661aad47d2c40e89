"""The emulator's prompt cache: breakpoints, prefix entries, TTLs and minimum lengths, with time passed in.

Rules (Anthropic prompt caching as documented; see the fidelity notes, section 7):

- Breakpoints are the blocks carrying `cache_control` (tools → system → messages order), at most 4; a top-level
  `cache_control` (automatic mode) adds one on the last block and is a 400 when 4 explicit ones already exist.
  `ttl` is "5m" (default) or "1h"; a longer-TTL breakpoint must not follow a shorter one.
- An entry is keyed by the exact prefix up to and including its breakpoint block (the prefix keys of
  `prompt_blocks`), per model and per scope (the organisation: the emulator uses the API key).
- On a request, each breakpoint looks for a live entry at its own block and up to `lookback_blocks` blocks
  before it; the longest hit is read. Every breakpoint after the hit whose prefix reaches the model's minimum
  cacheable length is written; below the minimum nothing is cached, silently.
- `plan` decides and changes nothing; `commit` (called when the response starts) makes the writes readable and
  refreshes the TTL of what was read. So N requests planned before the first commit are N writes.
- Changing `tool_choice` or `thinking` misses the message entries; tools and system entries still hit.
- Token split (as the real usage reports it): read = the prefix up to the hit; writes = from the hit to the last
  written breakpoint, each segment billed at the TTL of the breakpoint that ends it; uncached = the rest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sluicegate.emulator.prompt import PromptBlock, count_tokens, prompt_blocks

__all__ = [
    "DEFAULT_MIN_CACHEABLE_TOKENS",
    "TTL_SECONDS",
    "CacheControlError",
    "CachePlan",
    "CacheWrite",
    "PromptCache",
    "min_cacheable_tokens",
]

TTL_SECONDS: Mapping[str, float] = {"5m": 300.0, "1h": 3600.0}

# Longest matching model-id prefix wins. Numbers from the prompt-caching docs (2026); Sonnet 5 is UNCONFIRMED and
# falls back to the default. Limits change between doc versions, so callers may pass their own table.
DEFAULT_MIN_CACHEABLE_TOKENS: Mapping[str, int] = {
    "claude-opus-5": 512,
    "claude-fable-5": 512,
    "claude-opus-4-8": 1024,
    "claude-opus-4-7": 4096,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-mythos": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-3-5-haiku": 2048,
    "claude-sonnet-4-5": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4-0": 1024,
    "claude-opus-4-2025": 1024,
    "claude-sonnet-4-0": 1024,
    "claude-sonnet-4-2025": 1024,
    "claude-3-7-sonnet": 1024,
}
DEFAULT_MIN_FALLBACK = 1024
MAX_BREAKPOINTS = 4
# UNCONFIRMED whether the 20 counts the breakpoint block itself; we check the block and 20 before it.
DEFAULT_LOOKBACK_BLOCKS = 20


class CacheControlError(ValueError):
    """An invalid use of `cache_control`; the API answers 400 `invalid_request_error` with this message."""


def min_cacheable_tokens(
    model: str, table: Mapping[str, int] | None = None, default: int = DEFAULT_MIN_FALLBACK
) -> int:
    """The minimum prefix length the model caches, by the longest matching model-id prefix."""
    table = DEFAULT_MIN_CACHEABLE_TOKENS if table is None else table
    best = ""
    for prefix in table:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return table[best] if best else default


@dataclass(frozen=True, slots=True)
class CacheWrite:
    """One entry a request writes: its prefix key and lifetime."""

    key: str
    ttl: float


@dataclass(frozen=True, slots=True)
class CachePlan:
    """How one request's input splits into cache reads, writes and uncached tokens, and what commit will do."""

    read_tokens: int
    write_5m_tokens: int
    write_1h_tokens: int
    uncached_tokens: int
    model: str = ""
    scope: str = ""
    read_key: str | None = None
    writes: tuple[CacheWrite, ...] = field(default=())

    @property
    def write_tokens(self) -> int:
        """`cache_creation_input_tokens`: both TTLs together."""
        return self.write_5m_tokens + self.write_1h_tokens

    @property
    def total_tokens(self) -> int:
        """The whole prompt, as count_tokens reports it."""
        return self.read_tokens + self.write_tokens + self.uncached_tokens

    @property
    def rate_limited_tokens(self) -> int:
        """What counts toward ITPM: cache reads do not, writes do."""
        return self.uncached_tokens + self.write_tokens

    def usage(self) -> dict[str, Any]:
        """The input part of an Anthropic `usage` object."""
        return {
            "input_tokens": self.uncached_tokens,
            "cache_creation_input_tokens": self.write_tokens,
            "cache_read_input_tokens": self.read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.write_5m_tokens,
                "ephemeral_1h_input_tokens": self.write_1h_tokens,
            },
        }


@dataclass(slots=True)
class _Entry:
    expires_at: float
    ttl: float


def _ttl_of(cache_control: Mapping[str, Any]) -> str:
    kind = cache_control.get("type")
    if kind != "ephemeral":
        raise CacheControlError(f"cache_control.type: Input should be 'ephemeral' (got {kind!r})")
    ttl = cache_control.get("ttl", "5m")
    if ttl not in TTL_SECONDS:
        raise CacheControlError(f"cache_control.ttl: Input should be '5m' or '1h' (got {ttl!r})")
    return str(ttl)


def breakpoints(params: Mapping[str, Any], blocks: list[PromptBlock]) -> list[tuple[int, str]]:
    """The (block index, ttl) breakpoints of a request, validated as the API does; raises CacheControlError."""
    points = [(i, _ttl_of(b.cache_control)) for i, b in enumerate(blocks) if b.cache_control is not None]
    auto = params.get("cache_control")
    if auto is not None:
        if not isinstance(auto, Mapping):
            raise CacheControlError("cache_control: Input should be an object")
        ttl = _ttl_of(auto)
        if len(points) >= MAX_BREAKPOINTS:
            raise CacheControlError(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(points) + 1} (including the automatic one)."
            )
        # An explicit breakpoint on the last block already covers it (UNCONFIRMED); automatic adds nothing then.
        if blocks and (not points or points[-1][0] != len(blocks) - 1):
            points.append((len(blocks) - 1, ttl))
    if len(points) > MAX_BREAKPOINTS:
        raise CacheControlError(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(points)}."
        )
    seen_5m = False
    for _, ttl in points:
        if ttl == "5m":
            seen_5m = True
        elif seen_5m:
            raise CacheControlError("A cache_control block with ttl='1h' must not come after one with ttl='5m'.")
    return points


def _entry_keys(params: Mapping[str, Any], blocks: list[PromptBlock]) -> list[str]:
    """Prefix keys, with message blocks also keyed by tool_choice and thinking.

    The API documents that changing tool_choice or the thinking parameters invalidates the messages part of the
    cache while tools and system entries survive.
    """
    salt = json.dumps([params.get("tool_choice"), params.get("thinking")], sort_keys=True, default=str)
    if salt == "[null, null]":
        return [b.prefix_key for b in blocks]
    digest = hashlib.sha256(salt.encode()).hexdigest()[:16]
    return [b.prefix_key + ":" + digest if b.section == "messages" else b.prefix_key for b in blocks]


class PromptCache:
    """Prompt-cache entries of one emulator, in emulated seconds; not thread-safe (one event loop owns it)."""

    def __init__(
        self,
        *,
        min_tokens: Mapping[str, int] | None = None,
        default_min_tokens: int = DEFAULT_MIN_FALLBACK,
        lookback_blocks: int = DEFAULT_LOOKBACK_BLOCKS,
        max_entries: int = 200_000,
    ) -> None:
        self._min_tokens = dict(DEFAULT_MIN_CACHEABLE_TOKENS if min_tokens is None else min_tokens)
        self._default_min = default_min_tokens
        self._lookback = lookback_blocks
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def min_tokens(self, model: str) -> int:
        """The minimum cacheable prefix for `model`."""
        return min_cacheable_tokens(model, self._min_tokens, self._default_min)

    def _live(self, model: str, scope: str, key: str, now: float) -> bool:
        entry = self._entries.get((scope, model, key))
        return entry is not None and entry.expires_at > now

    def plan(
        self,
        params: Mapping[str, Any],
        model: str,
        now: float,
        *,
        scope: str = "",
        blocks: list[PromptBlock] | None = None,
    ) -> CachePlan:
        """Split the request's input into read, written and uncached tokens; changes nothing.

        `blocks`, when the caller already has them, are this request's `prompt_blocks`, keyed or not (prefix
        keys are only computed when a breakpoint needs them).
        """
        if blocks is None:
            blocks = prompt_blocks(params, keyed=False)
        total = count_tokens(params, blocks)
        points = breakpoints(params, blocks)
        if not points:
            return CachePlan(0, 0, 0, total, model=model, scope=scope)
        if blocks and not blocks[0].prefix_key:
            blocks = prompt_blocks(params)
        keys = _entry_keys(params, blocks)
        # cumulative[i] = tokens of blocks 0..i
        cumulative: list[int] = []
        running = 0
        for b in blocks:
            running += b.tokens
            cumulative.append(running)
        hit = -1
        for index, _ in points:
            for j in range(index, max(-1, index - self._lookback - 1), -1):
                if j <= hit:
                    break
                if self._live(model, scope, keys[j], now):
                    hit = j
                    break
        read = cumulative[hit] if hit >= 0 else 0
        minimum = self.min_tokens(model)
        boundary = read
        w5 = w1h = 0
        writes: list[CacheWrite] = []
        for index, ttl in points:
            if index <= hit or cumulative[index] < minimum:
                continue
            segment = cumulative[index] - boundary
            if ttl == "1h":
                w1h += segment
            else:
                w5 += segment
            boundary = cumulative[index]
            writes.append(CacheWrite(keys[index], TTL_SECONDS[ttl]))
        return CachePlan(
            read_tokens=read,
            write_5m_tokens=w5,
            write_1h_tokens=w1h,
            uncached_tokens=total - boundary,
            model=model,
            scope=scope,
            read_key=keys[hit] if hit >= 0 else None,
            writes=tuple(writes),
        )

    def commit(self, plan: CachePlan, now: float) -> None:
        """The response has started: its writes become readable and its read is refreshed (TTL from `now`)."""
        if plan.read_key is not None:
            entry = self._entries.get((plan.scope, plan.model, plan.read_key))
            if entry is not None:
                entry.expires_at = max(entry.expires_at, now + entry.ttl)
        for write in plan.writes:
            k = (plan.scope, plan.model, write.key)
            entry = self._entries.get(k)
            if entry is None or entry.expires_at <= now:
                self._entries.pop(k, None)
                self._entries[k] = _Entry(now + write.ttl, write.ttl)
            else:
                entry.ttl = max(entry.ttl, write.ttl)
                entry.expires_at = max(entry.expires_at, now + write.ttl)
        while len(self._entries) > self._max_entries:
            # A flood of distinct prefixes within one TTL: drop the oldest-created entries first.
            del self._entries[next(iter(self._entries))]
        if now >= self._next_sweep:
            # Amortised cleanup keeps memory bounded by the live entries without a timer task.
            self._entries = {k: e for k, e in self._entries.items() if e.expires_at > now}
            self._next_sweep = now + 60.0

    def clear(self) -> None:
        """Forget every entry (the emulator's reset)."""
        self._entries.clear()
        self._next_sweep = 0.0
