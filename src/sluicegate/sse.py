"""A sans-IO server-sent-events decoder (WHATWG rules), fed raw bytes in chunks of any size."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its type ("message" by default), data lines joined by newlines, last id, retry."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes, get complete events. An event is dispatched on a blank line, as the spec says.

    Lines are split in C (`bytes.splitlines` splits on exactly the spec's CRLF, LF and CR); an unfinished line is
    kept as a list of chunks and joined once its end arrives, so a long line costs linear time in any chunking.
    """

    __slots__ = ("_cr", "_data", "_event", "_fields", "_head", "_id", "_pending", "_retry", "_started")

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # an unfinished line, or a line ending in CR that may be half a CRLF
        self._cr = False  # the pending bytes end with CR
        self._head = b""  # the first bytes of the stream while a leading BOM may still be arriving
        self._started = False
        self._event = b""
        self._data: list[bytes] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._fields = False

    @property
    def has_partial(self) -> bool:
        """True when bytes or fields of an unfinished event are held (a stream cut mid-event)."""
        return bool(self._pending or self._head) or self._fields

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Take the next bytes of the stream; return the events they complete."""
        if not self._started:
            chunk = self._head + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._head = chunk
                return []
            self._head = b""
            self._started = True
            if chunk.startswith(_BOM):  # the spec ignores one leading byte order mark
                chunk = chunk[len(_BOM) :]
        if not chunk:
            return []
        if self._pending:
            if not self._cr and b"\n" not in chunk and b"\r" not in chunk:
                self._pending.append(chunk)  # still inside one long line
                return []
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending = []
        lines = chunk.splitlines(keepends=True)
        last = lines[-1]
        if last[-1:] != b"\n":  # unfinished, or ending in a CR whose LF may come next: hold it
            self._pending = [lines.pop()]
            self._cr = last[-1:] == b"\r"
        else:
            self._cr = False
        events: list[ServerSentEvent] = []
        for line in lines:
            self._line(line.rstrip(b"\r\n"), events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a held CR-terminated line is processed; an event without its blank line is dropped."""
        events: list[ServerSentEvent] = []
        if self._cr:
            self._line(b"".join(self._pending).rstrip(b"\r"), events)
            self._pending = []
            self._cr = False
        return events

    def _line(self, raw: bytes, events: list[ServerSentEvent]) -> None:
        if not raw:
            if self._data:  # the spec drops an event that has no data line
                events.append(
                    ServerSentEvent(
                        self._event.decode("utf-8", "replace") or "message",
                        b"\n".join(self._data).decode("utf-8", "replace"),
                        self._id,
                        self._retry,
                    )
                )
            self._event = b""
            self._data = []
            self._retry = None
            self._fields = False
            return
        if raw[0] == 0x3A:  # ":" starts a comment
            return
        name, sep, value = raw.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit is ASCII digits only, as the spec wants
                self._retry = int(value)
        else:
            return
        self._fields = True
