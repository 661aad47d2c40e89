"""Pure parts of the shared limiter: pool names, rate-limit classes, and one process's share of concurrency."""

from __future__ import annotations

import pytest

from sluicegate.limits._pool import PoolView, pool_name, rate_limit_class, redacted


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("anthropic", "claude-opus-4-7", "anthropic:opus-4"),
        ("anthropic", "claude-opus-4-1-20250805", "anthropic:opus-4"),
        ("anthropic", "claude-sonnet-4-6", "anthropic:sonnet-4"),
        ("anthropic", "claude-haiku-4-5", "anthropic:haiku-4"),
        ("anthropic", "claude-3-5-haiku-20241022", "anthropic:haiku-3"),
        ("anthropic", None, "anthropic"),
        ("openai", "gpt-4o-mini", "openai:gpt-4o-mini"),
    ],
)
def test_rate_limit_class_groups_models_that_share_a_limit(provider: str, model: str | None, expected: str) -> None:
    """Opus 4.x share one class, Sonnet 4.x another; OpenAI models are each their own."""
    assert rate_limit_class(provider, model) == expected


def test_pool_name_is_stable_and_never_contains_the_key() -> None:
    """Same key, URL and class give the same name; any difference gives another; the key is not in it."""
    key = "sk-ant-SECRET-123"
    name = pool_name(key, "https://api.anthropic.com/", "anthropic:opus-4")
    assert name == pool_name(key, "https://api.anthropic.com", "anthropic:opus-4")
    assert name != pool_name(key, "https://api.anthropic.com", "anthropic:sonnet-4")
    assert name != pool_name("other", "https://api.anthropic.com", "anthropic:opus-4")
    assert "SECRET" not in name
    assert len(name) == 24


def test_redacted_hides_only_the_password() -> None:
    """A Redis URL's password is starred out for messages; host, port and db stay."""
    assert redacted("redis://user:pw@127.0.0.1:6379/2") == "redis://user:***@127.0.0.1:6379/2"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


# 10 requests/s at 1 s latency: Little's law gives 10 in flight, doubled for headroom, plus 2 = 22 for the pool.
KNOWN = PoolView(live=4, demand=40.0, seen=True, latency=1.0, rates=(10.0, None, None, None))


@pytest.mark.parametrize(
    ("mine", "reported", "expected"),
    [
        (10, 10.0, 6),  # four equally busy processes: a quarter each, rounded up
        (30, 10.0, 11),  # busier than reported: 30 of the 60 wanted now
        (1, 1.0, 1),  # one item against 39 elsewhere: never starved of its one slot
        (0, 0.0, 6),  # idle: the even split, taken only when work comes
    ],
)
def test_share_follows_demand(mine: int, reported: float, expected: int) -> None:
    """A process's share of the pool's concurrency is its part of the pool's demand, at least one slot."""
    assert KNOWN.concurrency() == 22
    assert KNOWN.share(mine, reported) == expected


def test_concurrency_without_known_limits_is_the_pools_aimd_value() -> None:
    """No limits learnt (a server without rate-limit headers): the shared AIMD value sizes the pool."""
    assert PoolView(aimd=7.6).concurrency() == 7
    assert PoolView(rates=(None, 1000.0, None, None), avg_in=100.0, latency=0.5).concurrency() == 12


def test_parse_reads_the_heartbeat_reply() -> None:
    """The heartbeat's strings (empty for unknown) become numbers and Nones."""
    reply = [b"3", b"12", b"0.5", b"1", b"8", b"0.9", b"120", b"", b"50", b"0.8333", b"", b"", b"", b"", b"", b""]
    view = PoolView.parse(reply)
    assert (view.live, view.demand, view.pause, view.seen, view.aimd) == (3, 12.0, 0.5, True, 8.0)
    assert (view.latency, view.avg_in, view.avg_out) == (0.9, 120.0, None)
    assert view.limits == (50.0, None, None, None)
    assert view.rates == (0.8333, None, None, None)


def test_parse_reads_the_smooth_paces_and_the_pace_epoch() -> None:
    """After the smooth flags: pace, good, refused pace and shortest window per dimension, then the pace epoch."""
    head = [b"1", b"0", b"0", b"1", b"4", b"", b"", b""] + [b"50", b"4"] + [b""] * 6
    smooth = [b"1", b"", b"", b""]
    paces = [b"8", b"8", b"16", b"5.5"] + [b""] * 12
    view = PoolView.parse([*head, *smooth, *paces, b"7"])
    assert view.smooth == (True, False, False, False)
    assert view.paces[0] == (8.0, 8.0, 16.0, 5.5)
    assert view.paces[1] == (None, None, None, None)
    assert view.epoch == 7
