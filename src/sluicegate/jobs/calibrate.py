"""Calibrating the character-based input estimate against the API's own count, on a sample of the input.

Anthropic's `POST /v1/messages/count_tokens` is free and exact (it has its own rate limit, separate from
Messages). Counting a few requests and comparing with the heuristic gives the factor that turns the
characters-per-token guess into the model's real tokenization for this input (English prose, code and other
languages differ by tens of percent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx2

from ..providers.anthropic import AnthropicProvider
from ..tokens import heuristic_tokens

__all__ = ["count_tokens_scale"]

_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")


async def count_tokens_scale(
    sample: Iterable[Mapping[str, Any]],
    *,
    api_key: str,
    base_url: str,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> float | None:
    """Counted tokens over heuristic tokens for the sample (None when nothing could be counted)."""
    counted = guessed = 0
    provider = AnthropicProvider()
    url = base_url.rstrip("/") + "/v1/messages/count_tokens"
    headers = {**provider.auth_headers(api_key), "content-type": "application/json"}
    async with httpx2.AsyncClient(headers=headers, timeout=30.0, transport=transport) as client:
        for params in sample:
            body = {k: params[k] for k in _FIELDS if k in params}
            response = await client.post(url, json=body)
            if response.status_code != 200:
                continue  # a refused request says nothing about the tokenizer; the rest of the sample decides
            found = response.json().get("input_tokens")
            if isinstance(found, int):
                counted += found
                guessed += heuristic_tokens(params)
    return counted / guessed if guessed else None
