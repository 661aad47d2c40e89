"""One HTTP attempt: send, read (JSON or SSE), and turn whatever happened into a plain outcome. No retries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2

from ._models import RateLimitSnapshot, Usage
from ._wire import Wire
from .limits.headers import parse_retry_after, parse_should_retry
from .providers.base import ErrorDetail, Provider, StreamFailed
from .retry import Outcome
from .sse import SSEDecoder

__all__ = ["AttemptResult", "send_attempt", "status_outcome", "stream_error_outcome", "transport_outcome"]

_STREAM_ERROR_STATUS = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429}


@dataclass(slots=True)
class AttemptResult:
    """What one attempt produced: a message and usage, or a failure the retry policy can judge."""

    message: dict[str, Any] | None = None
    usage: Usage | None = None
    failure: Outcome | None = None
    detail: ErrorDetail | None = None
    snapshot: RateLimitSnapshot | None = None
    responded: bool = False  # the server answered (any status): the limiter's probe phase can end
    text_sent: bool = False  # text already went to a stream consumer: the attempt cannot be replayed
    # Seconds from sending to the first text of a streamed answer, or to the whole of an unstreamed one (the
    # API sends that all at once): a measurement for reports, so a plain monotonic reading is enough.
    first_token_after: float | None = None
    input_counted: bool = False  # `on_input_counted` was told the input tokens before the answer ended


async def send_attempt(
    wire: Wire,
    provider: Provider,
    *,
    url: str,
    body: Mapping[str, Any],
    stream: bool,
    total_timeout: float,
    on_text: Callable[[str], Any] | None = None,
    on_headers: Callable[[RateLimitSnapshot], Any] | None = None,
    on_start: Callable[[], Any] | None = None,
    on_accepted: Callable[[], Any] | None = None,
    on_input_counted: Callable[[int], Any] | None = None,
) -> AttemptResult:
    """Send one request and classify the outcome. Transport errors become failures, never exceptions.

    `on_headers` gets the rate-limit headers as soon as they arrive (a stream's first byte), before the body;
    `on_accepted` is called when a 200's headers arrive, before its body; `on_start` is called once when a
    successful answer begins: a stream's first event, an unstreamed body's arrival. `on_input_counted` gets the
    input tokens the server counted as soon as a stream's first event says (Anthropic's `message_start`).
    """
    out = AttemptResult()
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    sent = time.monotonic()
    try:
        # The request's timeout bounds real network I/O, so it is on the loop's time, not the pacing Clock.
        with anyio.fail_after(total_timeout):  # noqa: TID251
            response = await wire.send(wire.request(url, content))
            try:
                out.responded = True
                out.snapshot = provider.rate_limits(response.headers, time.time())
                if on_headers is not None and not out.snapshot.empty:
                    on_headers(out.snapshot)
                if response.status_code != 200:
                    raw = await _read_body(response)
                    out.failure, out.detail = status_outcome(provider, response.status_code, response.headers, raw)
                    return out
                if on_accepted is not None:
                    on_accepted()
                # A server may answer a stream request with one JSON body (a proxy, an OpenAI-compatible server
                # that ignores `stream`): the content type says which it is.
                if stream and "json" not in response.headers.get("content-type", ""):
                    await _read_stream(response, provider, out, on_text, sent, on_start, on_input_counted)
                else:
                    raw = await _read_body(response)
                    out.first_token_after = time.monotonic() - sent
                    if on_start is not None:
                        on_start()
                    out.message, out.usage = provider.parse_message(json.loads(raw))
            finally:
                await response.aclose()
    except TimeoutError:
        out.failure = Outcome(failure="timeout")
        out.detail = ErrorDetail(message=f"attempt took longer than {total_timeout:g} s")
    except (httpx2.TransportError, httpx2.StreamError) as exc:
        out.failure, message = transport_outcome(exc)
        out.detail = ErrorDetail(message=message)
    except ValueError as exc:  # a 200 whose body is not the JSON we expect: a broken proxy or a cut body
        out.failure = Outcome(failure="truncated")
        out.detail = ErrorDetail(message=f"unreadable response body: {exc}")
    return out


async def _read_body(response: httpx2.Response) -> bytes:
    """The whole body, decoded. An uncompressed one is joined straight from the transport's stream: httpx2's
    reader passes every chunk through a decoder and a re-chunker, a noticeable share of a small answer's cost."""
    encoding = response.headers.get("content-encoding")
    stream = response.stream
    if (encoding and encoding.lower() != "identity") or not isinstance(stream, httpx2.AsyncByteStream):
        return await response.aread()
    return b"".join([chunk async for chunk in stream])


def status_outcome(
    provider: Provider, status: int, headers: Mapping[str, str], body: bytes
) -> tuple[Outcome, ErrorDetail]:
    """The boundary for an error status: its body and headers, translated once into an Outcome of one kind."""
    detail = provider.parse_error(status, headers, body)
    outcome = Outcome(
        failure="status",
        status=status,
        error_type=detail.error_type,
        error_code=detail.error_code,
        should_retry=parse_should_retry(headers),
        retry_after=parse_retry_after(headers, time.time()),
    )
    return outcome, detail


def transport_outcome(exc: httpx2.TransportError | httpx2.StreamError) -> tuple[Outcome, str]:
    """The boundary for a transport exception: connect, timeout or a broken connection, and a message."""
    name = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
        return Outcome(failure="connect"), f"connection failed: {name}"
    if isinstance(exc, httpx2.TimeoutException):
        return Outcome(failure="timeout"), f"no data for too long ({name})"
    return Outcome(failure="transport"), f"connection broke: {name}"


def stream_error_outcome(detail: ErrorDetail) -> Outcome:
    """The boundary for an error event mid-stream: judged as the status that error type comes with."""
    status = _STREAM_ERROR_STATUS.get(detail.error_type or "", 500)
    return Outcome(failure="status", status=status, error_type=detail.error_type)


async def _read_stream(
    response: httpx2.Response,
    provider: Provider,
    out: AttemptResult,
    on_text: Callable[[str], Any] | None,
    sent: float,
    on_start: Callable[[], Any] | None,
    on_input_counted: Callable[[int], Any] | None,
) -> None:
    decoder = SSEDecoder()
    assembler = provider.assembler()
    try:
        async for chunk in response.aiter_raw():
            for event in decoder.feed(chunk):
                if on_start is not None:
                    on_start()
                    on_start = None
                text = assembler.feed(event)
                if on_input_counted is not None:  # the first event: Anthropic's message_start counts the input
                    counted = assembler.usage().total_input_tokens
                    if counted > 0:
                        on_input_counted(counted)
                        out.input_counted = True
                    on_input_counted = None
                if text and out.first_token_after is None:
                    out.first_token_after = time.monotonic() - sent
                if text and on_text is not None:
                    out.text_sent = True
                    await on_text(text)
        for event in decoder.close():
            assembler.feed(event)
    except StreamFailed as exc:
        out.failure = stream_error_outcome(exc.detail)
        out.detail = exc.detail
        return
    if not assembler.complete:
        out.failure = Outcome(failure="truncated")
        out.detail = ErrorDetail(message="the stream ended before its final event")
        return
    out.message = assembler.message()
    out.usage = assembler.usage()
    if out.first_token_after is None:  # an answer without text (a tool call): its end is its first token
        out.first_token_after = time.monotonic() - sent
