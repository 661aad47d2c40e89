"""Emulator configuration: limits, time compression, latency, content, faults and tier presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Published Anthropic tier limits (requests, input tokens, output tokens per minute), table of 2026-04-23: Sonnet 4.x
# and Opus 4.x share these numbers; Haiku 4.5 has its own. The June 2026 Start/Build/Scale tiers are not published
# in full (unconfirmed), so they are not presets; pass --rpm/--itpm/--otpm for them.
TIERS: dict[int, tuple[int, int, int]] = {
    1: (50, 30_000, 8_000),
    2: (1_000, 450_000, 90_000),
    3: (2_000, 800_000, 160_000),
    4: (4_000, 2_000_000, 400_000),
}
HAIKU_TIERS: dict[int, tuple[int, int, int]] = {
    1: (50, 50_000, 10_000),
    2: (1_000, 450_000, 90_000),
    3: (2_000, 1_000_000, 200_000),
    4: (4_000, 4_000_000, 800_000),
}

# Token counting has its own requests-per-minute limit, separate from Messages (tiers 1-4).
COUNT_TOKENS_RPM: dict[int, int] = {1: 100, 2: 2_000, 3: 4_000, 4: 8_000}

# The SDK's current model ids (api-fidelity section 8); dated ids where the API has them, aliases resolving to them.
DEFAULT_MODELS: tuple[str, ...] = (
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-6",
    "claude-sonnet-5",
    "claude-opus-4-1-20250805",
    "claude-opus-4-5-20251101",
    "claude-opus-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-fable-5",
    "claude-mythos-5",
)
DEFAULT_ALIASES: dict[str, str] = {
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
}

FaultKind = Literal["overloaded", "api_error", "unavailable", "reset", "hang", "stream_error", "truncate", "slow"]


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultSpec:
    """One fault: injected with `probability`, or always inside the real-seconds window [start, end)."""

    kind: FaultKind
    probability: float = 0.0
    start: float | None = None
    end: float | None = None
    delay: float = 5.0  # seconds of silence for the "slow" fault


@dataclass(frozen=True, kw_only=True, slots=True)
class EmulatorConfig:
    """Everything one emulator instance needs; rpm/itpm/otpm default to the tier preset."""

    tier: int = 4
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    # Real seconds per rate-limit minute: 60 is real time; 3.0 runs the emulated account 20x faster (its limits
    # are per emulated minute, its retry-after and reset headers in real seconds).
    minute: float = 60.0
    count_tokens_rpm: int | None = None  # None = the tier's count_tokens limit
    burst: int | None = None  # max requests per emulated second-scale window; None = only the minute bucket
    output_accounting: Literal["produced", "reserved"] = "produced"
    # When a response's rate-limit headers are counted: as the answer ends (what is left then), or at the request's
    # admission (a server that computes them with its limit check). The API does not document which; a client
    # must read both right.
    headers_counted: Literal["end", "admission"] = "end"
    spend_cap: bool = False
    seed: int = 0
    first_token_latency: float = 0.0
    per_token_latency: float = 0.0
    jitter: float = 0.0
    heavy_tail: float = 0.0  # probability of a 10x slower response
    min_output_tokens: int = 8
    max_output_tokens: int = 64
    models: tuple[str, ...] = DEFAULT_MODELS
    aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    accept_any_model: bool = False
    invalid_keys: frozenset[str] = frozenset()
    require_version: bool = True  # Anthropic routes answer 400 without an anthropic-version header, as the API does
    max_body_bytes: int = 32 * 1024 * 1024
    faults: tuple[FaultSpec, ...] = ()
    batch_seconds: float = 30.0
    batch_deadline: float = 86_400.0
    # Message Batches and the prompt cache, as users observe it (not as documented): a batch request reads no entry
    # an online request wrote, and a batch's own writes become readable only once that batch has ended, so a
    # one-request priming batch makes the next batch read while a lone batch of N writes N times. False: batches
    # share the key's online cache and see each other's writes at once.
    batch_cache_isolated: bool = True
    # OpenAI flex processing (`service_tier: "flex"`, billed at batch prices): answers come this many times slower,
    # and this share of flex requests is refused with a 429 "resource unavailable" (capacity is best effort).
    flex_slowdown: float = 3.0
    flex_refusal: float = 0.0

    def limits(self, model_class: str | None = None) -> tuple[int, int, int]:
        """(rpm, itpm, otpm) for a model class ("haiku", "sonnet", "opus") after explicit overrides."""
        table = HAIKU_TIERS if model_class == "haiku" else TIERS
        rpm, itpm, otpm = table.get(self.tier, table[4])
        return (self.rpm or rpm, self.itpm or itpm, self.otpm or otpm)
