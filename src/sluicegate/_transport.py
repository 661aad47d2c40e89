"""The engine's default transport: HTTP/1.1 keep-alive connections on asyncio's own sockets, parsed by httptools.

The engine sends one kind of request (a POST with a small JSON body) to one host, hundreds of times a second.
Through httpx2's default transport each one passes httpcore2's pool and HTTP/1.1 state machine (h11) and
anyio's socket streams, whose cancel scopes, timers and locks per read and write were most of the client's
CPU when profiled (bench/RESULTS.md). Here a request is one write of its head and body on a kept-alive
connection, the answer is parsed by httptools (the C parser uvicorn uses, already a dependency), a read
arms a timer only when it has to wait, and whether an idle connection may be reused is read from what the
connection already saw (the server closed it, or sent something unasked), never from a system call.

What it does not do, neither the engine nor the SDK drop-in needs: proxies (the engine uses httpx2's transport
when the environment names one), HTTP/2, upgrades, `Expect: 100-continue`, request bodies streamed as they are
made (a body is sent whole). Errors are httpx2's own classes, as from httpx2's transport.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator

import httptools
import httpx2

__all__ = ["EngineTransport"]

_READ_AHEAD = 1024 * 1024  # body bytes received and not yet read, above which the socket is not read from
Origin = tuple[bytes, bytes, int]  # scheme, host, port


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time; the parser's callbacks fill the current answer."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False  # the server closed it, it broke, or we closed it
        self.bodiless = False  # the current request is a HEAD
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._begin()

    def _begin(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.headers_done = False
        self.complete = False
        self.error: Exception | None = None
        self._sized = False  # a content-length or chunked body: the server's closing early is an error
        self._body: deque[bytes] = deque()
        self._buffered = 0

    # -- asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are duck-typed

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self.complete:  # nothing was asked: not a connection to reuse
            self.closed = True
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx2.RemoteProtocolError(f"unreadable response: {exc}"))
        self._wake()

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self.complete and self.error is None:
            if exc is not None:
                self._fail(httpx2.ReadError(f"connection broke: {exc}"))
            elif self.headers_done and not self._sized:
                self.complete = True  # a body delimited by the end of the connection
            else:
                self._fail(httpx2.RemoteProtocolError("the server closed the connection before the answer ended"))
        self._wake()

    # -- httptools callbacks -----------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self._sized = True

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self.headers_done = True
        if self.bodiless:  # an answer to HEAD has no body whatever its length says; the parser cannot know
            self.complete = True
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _READ_AHEAD and not self._reading_paused and self.transport is not None:
            self._reading_paused = True  # a reader slower than the server: stop reading until it catches up
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True

    # -- the request ----------------------------------------------------------------------------------------

    async def send(self, data: bytes, read_timeout: float | None, *, bodiless: bool = False) -> None:
        """Write a whole request at once and wait for the answer's status line and headers."""
        assert self.transport is not None
        self._begin()
        self.bodiless = bodiless
        self._parser = httptools.HttpResponseParser(self)
        self.transport.write(data)
        while not self.headers_done and self.error is None:
            await self._wait(read_timeout)
        if self.error is not None:
            raise self.error

    async def next_chunk(self, read_timeout: float | None) -> bytes | None:
        """The next piece of the body; None at its end."""
        while not self._body:
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            await self._wait(read_timeout)
        chunk = self._body.popleft()
        self._buffered -= len(chunk)
        if self._reading_paused and self._buffered <= _READ_AHEAD and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def park(self) -> None:
        """Idle from now: any byte the server sends before the next request makes it unfit for reuse."""
        self.idle_since = time.monotonic()
        self._parser = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        if self.error is None and not self.complete:
            self.error = error

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, within: float | None) -> None:
        """Until the protocol has news; a ReadTimeout after `within` seconds of silence. A plain timer, armed only
        while waiting, instead of a cancel scope around every read."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if within is None else loop.call_later(within, _expire, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx2.ReadTimeout("no data for longer than the read timeout"))


class EngineTransport(httpx2.AsyncBaseTransport):
    """At most `connections` HTTP/1.1 connections, idle ones kept for `keepalive_expiry` seconds. TLS is verified
    as httpx2 verifies it unless `ssl_context` says otherwise. `aclose` closes the idle connections; the transport
    stays usable (a client sharing it may still send), opening new connections on demand."""

    def __init__(
        self, *, connections: int, keepalive_expiry: float = 5.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._max = connections
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open = 0  # connections open or opening, idle ones included
        self._slot_waiters: deque[asyncio.Future[None]] = deque()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        head = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        if "host" not in request.headers:
            head += [b"Host: ", url.netloc, b"\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        head += [chunk async for chunk in request.stream]
        data = b"".join(head)
        read_timeout = timeouts.get("read")
        connection = await self._acquire(origin, timeouts.get("connect"))
        try:
            await connection.send(data, read_timeout, bodiless=request.method == "HEAD")
        except BaseException:
            self._release(connection)
            raise
        return httpx2.Response(
            connection.status,
            headers=connection.headers,
            stream=_Body(self, connection, read_timeout),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._open -= sum(len(c) for c in self._idle.values())
        self._idle.clear()

    # -- the pool ---------------------------------------------------------------------------------------------

    async def _acquire(self, origin: Origin, connect_timeout: float | None) -> _Connection:
        """An idle connection to `origin` still fit for reuse, else a new one once fewer than the cap are open."""
        while True:
            idle = self._idle.get(origin)
            now = time.monotonic()
            while idle:
                connection = idle.pop()
                if not connection.closed and now - connection.idle_since < self._expiry:
                    return connection
                connection.close()
                self._open -= 1
            if self._open < self._max:
                break
            if not self._close_one_idle():  # another origin's idle connection frees a slot; else wait for one
                waiter = asyncio.get_running_loop().create_future()
                self._slot_waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in self._slot_waiters:
                        self._slot_waiters.remove(waiter)
        self._open += 1
        try:
            return await self._connect(origin, connect_timeout)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    async def _connect(self, origin: Origin, within: float | None) -> _Connection:
        scheme, host, port = origin
        hostname = host.decode("ascii")
        tls: ssl.SSLContext | None = None
        if scheme == b"https":
            tls = self._ssl = self._ssl or httpx2.create_ssl_context()
        loop = asyncio.get_running_loop()
        connection = _Connection(origin)
        try:
            # A connect timeout bounds real network I/O: the loop's time, not the pacing Clock.
            await asyncio.wait_for(  # noqa: TID251
                loop.create_connection(
                    lambda: connection, hostname, port, ssl=tls, server_hostname=hostname if tls else None
                ),
                within,
            )
        except TimeoutError as exc:
            connection.close()
            raise httpx2.ConnectTimeout(f"no connection to {hostname}:{port} within {within} s") from exc
        except OSError as exc:  # refused, unreachable, a name that does not resolve, a certificate not trusted
            connection.close()
            raise httpx2.ConnectError(str(exc) or type(exc).__name__) from exc
        return connection

    def _release(self, connection: _Connection) -> None:
        """The answer was read to its end (kept for reuse if the server allows), or abandoned (closed)."""
        if connection.reusable:
            connection.park()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()
            self._open -= 1
        self._wake_one()

    def _close_one_idle(self) -> bool:
        for connections in self._idle.values():
            if connections:
                connections.pop(0).close()
                self._open -= 1
                return True
        return False

    def _wake_one(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Body(httpx2.AsyncByteStream):
    """An answer's body as it arrives; its connection goes back to the pool (or is closed) when it ends."""

    def __init__(self, transport: EngineTransport, connection: _Connection, read_timeout: float | None) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        try:
            while (chunk := await connection.next_chunk(self._read_timeout)) is not None:
                yield chunk
        except BaseException:
            await self.aclose()
            raise
        await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._transport._release(connection)
