"""API flavours: Anthropic Messages and OpenAI Chat Completions, behind one small protocol."""

from __future__ import annotations

from .anthropic import AnthropicProvider
from .base import ErrorDetail, Provider, StreamAssembler, StreamFailed
from .openai import OpenAIProvider

__all__ = ["AnthropicProvider", "ErrorDetail", "OpenAIProvider", "Provider", "StreamAssembler", "StreamFailed", "get"]


def get(name: str) -> Provider:
    """The provider called `name` ("anthropic" or "openai")."""
    if name == "anthropic":
        return AnthropicProvider()
    if name == "openai":
        return OpenAIProvider()
    from .._exceptions import ConfigError

    raise ConfigError(f"unknown provider {name!r}: expected 'anthropic' or 'openai'")
