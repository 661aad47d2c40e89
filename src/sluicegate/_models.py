"""Value objects shared by every layer: requests in, results out, usage, and the server's view of its limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import ERROR_KINDS, ErrorKind
from ._exceptions import ProviderError, SluicegateError

__all__ = [
    "BucketView",
    "ErrorInfo",
    "ErrorKind",
    "RateLimitSnapshot",
    "RequestItem",
    "Result",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class RequestItem:
    """One request to send: its position in the input, its id, and the provider params (model, messages, ...).

    `line` is the 1-based input line for requests read from a file (None for library callers).
    """

    index: int
    custom_id: str
    params: Mapping[str, Any]
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as the Anthropic API reports it (OpenAI usage is mapped onto the same fields).

    `input_tokens` excludes cached tokens, as the Anthropic API counts them: total prompt =
    input_tokens + cache_creation_input_tokens + cache_read_input_tokens.
    `cache_creation_input_tokens` is every cache write; `cache_creation_1h_input_tokens` is the part of it written
    with the 1-hour TTL (priced higher), so the 5-minute part is the difference.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_1h_input_tokens + other.cache_creation_1h_input_tokens,
        )

    @property
    def cache_creation_5m_input_tokens(self) -> int:
        """Cache writes with the 5-minute TTL (the default)."""
        return self.cache_creation_input_tokens - self.cache_creation_1h_input_tokens

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def rate_limited_input_tokens(self) -> int:
        """What the input-token bucket is charged: cache reads do not count, cache writes do."""
        return self.input_tokens + self.cache_creation_input_tokens

    @classmethod
    def from_anthropic(cls, data: Mapping[str, Any] | None) -> Usage:
        """Read an Anthropic `usage` object, including the `cache_creation` split by TTL when present."""
        if not data:
            return cls()
        split = data.get("cache_creation")
        split = split if isinstance(split, Mapping) else {}
        write_5m = int(split.get("ephemeral_5m_input_tokens") or 0)
        write_1h = int(split.get("ephemeral_1h_input_tokens") or 0)
        # The total is the API's own figure; the split alone stands in when only the split was sent.
        writes = data.get("cache_creation_input_tokens")
        total = int(writes) if writes is not None else write_5m + write_1h
        return cls(
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cache_creation_input_tokens=total,
            cache_read_input_tokens=int(data.get("cache_read_input_tokens") or 0),
            cache_creation_1h_input_tokens=min(write_1h, total),
        )


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why an item failed, in a form that serialises into the Batch results format."""

    kind: ErrorKind
    message: str
    status: int | None = None
    error_type: str | None = None  # the API's own error type, e.g. "overloaded_error"
    request_id: str | None = None
    line: int | None = None
    field: str | None = None

    def to_api_error(self) -> dict[str, Any]:
        """The Anthropic ErrorResponse shape: {"type": "error", "error": {"type", "message"}, "request_id"?}."""
        api_type = self.error_type or ERROR_KINDS[self.kind].api_type
        inner: dict[str, Any] = {"type": api_type, "message": self.message}
        if self.line is not None:
            inner["line"] = self.line
        if self.field is not None:
            inner["field"] = self.field
        out: dict[str, Any] = {"type": "error", "error": inner}
        if self.request_id:
            out["request_id"] = self.request_id
        return out

    def exception(self) -> SluicegateError:
        """The exception this error raises in `create()`, by the kind's class in the one table."""
        cls = ERROR_KINDS[self.kind].exception
        if issubclass(cls, ProviderError):
            return cls(self.message, status=self.status or 0, error_type=self.error_type, request_id=self.request_id)
        return cls(self.message)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one request: the message (raw API JSON) or the error, plus usage, cost and timing."""

    index: int
    custom_id: str
    message: Mapping[str, Any] | None = None
    error: ErrorInfo | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = 0.0  # USD; None when the answer's model has no price in the table (unknown, not free)
    attempts: int = 0
    latency: float = 0.0  # seconds from first admission to the final answer
    ttft: float | None = None  # seconds from the final attempt's send to its first answer byte (None: no answer)

    @property
    def ok(self) -> bool:
        return self.error is None and self.message is not None

    @property
    def text(self) -> str:
        """The concatenated text of the answer ('' for errors). Works for Anthropic and OpenAI messages."""
        if self.message is None:
            return ""
        content = self.message.get("content")
        if isinstance(content, list):
            return "".join(b.get("text", "") for b in content if isinstance(b, Mapping) and b.get("type") == "text")
        choices = self.message.get("choices")
        if isinstance(choices, list) and choices:
            msg = choices[0].get("message") or {}
            return str(msg.get("content") or "")
        return ""

    def to_batch_line(self) -> dict[str, Any]:
        """The Message Batches results format, so the same files work with the Batch API."""
        if self.error is None and self.message is not None:
            return {"custom_id": self.custom_id, "result": {"type": "succeeded", "message": dict(self.message)}}
        err = self.error or ErrorInfo(kind="aborted", message="no result")
        return {"custom_id": self.custom_id, "result": {"type": "errored", "error": err.to_api_error()}}


@dataclass(frozen=True, slots=True)
class BucketView:
    """The server's view of one bucket: its capacity per window, what is left, and seconds until full.

    The window (a minute, a day, a second, an emulator's compressed minute) is not in the headers; the limiter
    learns it from `(limit - remaining) / reset_in`. The two error fields say how coarse the header values are.
    """

    limit: int
    remaining: int
    reset_in: float  # seconds from the response's arrival until the bucket is fully replenished
    # How coarse the header's numbers are; not part of what the server said, so not compared.
    remaining_error: float = field(default=1.0, compare=False)  # +- on `remaining` (tokens rounded to thousands)
    reset_error: float = field(default=0.0, compare=False)  # +- on `reset_in` (whole-second timestamps: 1.0)
    # `reset` was a moment (Anthropic's timestamps), not a duration from when the server counted (OpenAI's): if
    # the server counted at the request's admission, the bucket was `reset_in` plus the answer's latency from full.
    reset_absolute: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """Rate-limit headers of one response, parsed (any bucket may be missing)."""

    requests: BucketView | None = None
    input_tokens: BucketView | None = None
    output_tokens: BucketView | None = None
    tokens: BucketView | None = None  # combined or most-restrictive token bucket (OpenAI; Anthropic "tokens")
    retry_after: float | None = None

    @property
    def empty(self) -> bool:
        return not (self.requests or self.input_tokens or self.output_tokens or self.tokens)
