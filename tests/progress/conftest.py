"""Fixtures of the progress tests."""

from __future__ import annotations

import pytest

from sluicegate.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock at time 0; tests move it with progress_helpers.at()."""
    return FakeClock()
