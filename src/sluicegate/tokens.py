"""Token estimates made before sending: input tokens (heuristic or tiktoken), calibrated online from real usage,
and the output tokens to reserve when the API counts produced tokens."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["InputEstimator", "OutputEstimator", "heuristic_tokens"]

_CHARS_PER_TOKEN = 3.5
_PER_MESSAGE = 4
_IMAGE_TOKENS = 1600


def _text_of(content: Any) -> int:
    """Characters of text in a message content (string or blocks); non-text blocks by a fixed weight."""
    if isinstance(content, str):
        return len(content)
    if not isinstance(content, list):
        return len(str(content)) if content is not None else 0
    chars = 0
    for block in content:
        if not isinstance(block, Mapping):
            chars += len(str(block))
            continue
        kind = block.get("type")
        if kind == "text":
            chars += len(str(block.get("text", "")))
        elif kind == "image" or kind == "image_url":
            chars += int(_IMAGE_TOKENS * _CHARS_PER_TOKEN)
        elif kind == "tool_use":
            chars += len(json.dumps(block.get("input", {}), default=str)) + len(str(block.get("name", "")))
        elif kind == "tool_result":
            chars += _text_of(block.get("content"))
        else:
            chars += len(json.dumps(block, default=str))
    return chars


def heuristic_tokens(params: Mapping[str, Any]) -> int:
    """A fast input-token guess from characters (about 3.5 per token) plus per-message overhead. Never raises."""
    try:
        chars = _text_of(params.get("system"))
        messages = params.get("messages") or []
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, Mapping):
                chars += _text_of(message.get("content"))
        tools = params.get("tools")
        if tools:
            chars += len(json.dumps(tools, default=str))
        count = len(messages) if isinstance(messages, list) else 0
    except (TypeError, ValueError, AttributeError, RecursionError):
        return 1
    return max(1, math.ceil(chars / _CHARS_PER_TOKEN) + _PER_MESSAGE * count)


def _ceil(value: float) -> int:
    """Ceiling that ignores float noise: 100 * 1.1 is 110.00000000000001, which must reserve 110, not 111."""
    return math.ceil(round(value, 9))


_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def _tiktoken_cached(name: str) -> bool:
    """Whether tiktoken has `name` on disk: loading it must never download (the engine may run offline, and
    tests talk to 127.0.0.1 only). Mirrors tiktoken's own cache lookup."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return False
    key = hashlib.sha1(_TIKTOKEN_URL.format(name).encode()).hexdigest()  # tiktoken names its cache files so
    return os.path.exists(os.path.join(cache_dir, key))


def _tiktoken_counter(model: str | None) -> Any:
    try:
        import tiktoken
    except ImportError:
        return None
    name = "cl100k_base"
    if model and model.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")):
        name = "o200k_base"
    if not _tiktoken_cached(name):
        return None  # the calibrated heuristic instead
    try:
        return tiktoken.get_encoding(name)
    except Exception:  # a corrupt cache file: fall back to the heuristic
        return None


class InputEstimator:
    """Input tokens before sending, corrected by the ratio actual/estimate learnt from real usage (EWMA)."""

    WARMUP = 5

    def __init__(self, *, provider: Literal["anthropic", "openai"] = "anthropic", model: str | None = None) -> None:
        self._provider = provider
        self._encoding: Any = _tiktoken_counter(model) if provider == "openai" else None
        self._ratio = 1.0
        self._observations = 0

    def raw(self, params: Mapping[str, Any]) -> int:
        """The uncalibrated count: tiktoken for OpenAI models when available, else the heuristic."""
        if self._encoding is not None:
            try:
                text = []
                for message in params.get("messages") or []:
                    content = message.get("content") if isinstance(message, Mapping) else message
                    text.append(content if isinstance(content, str) else json.dumps(content, default=str))
                if params.get("tools"):
                    text.append(json.dumps(params["tools"], default=str))
                return max(1, len(self._encoding.encode("\n".join(text), disallowed_special=())) + 4 * len(text))
            except Exception:
                return heuristic_tokens(params)
        return heuristic_tokens(params)

    def estimate(self, params: Mapping[str, Any]) -> int:
        # Until calibrated, lean high: an underestimate costs a 429, an overestimate only a little pace.
        margin = 1.1 if self._observations < self.WARMUP else 1.02
        return max(1, _ceil(self.raw(params) * self._ratio * margin))

    def observe(self, raw_estimate: int, actual: int) -> None:
        if raw_estimate <= 0 or actual <= 0:
            return
        ratio = min(4.0, max(0.25, actual / raw_estimate))
        self._observations += 1
        alpha = 0.5 if self._observations <= self.WARMUP else 0.05
        self._ratio += alpha * (ratio - self._ratio) if self._observations > 1 else ratio - self._ratio

    @property
    def ratio(self) -> float:
        return self._ratio


class OutputEstimator:
    """Output tokens to reserve when the server counts produced tokens: max_tokens until 10 answers have been
    seen, then 1.1 x the 90th percentile of recent answers (never above max_tokens)."""

    WARMUP = 10
    WINDOW = 256
    RECOMPUTE_EVERY = 32

    def __init__(self) -> None:
        self._recent: deque[int] = deque(maxlen=self.WINDOW)
        self._seen = 0
        self._p90: int | None = None

    def reserve(self, max_tokens: int) -> int:
        if self._p90 is None:
            return max(1, max_tokens)
        return max(1, min(max_tokens, _ceil(1.1 * self._p90)))

    def observe(self, output_tokens: int, max_tokens: int) -> None:
        self._recent.append(output_tokens)
        self._seen += 1
        if self._seen >= self.WARMUP and (self._p90 is None or self._seen % self.RECOMPUTE_EVERY == 0):
            ordered = sorted(self._recent)
            self._p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
