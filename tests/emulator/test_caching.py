"""The pure prompt cache: breakpoints, commit-before-read, TTLs, minimum lengths and the token split."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.emulator.caching import CacheControlError, PromptCache, min_cacheable_tokens
from sluicegate.emulator.prompt import count_tokens, prompt_blocks

MODEL = "claude-sonnet-4-5-20250929"  # minimum cacheable prefix: 1024 tokens
BIG = "x" * 8000  # 2000 tokens under the 4-bytes-per-token rule


def _params(system: str = BIG, question: str = "hi", ttl: str | None = None, **extra: Any) -> dict[str, Any]:
    cc: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        cc["ttl"] = ttl
    return {
        "model": MODEL,
        "max_tokens": 10,
        "system": [{"type": "text", "text": system, "cache_control": cc}],
        "messages": [{"role": "user", "content": question}],
        **extra,
    }


def _prefix_tokens(params: dict[str, Any], upto: int) -> int:
    return sum(b.tokens for b in prompt_blocks(params)[: upto + 1])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_simultaneous_plans_before_commit_are_all_writes(n: int) -> None:
    """N requests planned before the first response starts each write the entry; none reads."""
    cache = PromptCache()
    params = _params()
    plans = [cache.plan(params, MODEL, 0.0) for _ in range(n)]
    prefix = _prefix_tokens(params, 0)
    for plan in plans:
        assert (plan.read_tokens, plan.write_5m_tokens, plan.write_1h_tokens) == (0, prefix, 0)
        assert plan.uncached_tokens == count_tokens(params) - prefix
    for plan in plans:
        cache.commit(plan, 0.0)
    assert len(cache) == 1


def test_after_commit_identical_prefix_reads() -> None:
    """Once a write is committed, the same prefix with a different tail reads it and writes nothing."""
    cache = PromptCache()
    cache.commit(cache.plan(_params(question="first"), MODEL, 0.0), 0.0)
    params = _params(question="a different question")
    plan = cache.plan(params, MODEL, 1.0)
    assert plan.read_tokens == _prefix_tokens(params, 0)
    assert plan.write_tokens == 0
    assert plan.total_tokens == count_tokens(params)
    assert plan.rate_limited_tokens == plan.uncached_tokens
    assert plan.usage()["cache_read_input_tokens"] == plan.read_tokens


def test_different_prefix_or_model_misses() -> None:
    """A one-character change in the prefix, or another model, is a miss."""
    cache = PromptCache()
    cache.commit(cache.plan(_params(), MODEL, 0.0), 0.0)
    assert cache.plan(_params(system=BIG + "y"), MODEL, 1.0).read_tokens == 0
    other = "claude-opus-4-1-20250805"
    assert cache.plan(_params(model=other), other, 1.0).read_tokens == 0
    assert cache.plan(_params(), MODEL, 1.0, scope="another-org").read_tokens == 0


@pytest.mark.parametrize(
    ("ttl", "read_at", "hit"),
    [(None, 299.0, True), (None, 300.0, False), ("1h", 300.0, True), ("1h", 3599.0, True), ("1h", 3600.0, False)],
)
def test_ttl_expiry(ttl: str | None, read_at: float, hit: bool) -> None:
    """An entry lives 5 minutes (or 1 hour) of emulated time from the commit."""
    cache = PromptCache()
    cache.commit(cache.plan(_params(ttl=ttl), MODEL, 0.0), 0.0)
    assert (cache.plan(_params(ttl=ttl), MODEL, read_at).read_tokens > 0) is hit


def test_read_refreshes_ttl() -> None:
    """A read renews the lifetime from the moment it is committed."""
    cache = PromptCache()
    cache.commit(cache.plan(_params(), MODEL, 0.0), 0.0)
    cache.commit(cache.plan(_params(), MODEL, 200.0), 200.0)
    assert cache.plan(_params(), MODEL, 450.0).read_tokens > 0
    assert cache.plan(_params(), MODEL, 500.0).read_tokens == 0


@pytest.mark.parametrize(
    ("ttl", "field"), [(None, "write_5m_tokens"), ("5m", "write_5m_tokens"), ("1h", "write_1h_tokens")]
)
def test_write_ttl_split(ttl: str | None, field: str) -> None:
    """A write is billed at the TTL of its breakpoint."""
    params = _params(ttl=ttl)
    plan = PromptCache().plan(params, MODEL, 0.0)
    assert getattr(plan, field) == _prefix_tokens(params, 0)
    assert plan.write_tokens == getattr(plan, field)


@pytest.mark.parametrize(
    ("model", "system_chars", "cached"),
    [
        ("claude-sonnet-4-5-20250929", 4200, True),  # 1050 + framing ≥ 1024
        ("claude-sonnet-4-5-20250929", 3000, False),
        ("claude-haiku-4-5-20251001", 8000, False),  # 2000 < 4096
        ("claude-haiku-4-5-20251001", 17000, True),
        ("claude-opus-5", 2100, True),
    ],
)
def test_minimum_cacheable_length_is_silent(model: str, system_chars: int, cached: bool) -> None:
    """Below the model's minimum nothing is written or read, and no error is raised."""
    cache = PromptCache()
    params = _params(system="z" * system_chars, model=model)
    plan = cache.plan(params, model, 0.0)
    assert (plan.write_tokens > 0) is cached
    assert plan.total_tokens == count_tokens(params)
    cache.commit(plan, 0.0)
    assert (cache.plan(params, model, 1.0).read_tokens > 0) is cached


