"""Pure builders of OpenAI Chat Completions wire objects: bodies, stream chunks, usage, errors, durations.

Shapes follow the fidelity notes, section 10 (real captures from the `openai` SDK's tests).
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Mapping
from typing import Any

__all__ = [
    "FINISH_REASONS",
    "chunk",
    "completion_body",
    "completion_id",
    "delta_choice",
    "error_body",
    "format_duration",
    "sse_data",
    "usage_body",
]

# Anthropic-style stop reasons from the content generator mapped to OpenAI finish reasons.
FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}

_ALNUM = string.ascii_letters + string.digits


# json.dumps(obj, separators=(",", ":")) without building an encoder per chunk.
_SSE_JSON = json.JSONEncoder(separators=(",", ":"))


def completion_id(rng: random.Random) -> str:
    """A `chatcmpl-` id of the real length (29 characters after the prefix)."""
    return "chatcmpl-" + "".join(rng.choice(_ALNUM) for _ in range(29))


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: "6m0s", "1s", "20ms"; under a second in whole ms, else whole seconds rounded up.

    Fractional seconds such as "1.5s" are UNCONFIRMED for OpenAI, so we never emit them.
    """
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def usage_body(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """A CompletionUsage object with the detail fields current responses carry."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_body(
    *,
    id: str,
    created: int,
    model: str,
    fingerprint: str,
    texts: list[str],
    finish_reason: str,
    usage: dict[str, Any],
    service_tier: str = "default",
) -> dict[str, Any]:
    """A full `chat.completion` object with one choice per text."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            for i, text in enumerate(texts)
        ],
        "usage": usage,
        "service_tier": service_tier,
        "system_fingerprint": fingerprint,
    }


def chunk(
    *,
    id: str,
    created: int,
    model: str,
    fingerprint: str,
    choices: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """A `chat.completion.chunk`; with include_usage every chunk carries `usage` (null except on the last)."""
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": fingerprint,
        "choices": choices,
    }
    if include_usage:
        body["usage"] = usage
    return body


def delta_choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """One streamed choice."""
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """The OpenAI error body, the same for every status."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def sse_data(obj: Mapping[str, Any] | str) -> bytes:
    """One data-only SSE event (OpenAI streams have no `event:` lines)."""
    payload = obj if isinstance(obj, str) else _SSE_JSON.encode(obj)
    return f"data: {payload}\n\n".encode()
