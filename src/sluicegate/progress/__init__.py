"""Live progress for runs: a tracker fed by engine events, pure renderers, and a display driver."""

from __future__ import annotations

from ._display import ProgressDisplay
from ._render import Utilization, known_limits, render_live, render_plain, render_summary, utilization
from ._tracker import ObservedLimits, ProgressSnapshot, ProgressTracker

__all__ = [
    "ObservedLimits",
    "ProgressDisplay",
    "ProgressSnapshot",
    "ProgressTracker",
    "Utilization",
    "known_limits",
    "render_live",
    "render_plain",
    "render_summary",
    "utilization",
]
