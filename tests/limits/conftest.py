"""Fixtures shared by the shared-limiter tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from sluicegate.limits.shared import SharedLimiter


@pytest.fixture
def pool(redis_url: str) -> Callable[..., SharedLimiter]:
    """Factory of limiters that all join one fresh pool, as separate processes would (open them with `async with`)."""
    name = uuid.uuid4().hex

    def make(**kwargs: Any) -> SharedLimiter:
        return SharedLimiter(redis_url, name=name, **kwargs)

    return make
