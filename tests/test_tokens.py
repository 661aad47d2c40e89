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


class _WordEncoding:
    """A stand-in for a tiktoken encoding: one token per whitespace-separated word; records what it was asked."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.texts: list[str] = []

    def encode(self, text: str, *, disallowed_special: Any = "all") -> list[int]:
        assert disallowed_special == ()  # a prompt that contains "<|endoftext|>" must not raise
        self.texts.append(text)
        return [0] * len(text.split())


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every encoding 'available' as a _WordEncoding; return the names loaded, in order."""
    import sluicegate.tokens

    names: list[str] = []

    def load(name: str) -> _WordEncoding:
        names.append(name)
        return _WordEncoding(name)

    monkeypatch.setattr(sluicegate.tokens, "_load_encoding", load)
    return names


def test_tiktoken_path_counts_system_tools_calls_and_images_flat(loaded: list[str]) -> None:
    """With an encoding, system, text blocks, tool calls and tools are encoded; images count 1600, not their bytes."""
    estimator = InputEstimator(provider="openai")
    params = {
        "model": "gpt-4o",
        "system": "be brief",
        "messages": [
            {"role": "system", "content": "you are terse"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "f"}}]},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    # words: 2 + 3 + 3 + 5 (the tool_calls JSON) + 5 (the tools JSON) = 18; + 1600 for the image; + 4 x 3 messages
    assert estimator.raw(params) == 18 + 1600 + 12
    assert loaded == ["o200k_base"]


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        (None, "cl100k_base"),
    ],
)
def test_encoding_follows_the_request_model(loaded: list[str], model: str | None, encoding: str) -> None:
    """The encoding is chosen per request from params["model"] and loaded once per estimator."""
    estimator = InputEstimator(provider="openai")
    params = {"messages": [{"role": "user", "content": "a b c"}]} | ({"model": model} if model else {})
    assert estimator.raw(params) == 3 + 4
    assert estimator.raw(params) == 3 + 4
    assert loaded == [encoding]


def test_constructor_model_is_the_default_encoding(loaded: list[str]) -> None:
    """Without a model in the params, the estimator's own model picks the encoding."""
    InputEstimator(provider="openai", model="gpt-4.1").raw({"messages": [{"role": "user", "content": "x"}]})
    assert loaded == ["o200k_base"]


def test_anthropic_estimator_never_loads_an_encoding(loaded: list[str]) -> None:
    """Claude's tokenizer is not tiktoken: the Anthropic estimator always uses the heuristic."""
    params = {"model": "claude-haiku-4-5", **_user("x" * 350)}
    assert InputEstimator().raw(params) == heuristic_tokens(params) == 104
    assert loaded == []


def test_a_failing_encoding_falls_back_to_the_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the encoder raises, the estimate is the heuristic's, never an exception."""
    import sluicegate.tokens

    class Broken:
        def encode(self, text: str, *, disallowed_special: Any = "all") -> list[int]:
            raise RuntimeError("broken")

    monkeypatch.setattr(sluicegate.tokens, "_load_encoding", lambda name: Broken())
    params = _user("x" * 350)
    assert InputEstimator(provider="openai").raw(params) == 104


def test_heuristic_counts_openai_tool_calls() -> None:
    """An assistant turn's tool_calls add the characters of their JSON."""
    calls = [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
    assert len(json.dumps(calls)) == 59
    params = {"messages": [{"role": "assistant", "content": None, "tool_calls": calls}]}
    assert heuristic_tokens(params) == 17 + 4  # ceil(59 / 3.5) + 4


def test_calibrated_matches_estimate() -> None:
    """calibrated(raw) is what estimate() gives, before and after warm-up, so the engine can count once."""
    estimator = InputEstimator()
    params = _user("x" * 350)  # raw 104
    assert estimator.calibrated(104) == estimator.estimate(params) == 115
    for _ in range(5):
        estimator.observe(100, 200)
    assert estimator.calibrated(104) == estimator.estimate(params) == 213  # ceil(104 * 2 * 1.02) = ceil(212.16)


def test_output_estimator_ignores_negative_counts() -> None:
    """A negative output count (a broken usage block) is not learnt."""
    estimator = OutputEstimator()
    for _ in range(10):
        estimator.observe(-5, 1000)
    assert estimator.reserve(1000) == 1000
