"""Tier presets follow the published table per model class: Haiku 4.5 has its own token limits."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import pytest

from sluicegate.emulator import EmulatorConfig, RunningEmulator

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("tier", "model", "expected"),
    [
        (1, "claude-haiku-4-5", ("50", "50000", "10000")),
        (1, "claude-opus-4-1", ("50", "30000", "8000")),
        (3, "claude-haiku-4-5", ("2000", "1000000", "200000")),
        (3, "claude-opus-4-1", ("2000", "800000", "160000")),
    ],
)
def test_headers_report_the_tier_limits_of_the_model_class(
    emulator: Callable[..., RunningEmulator], tier: int, model: str, expected: tuple[str, str, str]
) -> None:
    """The limit headers carry the preset of the request's model class for the configured tier."""
    emu = emulator(tier=tier)
    client = anthropic.Anthropic(base_url=emu.base_url, api_key="k", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    got = tuple(
        raw.headers[f"anthropic-ratelimit-{name}-limit"] for name in ("requests", "input-tokens", "output-tokens")
    )
    assert got == expected
    client.close()


def test_explicit_limits_override_the_preset() -> None:
    """--rpm/--itpm/--otpm win over the tier table for every model class."""
    config = EmulatorConfig(tier=1, itpm=123)
    assert config.limits("haiku") == (50, 123, 10_000)
    assert config.limits("sonnet") == (50, 123, 8_000)


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-opus-4-8", "claude-sonnet-5", "claude-opus-4-5"])
def test_current_models_are_served(emulator: Callable[..., RunningEmulator], model: str) -> None:
    """The SDK's current model ids answer (an alias answers with its dated id); an unknown one is a 404."""
    emu = emulator()
    client = anthropic.Anthropic(base_url=emu.base_url, api_key="k", max_retries=0)
    message = client.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert message.model.startswith(model)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nope-9", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    client.close()
