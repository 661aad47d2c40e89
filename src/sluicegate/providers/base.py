"""What a provider must do: build the HTTP request, parse answers, errors, headers and streams. No waiting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .._models import RateLimitSnapshot, Usage
from ..sse import ServerSentEvent

__all__ = ["AssemblerBase", "ErrorDetail", "Provider", "StreamAssembler", "StreamFailed"]


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """An error response, translated once at the boundary."""

    message: str
    error_type: str | None = None
    error_code: str | None = None
    request_id: str | None = None


class StreamFailed(Exception):
    """The server sent an error event in the middle of a stream (e.g. overloaded_error)."""

    def __init__(self, detail: ErrorDetail) -> None:
        super().__init__(detail.message)
        self.detail = detail


class StreamAssembler(Protocol):
    """Turns a provider's SSE events into text deltas and, at the end, the full message."""

    @property
    def complete(self) -> bool:
        """True once the provider's end-of-stream event arrived (otherwise the stream was truncated)."""
        ...

    def feed(self, event: ServerSentEvent) -> str | None:
        """Consume one event; return the text it adds, if any. Raises StreamFailed on an error event."""
        ...

    def message(self) -> dict[str, Any]:
        """The assembled message in the provider's non-streaming JSON shape."""
        ...

    def usage(self) -> Usage: ...


class AssemblerBase:
    """Shared by the providers' assemblers: completion flag and the translation of malformed events."""

    _complete = False

    @property
    def complete(self) -> bool:
        return self._complete

    def feed(self, event: ServerSentEvent) -> str | None:
        try:
            return self._feed(event)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            # A well-formed JSON event of the wrong shape: report it like unreadable JSON (ValueError).
            raise ValueError(f"malformed {event.event} event: {exc!r}") from exc

    def _feed(self, event: ServerSentEvent) -> str | None:
        raise NotImplementedError


class Provider(Protocol):
    """One API flavour. Stateless apart from configuration; safe to share across tasks."""

    name: Literal["anthropic", "openai"]
    output_accounting: Literal["produced", "reserved"]

    def url(self, base_url: str, *, stream: bool) -> str: ...

    def auth_headers(self, api_key: str) -> dict[str, str]: ...

    def body(self, params: Mapping[str, Any], *, stream: bool) -> dict[str, Any]: ...

    def model(self, params: Mapping[str, Any]) -> str: ...

    def max_tokens(self, params: Mapping[str, Any]) -> int: ...

    def rate_limits(self, headers: Mapping[str, str], now_wall: float) -> RateLimitSnapshot: ...

    def parse_message(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], Usage]: ...

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorDetail: ...

    def assembler(self) -> StreamAssembler: ...
