"""Seeded fault choice: by probability or inside a scheduled window of real seconds since start."""

from __future__ import annotations

from typing import Any

from sluicegate.emulator.config import FaultSpec


def pick_fault(state: Any) -> FaultSpec | None:
    """The fault this request suffers, if any (first matching spec wins)."""
    now = state.now()
    specs: tuple[FaultSpec, ...] = state.config.faults
    for spec in specs:
        if spec.start is not None:
            end = float("inf") if spec.end is None else spec.end
            if spec.start <= now < end:
                return spec
            continue
        if spec.probability and state.rng.random() < spec.probability:
            return spec
    return None
