"""Helpers for job tests: items and results without a network."""

from __future__ import annotations

from typing import Any

from sluicegate._models import ErrorInfo, ErrorKind, RequestItem, Result, Usage

SETTINGS = {"provider": "anthropic", "endpoint": "emulator", "model": "m"}


def make_item(i: int, *, custom_id: str | None = None, line: int | None = None, prompt: str = "p") -> RequestItem:
    """An item at index i (line i + 1 unless given) with small params."""
    params: dict[str, Any] = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": f"{prompt}{i}"}]}
    return RequestItem(index=i, custom_id=custom_id or f"id-{i}", params=params, line=i + 1 if line is None else line)


def ok(item: RequestItem, *, tokens: int = 3, cost: float = 0.5, attempts: int = 1) -> Result:
    """A successful result for item."""
    message = {"id": f"msg_{item.custom_id}", "type": "message", "content": [{"type": "text", "text": "hi"}]}
    usage = Usage(input_tokens=tokens, output_tokens=2 * tokens)
    return Result(item.index, item.custom_id, message=message, usage=usage, cost=cost, attempts=attempts)


def failed(item: RequestItem, kind: ErrorKind = "server", *, attempts: int = 3) -> Result:
    """An errored result of the given kind for item."""
    return Result(item.index, item.custom_id, error=ErrorInfo(kind=kind, message=f"{kind} error"), attempts=attempts)


def batch_message(custom_id: str, *, input_tokens: int = 10, output_tokens: int = 2) -> dict[str, Any]:
    """The message of a succeeded Message Batches result, its text the id (so a mix-up shows)."""
    return {
        "id": f"msg_{custom_id}",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": custom_id}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, "service_tier": "batch"},
    }
