"""OpenAI automatic prompt caching, in its simplest faithful form (time passed in, emulated seconds).

OpenAI caches every prompt of at least 1,024 tokens with no opt-in; `usage.prompt_tokens_details.cached_tokens`
reports the cached part of a later prompt sharing its prefix, in 128-token increments. The emulator's rule:

- the prompt is split into the blocks of `prompt_blocks` (tools, then each message part); a request's cacheable
  prefixes are the block boundaries (the real service matches at any token, the emulator at block boundaries);
- when a response starts (`remember`), every prefix of the prompt becomes readable for `ttl` emulated seconds
  (OpenAI keeps entries 5-10 minutes of inactivity; 300 s by default), refreshed on every use;
- a request's `cached_tokens` is its longest live prefix, rounded down to a multiple of 128, and 0 below 1,024;
- entries are per API key and model; cached tokens still count toward the token rate limit (charged in full).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluicegate.emulator.prompt import prompt_blocks

__all__ = ["OpenAIPrefixCache"]

MIN_TOKENS = 1024
STEP = 128


class OpenAIPrefixCache:
    """Prefixes seen recently, keyed by (scope, prefix key) with their expiry; bounded in size."""

    def __init__(self, *, ttl: float = 300.0, max_entries: int = 200_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._expiry: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._expiry)

    @staticmethod
    def _prefixes(prompt: Mapping[str, Any]) -> list[tuple[str, int]]:
        """(prefix key, tokens up to and including the block) for each block boundary."""
        out: list[tuple[str, int]] = []
        if sum(b.tokens for b in prompt_blocks(prompt, keyed=False)) < MIN_TOKENS:
            # No prefix of a short prompt is long enough to be read or written: skip hashing them.
            return out
        running = 0
        for block in prompt_blocks(prompt):
            running += block.tokens
            out.append((block.prefix_key, running))
        return out

    def cached_tokens(self, prompt: Mapping[str, Any], scope: str, now: float) -> int:
        """The `cached_tokens` this prompt reports now; changes nothing."""
        for key, tokens in reversed(self._prefixes(prompt)):
            if tokens < MIN_TOKENS:
                return 0
            expiry = self._expiry.get((scope, key))
            if expiry is not None and expiry > now:
                return tokens // STEP * STEP
        return 0

    def remember(self, prompt: Mapping[str, Any], scope: str, now: float) -> None:
        """The response started: the prompt's long-enough prefixes become readable (or are refreshed)."""
        for key, tokens in self._prefixes(prompt):
            if tokens >= MIN_TOKENS:
                k = (scope, key)
                # Re-insert so dict order stays oldest-use first for eviction.
                self._expiry.pop(k, None)
                self._expiry[k] = now + self.ttl
        while len(self._expiry) > self.max_entries:
            del self._expiry[next(iter(self._expiry))]
        oldest = next(iter(self._expiry.items()), None)
        # Expired entries sit at the front (uses are appended with the same ttl), so this sweep is amortised O(1).
        while oldest is not None and oldest[1] <= now:
            del self._expiry[oldest[0]]
            oldest = next(iter(self._expiry.items()), None)

    def clear(self) -> None:
        """Forget everything (the emulator's reset)."""
        self._expiry.clear()
