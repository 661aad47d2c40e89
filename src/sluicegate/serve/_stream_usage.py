"""Exact cost for OpenAI streams: the gateway always asks for the usage, and hides it from clients that did not.

An OpenAI chat stream reports its token usage only when the request says `stream_options.include_usage`: then
one more chunk, with `"choices": []` and the usage, comes just before `data: [DONE]` (and the other chunks carry
`"usage": null`). Without it the gateway could only cost the stream from its text. So the gateway adds the
option upstream when a client did not ask, and takes that extra chunk out of what the client receives; the
`"usage": null` fields stay, as the SDKs read them as "no usage", which is what the client asked for.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["UsageChunkFilter", "ask_for_usage"]

_EVENT_END = re.compile(rb"\r?\n\r?\n")  # the blank line that ends an SSE event (OpenAI's is \n\n)
_MAX_HELD = 1 << 16  # an event this long without its end is not OpenAI's framing: stop filtering


def ask_for_usage(params: dict[str, Any]) -> bytes | None:
    """The body to send upstream for a streaming chat request that does not ask for its usage (None: send the
    client's own body unchanged)."""
    if params.get("stream") is not True:
        return None
    options = params.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict) or options.get("include_usage") is True:
        return None  # asked already, or malformed: the upstream judges the client's own body
    return json.dumps({**params, "stream_options": {**options, "include_usage": True}}).encode()


class UsageChunkFilter:
    """Fed the raw stream chunk by chunk, returns the bytes to pass on: everything but the usage chunk.

    Only whole events are passed on (a client cannot use part of one anyway); a chunk that ends on an event
    boundary and cannot hold the usage chunk goes straight through.
    """

    __slots__ = ("_held", "_on")

    def __init__(self) -> None:
        self._held = b""
        self._on = True

    def feed(self, chunk: bytes) -> bytes:
        if not self._on:
            return chunk
        if not self._held and chunk.endswith(b"\n\n") and b"[]" not in chunk:
            return chunk  # the common case: whole events, none with an empty choices list
        data = self._held + chunk
        ends = list(_EVENT_END.finditer(data))
        if not ends:
            self._held = data
            if len(data) > _MAX_HELD:
                self._on = False
                self._held = b""
                return data
            return b""
        cut = ends[-1].end()
        self._held = data[cut:]
        out: list[bytes] = []
        start = 0
        for end in ends:
            event = data[start : end.end()]
            start = end.end()
            if not _is_usage_chunk(event):
                out.append(event)
        return b"".join(out)

    def close(self) -> bytes:
        """The end of the stream: whatever is held (an unfinished last event) goes on as it came."""
        held, self._held = self._held, b""
        return held


def _is_usage_chunk(event: bytes) -> bool:
    if b"[]" not in event or b"usage" not in event:
        return False
    data = b"\n".join(line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:"))
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    return isinstance(chunk, dict) and chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict)