def test_min_table_longest_prefix_and_override() -> None:
    """Model minimums match the longest id prefix, and a custom table replaces the defaults."""
    assert min_cacheable_tokens("claude-opus-4-5-20251101") == 4096
    assert min_cacheable_tokens("claude-opus-4-1-20250805") == 1024
    assert min_cacheable_tokens("claude-sonnet-4-6") == 2048
    assert min_cacheable_tokens("unknown-model") == 1024
    assert PromptCache(min_tokens={"claude": 10}).min_tokens("claude-haiku-4-5") == 10


def test_automatic_mode_caches_whole_prompt() -> None:
    """A top-level cache_control puts a breakpoint on the last block: the next turn reads the conversation."""
    cache = PromptCache()
    turn1: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 10,
        "cache_control": {"type": "ephemeral"},
        "system": BIG,
        "messages": [{"role": "user", "content": "q1"}],
    }
    plan1 = cache.plan(turn1, MODEL, 0.0)
    assert plan1.write_tokens == count_tokens(turn1)
    assert plan1.uncached_tokens == 0
    cache.commit(plan1, 0.0)
    turn2 = {
        **turn1,
        "messages": [*turn1["messages"], {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}],
    }
    plan2 = cache.plan(turn2, MODEL, 1.0)
    assert plan2.read_tokens == count_tokens(turn1)
    assert plan2.write_tokens == count_tokens(turn2) - count_tokens(turn1)


def test_lookback_finds_earlier_write_within_window() -> None:
    """A breakpoint moved later still reads an entry written up to the lookback window before it."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": f"m{i}"} for i in range(30)]

    def at(i: int) -> dict[str, Any]:
        content = [dict(b) for b in blocks]
        content[i]["cache_control"] = {"type": "ephemeral"}
        return {"model": MODEL, "max_tokens": 5, "system": BIG, "messages": [{"role": "user", "content": content}]}

    for moved_to, lookback, hit in [(20, 20, True), (21, 20, True), (22, 20, False), (22, 21, True)]:
        cache = PromptCache(lookback_blocks=lookback)
        cache.commit(cache.plan(at(1), MODEL, 0.0), 0.0)  # entry at block 2 (system is block 0)
        plan = cache.plan(at(moved_to), MODEL, 1.0)
        assert (plan.read_tokens == _prefix_tokens(at(1), 2)) is hit, (moved_to, lookback)


def test_multiple_breakpoints_read_longest_and_write_the_rest() -> None:
    """With two breakpoints, a hit on the first reads it and writes the segment up to the second."""
    cache = PromptCache()
    tools = [
        {
            "name": "t",
            "description": "d" * 6000,
            "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    first: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 5,
        "tools": tools,
        "messages": [{"role": "user", "content": "q"}],
    }
    cache.commit(cache.plan(first, MODEL, 0.0), 0.0)
    second = {**first, "system": [{"type": "text", "text": BIG, "cache_control": {"type": "ephemeral"}}]}
    plan = cache.plan(second, MODEL, 1.0)
    assert plan.read_tokens == _prefix_tokens(second, 0)
    assert plan.write_5m_tokens == _prefix_tokens(second, 1) - _prefix_tokens(second, 0)
    assert plan.write_1h_tokens == 0
    assert len(plan.writes) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}] * 5},
            "maximum of 4",
        ),
        (
            {
                "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}] * 4,
                "cache_control": {"type": "ephemeral"},
            },
            "maximum of 4",
        ),
        (
            {
                "system": [
                    {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                ]
            },
            "must not come after",
        ),
        ({"system": [{"type": "text", "text": "a", "cache_control": {"type": "persistent"}}]}, "ephemeral"),
        ({"system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "2h"}}]}, "ttl"),
    ],
)
def test_invalid_cache_control_raises(params: dict[str, Any], message: str) -> None:
    """Breakpoint misuse is a CacheControlError (the API's 400), not silently ignored."""
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "q"}], **params}
    with pytest.raises(CacheControlError, match=message):
        PromptCache().plan(body, MODEL, 0.0)


def test_no_breakpoints_is_all_uncached_and_clear_forgets() -> None:
    """Without cache_control everything is uncached; clear() drops every entry."""
    cache = PromptCache()
    params = {"model": MODEL, "max_tokens": 5, "system": BIG, "messages": [{"role": "user", "content": "q"}]}
    plan = cache.plan(params, MODEL, 0.0)
    assert (plan.read_tokens, plan.write_tokens, plan.uncached_tokens) == (0, 0, count_tokens(params))
    cache.commit(cache.plan(_params(), MODEL, 0.0), 0.0)
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0


def test_tool_choice_change_invalidates_messages_but_not_system() -> None:
    """Changing tool_choice misses an entry in the messages section, while a system entry still hits."""
    cache = PromptCache()
    convo: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": BIG, "cache_control": {"type": "ephemeral"}}]}
        ],
    }
    cache.commit(cache.plan(convo, MODEL, 0.0), 0.0)
    assert cache.plan(convo, MODEL, 1.0).read_tokens > 0
    assert cache.plan({**convo, "tool_choice": {"type": "auto"}}, MODEL, 1.0).read_tokens == 0
    cache.commit(cache.plan(_params(), MODEL, 0.0), 0.0)
    assert cache.plan(_params(tool_choice={"type": "auto"}), MODEL, 1.0).read_tokens > 0


def test_entry_count_is_bounded_by_max_entries() -> None:
    """Distinct prefixes within one TTL never grow the store past max_entries; the oldest go first."""
    cache = PromptCache(max_entries=3)
    for i in range(10):
        cache.commit(cache.plan(_params(system=f"{i} " + BIG), MODEL, 1.0), 1.0)
        assert len(cache) <= 3
    assert cache.plan(_params(system="9 " + BIG), MODEL, 2.0).read_tokens > 0
    assert cache.plan(_params(system="0 " + BIG), MODEL, 2.0).read_tokens == 0
