"""Small frozen configuration objects for the engine."""

from __future__ import annotations

from dataclasses import dataclass

from ._exceptions import ConfigError

__all__ = ["Timeouts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Per-attempt timeouts in seconds.

    `idle` is the longest silence between two chunks of the response, so a long generation that keeps
    streaming is never killed by a total timeout meant for stuck connections; `total` caps one attempt.
    """

    connect: float = 10.0
    idle: float = 120.0
    total: float = 900.0

    def __post_init__(self) -> None:
        for name in ("connect", "idle", "total"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"timeout {name} must be positive")
