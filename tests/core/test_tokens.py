"""Token estimates: the character heuristic on every content shape, online input calibration, output reserve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluicegate.tokens import InputEstimator, OutputEstimator, heuristic_tokens


def _user(content: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}]}


TOOLS = [{"name": "get_weather", "description": "Weather by city", "input_schema": {"type": "object"}}]


@pytest.mark.parametrize(
    ("params", "tokens"),
    [
        (_user("hello world"), 8),  # ceil(11 / 3.5) + 4 per message
        (_user("x" * 350), 104),
        (_user(""), 4),
        (_user([{"type": "text", "text": "x" * 35}, {"type": "text", "text": "y" * 35}]), 24),
        (_user([{"type": "image", "source": {"type": "base64", "data": "A" * 99_999}}]), 1604),
        (_user([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]), 1604),
        (
            # 7 chars of input JSON ({"a": 1}) + 1 of name, then 7 chars of tool_result text
            _user([{"type": "tool_use", "name": "f", "input": {"a": 1}}, {"type": "tool_result", "content": "x" * 7}]),
            4 + 5,
        ),
        (_user([{"type": "tool_result", "content": [{"type": "text", "text": "x" * 70}]}]), 24),
        ({"system": "s" * 35, "messages": [{"role": "user", "content": "u" * 35}]}, 24),
        ({"system": [{"type": "text", "text": "s" * 70}], "messages": []}, 20),
        (
            {"messages": [{"role": "user", "content": "a" * 7}, {"role": "assistant", "content": "b" * 7}]},
            12,
        ),
    ],
)
def test_heuristic_exact_counts(params: dict[str, Any], tokens: int) -> None:
    """About 3.5 characters a token plus 4 per message; images count 1600; tools count their JSON."""
    assert heuristic_tokens(params) == tokens


def test_heuristic_tools_json_length() -> None:
    """Tools add the characters of their JSON to the prompt's characters."""
    assert len(json.dumps(TOOLS)) == 95
    assert heuristic_tokens({"tools": TOOLS, "messages": []}) == 28  # ceil(95 / 3.5)
    assert heuristic_tokens({"tools": TOOLS, **_user("x" * 7)}) == 34  # ceil(102 / 3.5) + 4


_loop: list[Any] = []
_loop.append(_loop)
_deep: list[Any] = []
_cursor = _deep
for _ in range(5000):
    _next: list[Any] = []
    _cursor.append({"type": "tool_result", "content": _next})
    _cursor = _next


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"messages": None},
        {"messages": "not a list"},
        {"messages": [None, 3, "x"]},
        _user(None),
        _user({"unexpected": "dict"}),
        _user([None, 5, {"type": "text", "text": None}, {"no_type": True}]),
        _user([{"type": "tool_use", "name": "f", "input": {"set": {1, 2}}}]),
        _user([{"type": "custom", "payload": object()}]),
        _user([{"type": "custom", "payload": _loop}]),
        _user(_deep),
        {"tools": [{"name": "f", "fn": object()}]},
        {"system": 42},
        None,
        "a string",
    ],
)
def test_heuristic_never_raises(params: Any) -> None:
    """Any odd shape gives a positive estimate instead of an exception (validation is the API's job)."""
    assert heuristic_tokens(params) >= 1


def test_heuristic_unserialisable_tool_input_still_counts() -> None:
    """A tool_use input with a non-JSON value is counted via str(), not collapsed to 1 token."""
    assert heuristic_tokens(_user([{"type": "tool_use", "name": "f", "input": {"s": "x" * 350, "n": {1}}}])) > 100


def test_input_estimator_uncalibrated_leans_high() -> None:
    """Before any usage is seen the estimate is the raw count plus 10%."""
    estimator = InputEstimator()
    params = _user("x" * 350)
    assert estimator.raw(params) == 104
    assert estimator.ratio == 1.0
    assert estimator.estimate(params) == 115  # ceil(104 * 1.1)


def test_input_estimator_calibrates_on_a_constant_ratio() -> None:
    """With actual = 1.5 x raw, the first observation sets the ratio; after warm-up the margin drops to 2%."""
    estimator = InputEstimator()
    params = _user("x" * 350)  # raw 104
    estimator.observe(100, 150)
    assert estimator.ratio == 1.5
    assert estimator.estimate(params) == 172  # ceil(104 * 1.5 * 1.1) = ceil(171.6)
    for _ in range(3):
        estimator.observe(104, 156)
    assert estimator.ratio == 1.5
    assert estimator.estimate(params) == 172
    estimator.observe(104, 156)  # the 5th observation ends the warm-up
    assert estimator.ratio == 1.5
    assert estimator.estimate(params) == 160  # ceil(104 * 1.5 * 1.02) = ceil(159.12)


