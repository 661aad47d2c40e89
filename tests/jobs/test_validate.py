"""What the APIs document as invalid is refused by the reader as a named problem, before anything is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluicegate._models import RequestItem
from sluicegate.jobs.reader import Defaults, InputProblem, read_requests

D = Defaults(model="claude-haiku-4-5", max_tokens=16)


def _one(obj: dict[str, Any], provider: str = "anthropic") -> RequestItem | InputProblem:
    parsed = list(read_requests([json.dumps(obj)], defaults=D, provider=provider))  # type: ignore[arg-type]
    assert len(parsed) == 1
    return parsed[0]


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ({"id": "a", "prompt": "x", "max_tokens": 10**30}, "max_tokens", "over 128,000"),
        ({"id": "a", "prompt": "x", "max_tokens": 128_001}, "max_tokens", "over 128,000"),
        ({"id": "a", "prompt": "x", "max_tokens": 0}, "max_tokens", "positive integer"),
        ({"id": "a", "prompt": "x", "temperature": 1.5}, "temperature", "from 0 to 1"),
        ({"id": "a", "prompt": "x", "temperature": "hot"}, "temperature", "from 0 to 1"),
        ({"id": "a", "messages": [{"role": "system", "content": "x"}]}, "messages[0].role", "assistant, user"),
        (
            {"id": "a", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages[0].content[0].type",
            "type",
        ),
        ({"id": "a", "messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]", "an object"),
        (
            {"id": "a", "messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
            "messages[0].content[0].text",
            "'text' string",
        ),
    ],
)
def test_values_the_api_refuses_are_named_problems(line: dict[str, Any], field: str, words: str) -> None:
    """Out-of-range max_tokens and temperature, a wrong role, a malformed block: a problem naming the field."""
    got = _one(line)
    assert isinstance(got, InputProblem), got
    assert got.custom_id == "a"
    assert got.field == field
    assert words in got.message


def test_openai_allows_its_own_ranges() -> None:
    """OpenAI's temperature goes to 2 and its roles include system; 128,000 output tokens is still the ceiling."""
    ok = _one(
        {
            "id": "a",
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}],
            "temperature": 1.8,
        },
        provider="openai",
    )
    assert isinstance(ok, RequestItem)
    bad = _one({"id": "a", "prompt": "x", "max_completion_tokens": 200_000}, provider="openai")
    assert isinstance(bad, InputProblem)
    assert bad.field == "max_completion_tokens"


def test_unknown_block_types_and_top_level_fields_pass_to_the_api() -> None:
    """New block types and fields appear in the API first: the reader leaves them to the API's own 400."""
    got = _one({"id": "a", "messages": [{"role": "user", "content": [{"type": "future_block"}]}], "new_field": 1})
    assert isinstance(got, RequestItem)
