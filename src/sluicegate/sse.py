"""A sans-IO server-sent-events decoder (WHATWG rules), fed raw bytes in chunks of any size."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes, get complete events. An event is dispatched on a blank line, as the spec says."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._pending_fields = False

    @property
    def has_partial(self) -> bool:
        """True when bytes or fields of an unfinished event are held (a stream cut mid-event)."""
        return bool(self._buffer) or self._pending_fields

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self._buffer + chunk
        events: list[ServerSentEvent] = []
        start = 0
        for match in _LINE_END.finditer(buffer):
            # A trailing "\r" may be the first half of "\r\n" split across chunks: wait for the next byte.
            if match.group() == b"\r" and match.end() == len(buffer):
                break
            self._line(buffer[start : match.start()], events)
            start = match.end()
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a held line is processed; an event without its blank line is dropped (per spec)."""
        events: list[ServerSentEvent] = []
        if self._buffer.endswith(b"\r"):
            self._line(self._buffer[:-1], events)
            self._buffer = b""
        return events

    def _line(self, raw: bytes, events: list[ServerSentEvent]) -> None:
        if not raw:
            if self._data:  # the spec drops an event that has no data line
                events.append(ServerSentEvent(self._event or "message", "\n".join(self._data), self._id, self._retry))
            self._event = ""
            self._data = []
            self._retry = None
            self._pending_fields = False
            return
        line = raw.decode("utf-8", "replace")
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        else:
            return
        self._pending_fields = True