def test_input_estimator_ewma_converges() -> None:
    """A wrong first ratio is halved away during warm-up, then pulled in at 5% per observation."""
    estimator = InputEstimator()
    estimator.observe(100, 200)
    ratios = [estimator.ratio]
    for _ in range(4):
        estimator.observe(100, 150)
        ratios.append(estimator.ratio)
    assert ratios == [2.0, 1.75, 1.625, 1.5625, 1.53125]
    estimator.observe(100, 150)
    assert estimator.ratio == pytest.approx(1.5296875, abs=1e-12)
    for _ in range(300):
        estimator.observe(100, 150)
    assert estimator.ratio == pytest.approx(1.5, abs=1e-6)


@pytest.mark.parametrize(
    ("raw", "actual", "ratio"),
    [(100, 1000, 4.0), (100, 10, 0.25), (100, 100, 1.0), (0, 100, 1.0), (100, 0, 1.0), (-5, 10, 1.0)],
)
def test_input_estimator_clamps_and_ignores_nonsense(raw: int, actual: int, ratio: float) -> None:
    """One observation's ratio is clamped to [0.25, 4]; zero or negative counts are ignored."""
    estimator = InputEstimator()
    estimator.observe(raw, actual)
    assert estimator.ratio == ratio


def test_openai_estimator_never_raises() -> None:
    """The OpenAI estimator (tiktoken when its encoding is available, else the heuristic) gives a positive count."""
    estimator = InputEstimator(provider="openai", model="gpt-4o")
    assert estimator.raw(_user("hello world")) >= 1
    assert estimator.raw({"messages": [None, {"content": [{"type": "text", "text": "hi"}]}]}) >= 1
    assert estimator.estimate({}) >= 1


def test_output_estimator_reserves_max_tokens_during_warmup() -> None:
    """Until 10 answers are seen, the full max_tokens is reserved (at least 1)."""
    estimator = OutputEstimator()
    for n in range(9):
        assert estimator.reserve(1000) == 1000
        estimator.observe(n + 1, 1000)
    assert estimator.reserve(1000) == 1000
    assert estimator.reserve(0) == 1


def test_output_estimator_p90_reserve() -> None:
    """After warm-up the reserve is 1.1 x the 90th percentile of recent answers, capped by max_tokens."""
    estimator = OutputEstimator()
    for n in range(1, 11):
        estimator.observe(n, 1000)
    assert estimator.reserve(1000) == 10  # p90 of 1..10 is 9; ceil(9.9)
    assert estimator.reserve(5) == 5
    constant = OutputEstimator()
    for _ in range(10):
        constant.observe(100, 1000)
    assert constant.reserve(1000) == 110  # 1.1 x 100 without float noise


def test_output_estimator_recomputes_every_32_answers() -> None:
    """The percentile is refreshed at 32, 64, ... answers, so a shift in answer length is picked up."""
    estimator = OutputEstimator()
    for _ in range(10):
        estimator.observe(100, 1000)
    for _ in range(21):
        estimator.observe(500, 1000)
    assert estimator.reserve(1000) == 110  # 31 seen: still the first percentile
    estimator.observe(500, 1000)
    assert estimator.reserve(1000) == 550  # 32 seen: p90 of 10 x 100 and 22 x 500


def test_output_estimator_window_forgets_old_answers() -> None:
    """Only the last 256 answers count: long-past outliers stop inflating the reserve."""
    estimator = OutputEstimator()
    for _ in range(32):
        estimator.observe(4000, 4096)
    assert estimator.reserve(4096) == 4096  # min(max_tokens, 4400)
    for _ in range(256):
        estimator.observe(10, 4096)
    assert estimator.reserve(4096) == 11


def test_tiktoken_is_used_only_when_its_encoding_is_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No download is ever attempted: without a cached encoding the OpenAI estimator uses the heuristic."""
    import hashlib

    from sluicegate.tokens import _tiktoken_cached

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert not _tiktoken_cached("cl100k_base")
    params = {"messages": [{"role": "user", "content": "hello there, how are you today?"}]}
    assert InputEstimator(provider="openai").raw(params) == heuristic_tokens(params)
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"")
    assert _tiktoken_cached("cl100k_base")
