"""The library's environment rule: the SDKs' own variables fill what the caller left unset, an argument wins."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import sluicegate
from sluicegate._environment import resolve_endpoint
from sluicegate.emulator import RunningEmulator


@pytest.mark.parametrize(
    ("provider", "api_key", "base_url", "environ", "expected"),
    [
        ("anthropic", None, None, {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://e"}, ("k", "http://e")),
        ("anthropic", "arg", None, {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://e"}, ("arg", "http://e")),
        ("anthropic", None, "http://arg", {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://e"}, ("k", "http://arg")),
        ("anthropic", None, None, {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": ""}, ("k", None)),
        ("anthropic", None, None, {"ANTHROPIC_API_KEY": "k", "OPENAI_BASE_URL": "http://o"}, ("k", None)),
        ("openai", None, None, {"OPENAI_API_KEY": "o", "OPENAI_BASE_URL": "http://o", "ANTHROPIC_API_KEY": "k"}, ("o", "http://o")),
        ("acme", "arg", "http://x", {"ANTHROPIC_API_KEY": "k"}, ("arg", "http://x")),
    ],
)  # fmt: skip
def test_arguments_win_and_the_providers_own_variables_fill_the_rest(
    provider: str, api_key: str | None, base_url: str | None, environ: dict[str, str], expected: tuple[str, str | None]
) -> None:
    """Each unset argument comes from the provider's SDK variable, never another provider's; an empty one is unset."""
    assert resolve_endpoint(provider, api_key, base_url, environ) == expected


@pytest.mark.parametrize(("provider", "variable"), [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")])
def test_no_key_is_one_line_naming_the_variable_and_the_emulator(provider: str, variable: str) -> None:
    """With no key anywhere the error names the provider's variable and how to run against the emulator."""
    with pytest.raises(sluicegate.ConfigError) as caught:
        resolve_endpoint(provider, None, None, {})
    message = str(caught.value)
    assert variable in message
    assert "sluicegate emulate" in message
    assert "\n" not in message


def test_a_third_party_provider_reads_nothing() -> None:
    """A provider the SDK conventions do not cover gets no key from the environment."""
    with pytest.raises(sluicegate.ConfigError, match="api_key is required for provider 'acme'"):
        resolve_endpoint("acme", None, None, {"ANTHROPIC_API_KEY": "k"})


def test_engine_without_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine() with nothing set raises the ConfigError at once, before any request."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(sluicegate.ConfigError, match="set ANTHROPIC_API_KEY"):
        sluicegate.Engine()


def test_engine_repr_shows_the_environment_base_url_not_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The base URL read from the environment is the one used; the key read with it never shows."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-123")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    engine = sluicegate.Engine()
    assert "http://127.0.0.1:9" in repr(engine)
    assert "secret" not in repr(engine)


@pytest.mark.e2e
def test_sync_run_with_no_arguments_reaches_the_emulator_named_in_the_environment(
    emulator: Callable[..., RunningEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sluicegate.run(requests)` with only the SDK variables set answers every request from that endpoint."""
    emu = emulator(minute=3.0, rpm=2000, first_token_latency=0.01)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emu.base_url)
    requests = [
        {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"hi {i}"}]}
        for i in range(3)
    ]
    results = sluicegate.run(requests)
    assert [r.error for r in results] == [None, None, None]
    assert emu.stats()["status"]["200"] == 3
