"""Integrations with other libraries: the SDK drop-in transport for the official anthropic and openai clients."""

from .sdk import LimitedTransport, http_client

__all__ = ["LimitedTransport", "http_client"]
