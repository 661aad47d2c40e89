"""Usage: the Anthropic usage object parsed (with the cache-write split by TTL), and usage added up."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate._models import Usage


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, Usage()),
        ({}, Usage()),
        ({"input_tokens": 5, "output_tokens": 7}, Usage(5, 7)),
        # Older responses: the total only, no split; all of it is taken as 5m writes.
        ({"input_tokens": 5, "cache_creation_input_tokens": 300}, Usage(5, 0, 300)),
        (
            {
                "input_tokens": 10,
                "output_tokens": 20,
                "cache_creation_input_tokens": 700,
                "cache_read_input_tokens": 40,
                "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 400},
            },
            Usage(10, 20, 700, 40, cache_creation_1h_input_tokens=400),
        ),
        (
            {"cache_creation_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 0}},
            Usage(),
        ),
        # Only the split was sent: the total is its sum.
        (
            {"cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4}},
            Usage(cache_creation_input_tokens=7, cache_creation_1h_input_tokens=4),
        ),
        # Null fields read as 0; a 1h part larger than the total is capped at the total.
        (
            {"cache_creation_input_tokens": 5, "cache_creation": {"ephemeral_1h_input_tokens": 9}},
            Usage(cache_creation_input_tokens=5, cache_creation_1h_input_tokens=5),
        ),
        ({"cache_creation": None, "input_tokens": None}, Usage()),
    ],
)
def test_from_anthropic(data: dict[str, Any] | None, expected: Usage) -> None:
    """The API's usage object maps onto Usage; the 1h write part comes from usage.cache_creation."""
    assert Usage.from_anthropic(data) == expected


def test_the_5m_part_is_the_rest_of_the_writes() -> None:
    """cache_creation_5m_input_tokens = all writes minus the 1h ones."""
    usage = Usage(cache_creation_input_tokens=700, cache_creation_1h_input_tokens=400)
    assert usage.cache_creation_5m_input_tokens == 300
    assert Usage(cache_creation_input_tokens=700).cache_creation_5m_input_tokens == 700


def test_addition_keeps_the_split() -> None:
    """Adding usages adds every field, the 1h write part included."""
    a = Usage(1, 2, 30, 4, cache_creation_1h_input_tokens=10)
    b = Usage(10, 20, 300, 40, cache_creation_1h_input_tokens=100)
    assert a + b == Usage(11, 22, 330, 44, cache_creation_1h_input_tokens=110)
    assert Usage(1, 2, 3, 4) + Usage() == Usage(1, 2, 3, 4)
