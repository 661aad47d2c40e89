"""Fixtures of the progress tests."""

from __future__ import annotations

import pytest
from progress_helpers import SettableClock


@pytest.fixture
def clock() -> SettableClock:
    """A clock at time 0 that the test moves by setting `.t`."""
    return SettableClock()
