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


def _collect(content: Any, texts: list[str]) -> int:
    """Append the text of a content (string or blocks) to `texts`; return how many images it holds."""
    if isinstance(content, str):
        texts.append(content)
        return 0
    if not isinstance(content, list):
        if content is not None:
            texts.append(str(content))
        return 0
    images = 0
    for block in content:
        if not isinstance(block, Mapping):
            texts.append(str(block))
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "image" or kind == "image_url":
            images += 1  # a flat weight: the base64 bytes say nothing about the token count
        elif kind == "tool_use":
            texts.append(str(block.get("name", "")))
            texts.append(json.dumps(block.get("input", {}), default=str))
        elif kind == "tool_result":
            images += _collect(block.get("content"), texts)
        else:
            texts.append(json.dumps(block, default=str))
    return images


def _prompt(params: Mapping[str, Any]) -> tuple[list[str], int, int]:
    """The prompt's text pieces, image count and message count, for either provider's params."""
    texts: list[str] = []
    images = _collect(params.get("system"), texts)
    messages = params.get("messages")
    if not isinstance(messages, list):
        messages = []
    for message in messages:
        if isinstance(message, Mapping):
            images += _collect(message.get("content"), texts)
            if message.get("tool_calls"):  # OpenAI assistant turns carry their calls beside the content
                texts.append(json.dumps(message["tool_calls"], default=str))
    tools = params.get("tools")
    if tools:
        texts.append(json.dumps(tools, default=str))
    return texts, images, len(messages)


def heuristic_tokens(params: Mapping[str, Any]) -> int:
    """A fast input-token guess from characters (about 3.5 per token) plus per-message overhead. Never raises."""
    try:
        texts, images, count = _prompt(params)
    except (TypeError, ValueError, AttributeError, RecursionError):
        return 1
    chars = sum(map(len, texts)) + images * int(_IMAGE_TOKENS * _CHARS_PER_TOKEN)
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
    # tiktoken names each cache file by the SHA-1 of the URL it was downloaded from.
    key = hashlib.sha1(_TIKTOKEN_URL.format(name).encode()).hexdigest()
    return os.path.exists(os.path.join(cache_dir, key))


def _encoding_name(model: Any) -> str:
    if isinstance(model, str) and model.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    return "cl100k_base"


def _load_encoding(name: str) -> Any:
    """tiktoken's encoding `name`, or None when tiktoken is missing or the encoding is not on disk."""
    try:
        import tiktoken
    except ImportError:
        return None
    if not _tiktoken_cached(name):
        return None  # the calibrated heuristic instead
    try:
        return tiktoken.get_encoding(name)
    except Exception:  # a corrupt cache file: fall back to the heuristic
        return None


class InputEstimator:
    """Input tokens before sending, corrected by the ratio actual/estimate learnt from real usage (EWMA).

    The raw count is tiktoken's for OpenAI (the encoding of the request's model, else of `model`) when tiktoken
    and that encoding are on this machine, otherwise the character heuristic; calibration absorbs either's bias.
    """

    WARMUP = 5

    def __init__(self, *, provider: Literal["anthropic", "openai"] = "anthropic", model: str | None = None) -> None:
        self._provider = provider
        self._model = model
        self._encodings: dict[str, Any] = {}  # name -> encoding or None, looked up once per estimator
        self._ratio = 1.0
        self._observations = 0

    def _encoding(self, params: Mapping[str, Any]) -> Any:
        if self._provider != "openai":
            return None
        name = _encoding_name(params.get("model") or self._model)
        if name not in self._encodings:
            self._encodings[name] = _load_encoding(name)
        return self._encodings[name]

    def raw(self, params: Mapping[str, Any]) -> int:
        """The uncalibrated count: tiktoken for OpenAI models when available, else the heuristic."""
        try:
            encoding = self._encoding(params)
            if encoding is None:
                return heuristic_tokens(params)
            texts, images, count = _prompt(params)
            tokens = len(encoding.encode("\n".join(texts), disallowed_special=()))
            return max(1, tokens + images * _IMAGE_TOKENS + _PER_MESSAGE * count)
        except Exception:  # odd shapes are the API's to reject; an estimate must never raise
            return heuristic_tokens(params)

    def estimate(self, params: Mapping[str, Any]) -> int:
        """The calibrated count to reserve in the input-token bucket."""
        return self.calibrated(self.raw(params))

    def calibrated(self, raw: int) -> int:
        """`estimate` from a raw count already in hand (the engine needs both; this avoids counting twice)."""
        # Until calibrated, lean high: an underestimate costs a 429, an overestimate only a little pace.
        margin = 1.1 if self._observations < self.WARMUP else 1.02
        return max(1, _ceil(raw * self._ratio * margin))

    def observe(self, raw_estimate: int, actual: int) -> None:
        """Learn from one answer: `raw_estimate` from `raw()` and the usage's total input tokens."""
        if raw_estimate <= 0 or actual <= 0:
            return
        ratio = min(4.0, max(0.25, actual / raw_estimate))
        self._observations += 1
        alpha = 0.5 if self._observations <= self.WARMUP else 0.05
        self._ratio += alpha * (ratio - self._ratio) if self._observations > 1 else ratio - self._ratio

    @property
    def ratio(self) -> float:
        """The current actual/raw ratio (1.0 before any observation)."""
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
        """Output tokens to hold in the bucket for a request allowed `max_tokens`."""
        if self._p90 is None:
            return max(1, max_tokens)
        return max(1, min(max_tokens, _ceil(1.1 * self._p90)))

    def observe(self, output_tokens: int, max_tokens: int) -> None:
        """Learn from one answer's output token count (`max_tokens` is what it was allowed)."""
        if output_tokens < 0:
            return
        self._recent.append(output_tokens)
        self._seen += 1
        if self._seen >= self.WARMUP and (self._p90 is None or self._seen % self.RECOMPUTE_EVERY == 0):
            ordered = sorted(self._recent)
            self._p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
