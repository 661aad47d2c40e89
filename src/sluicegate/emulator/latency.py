"""Simulated latency: time to first token and per-output-token time, seeded jitter, optional heavy tail."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluicegate.emulator.state import EmulatorState


def _factor(state: EmulatorState) -> float:
    cfg = state.config
    f = 1.0 + (state.rng.uniform(-cfg.jitter, cfg.jitter) if cfg.jitter else 0.0)
    if cfg.heavy_tail and state.rng.random() < cfg.heavy_tail:
        f *= 10.0
    return max(0.0, f)


def first_token(state: EmulatorState) -> float:
    """Seconds before the first byte of the answer."""
    base: float = state.config.first_token_latency
    return base * _factor(state) if base else 0.0


def per_token(state: EmulatorState) -> float:
    """Seconds per output token."""
    base: float = state.config.per_token_latency
    return base * _factor(state) if base else 0.0
