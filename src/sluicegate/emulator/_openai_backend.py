"""What the emulator's OpenAI chat route needs from the emulator core, and its adapter to the core.

`ChatBackend` is the seam: the route (`openai_api.py`) speaks only to it, so a test can drive the route on a
backend of its own; `core_backend` adapts the limiter, content generator, latency and config to it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sluicegate.emulator.config import FaultSpec

if TYPE_CHECKING:
    from sluicegate.emulator.state import EmulatorState

__all__ = ["Admitted", "ChatBackend", "Completion", "Throttled", "core_backend"]


class Throttled(Exception):
    """The limiter refused the request: seconds to wait, the bucket that is empty, its rate-limit headers."""

    def __init__(self, retry_after: int, bucket: str, headers: Mapping[str, str]) -> None:
        super().__init__(bucket)
        self.retry_after = retry_after
        self.bucket = bucket
        self.headers = dict(headers)


class Admitted(Protocol):
    """An admitted request: its OpenAI-style rate-limit headers, and settlement of its output tokens."""

    def headers(self) -> dict[str, str]: ...

    def finish(self, output_tokens: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Completion:
    """Generated content: text, its output tokens and an Anthropic-style stop reason."""

    text: str
    output_tokens: int
    stop_reason: str


class ChatBackend(Protocol):
    """What the chat route needs from the emulator core (see `core_backend`)."""

    rng: random.Random

    def key_status(self, key: str) -> str | None:
        """None for a usable key, "invalid" for a rejected key, "quota" when the spend cap is hit."""

    def admit(self, key: str, model: str, input_tokens: int, max_tokens: int) -> Admitted:
        """Take capacity from the limiter or raise Throttled."""

    def generate(self, params: Mapping[str, Any]) -> Completion:
        """Deterministic content for the prompt, capped by max_tokens, honouring stop_sequences."""

    def delays(self, output_tokens: int) -> tuple[float, float]:
        """(time to first token, time per output token) in real seconds."""

    def prompt_cache(self, key: str, prompt: Mapping[str, Any]) -> tuple[int, Callable[[], None]]:
        """(cached_tokens for this prompt now, a callback that caches its prefixes once the answer starts)."""

    def fault(self) -> FaultSpec | None:
        """The fault this request suffers (seeded, counted in stats), if any."""


def core_backend(state: EmulatorState) -> ChatBackend:
    """Adapt the emulator core (limiter, content generator, latency, config) to the chat route."""
    from sluicegate.emulator.content import generate
    from sluicegate.emulator.faults import pick_fault
    from sluicegate.emulator.latency import first_token, per_token
    from sluicegate.emulator.ratelimit import RateLimited

    class _Core:
        rng: random.Random = state.rng

        def key_status(self, key: str) -> str | None:
            if key in state.config.invalid_keys:
                return "invalid"
            return "quota" if state.config.spend_cap else None

        def admit(self, key: str, model: str, input_tokens: int, max_tokens: int) -> Admitted:
            try:
                admission = state.limits.admit_openai(key, model, input_tokens, max_tokens)
            except RateLimited as exc:
                raise Throttled(int(exc.retry_after), str(exc.bucket), exc.headers) from None

            class _Admitted:
                def headers(self) -> dict[str, str]:
                    return dict(admission.headers(style="openai"))

                def finish(self, output_tokens: int) -> None:
                    admission.finish(output_tokens)

            return _Admitted()

        def generate(self, params: Mapping[str, Any]) -> Completion:
            gen = generate(state, params)
            return Completion(gen.text, gen.output_tokens, gen.stop_reason)

        def delays(self, output_tokens: int) -> tuple[float, float]:
            return float(first_token(state)), float(per_token(state))

        def prompt_cache(self, key: str, prompt: Mapping[str, Any]) -> tuple[int, Callable[[], None]]:
            cache = state.openai_cache
            cached = int(cache.cached_tokens(prompt, key, state.emulated_now()))

            def commit() -> None:
                cache.remember(prompt, key, state.emulated_now())

            return cached, commit

        def fault(self) -> FaultSpec | None:
            spec = pick_fault(state)
            if spec is not None:
                state.stats.faults[spec.kind] += 1
            return spec

    return _Core()
