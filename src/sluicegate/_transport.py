"""The engine's default transport: httpcore2's connection pool over asyncio's own sockets.

httpcore2's default network backend goes through anyio's socket streams: every read and write opens a cancel
scope with its own timer and yields to the loop once more, and a request's head and body go out as two
writes, each a system call that on loopback also wakes the server. Profiled at a few hundred requests a
second, that was the largest share of the client's CPU. This backend keeps httpcore2's HTTP/1.1 and pool
(their public network-backend interface is all it implements) but reads and writes through an
`asyncio.Protocol`: what a request writes is sent in one call when the response is first read; a read
arms a timer only when it has to wait; and "is the idle connection readable" (asked before a kept-alive
connection is reused) is answered from what the protocol already saw, without a system call.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, cast

import httpcore2
import httpx2

__all__ = ["EngineTransport"]

_FLUSH_AT = 64 * 1024  # a request body larger than this is written as it comes
_READ_AHEAD = 1024 * 1024  # bytes received and not yet read, above which the socket is not read from


class _Protocol(asyncio.Protocol):
    """Bytes received, end of stream and write pauses of one connection, for `_Stream` to wait on."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.eof = False
        self.reading_paused = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # after start_tls it is the TLS transport, set by start_tls
            self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) > _READ_AHEAD and self.transport is not None and not self.reading_paused:
            self.reading_paused = True  # a consumer slower than the server: stop reading until it catches up
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_readable(self, timeout: float | None) -> None:
        """Until bytes or the end arrive; httpcore2's ReadTimeout after `timeout` seconds of silence."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    @property
    def writing_paused(self) -> bool:
        return self._writable is not None and not self._writable.done()

    async def wait_writable(self) -> None:
        if self._writable is not None:
            await self._writable


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpcore2.ReadTimeout("no data for longer than the read timeout"))


class _Stream(httpcore2.AsyncNetworkStream):
    """One connection: writes gathered until the response is read, reads served from the protocol's buffer."""

    def __init__(self, protocol: _Protocol) -> None:
        assert protocol.transport is not None
        self._protocol = protocol
        self._transport = protocol.transport
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            await self._flush(timeout)
        protocol = self._protocol
        if not protocol.received and not protocol.eof:
            await protocol.wait_readable(timeout)
        if protocol.received:
            data = bytes(protocol.received[:max_bytes])
            del protocol.received[:max_bytes]
            if protocol.reading_paused and len(protocol.received) <= _READ_AHEAD:
                protocol.reading_paused = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore2.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._protocol.eof:
            raise httpcore2.WriteError("the connection is closed")
        self._pending.append(buffer)
        self._pending_size += len(buffer)
        if self._pending_size >= _FLUSH_AT:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if self._protocol.eof:
            raise httpcore2.WriteError("the connection is closed")
        self._transport.write(data)
        if not self._protocol.writing_paused:
            return
        try:
            await asyncio.wait_for(self._protocol.wait_writable(), timeout)
        except TimeoutError:
            raise httpcore2.WriteTimeout("the server did not take the request in time") from None

    async def aclose(self) -> None:
        self._pending.clear()
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport,
                self._protocol,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore2.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore2.ConnectError(str(exc)) from exc
        if transport is None:
            raise httpcore2.ConnectError("the TLS handshake did not complete")
        self._protocol.transport = transport
        return _Stream(self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle connection the server closed or wrote to: not to be reused
            return self._protocol.eof or bool(self._protocol.received)
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername", "socket": "socket"}
        return self._transport.get_extra_info(names[info]) if info in names else None


class _Backend(httpcore2.AsyncNetworkBackend):
    """Opens `_Stream`s; socket options and Unix sockets (unused by the engine) go to httpcore2's own backend."""

    def __init__(self) -> None:
        self._fallback = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        if socket_options:
            return await self._fallback.connect_tcp(host, port, timeout, local_address, socket_options)
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        try:
            # Happy eyeballs as anyio.connect_tcp does, where the loop has it (uvloop's does not); both loops turn
            # TCP_NODELAY on for TCP sockets.
            eyeballs: dict[str, Any] = {"happy_eyeballs_delay": 0.25} if isinstance(loop, asyncio.BaseEventLoop) else {}
            connecting = loop.create_connection(_Protocol, host, port, local_addr=local, **eyeballs)
            transport, protocol = await asyncio.wait_for(connecting, timeout)
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(f"no connection to {host}:{port} within {timeout} s") from exc
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        # uvloop may call connection_made only after create_connection returns; its transports are duck-typed.
        protocol.transport = transport
        return _Stream(protocol)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        return await self._fallback.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class EngineTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport over httpcore2's pool and `_Backend`: what `httpx2.AsyncHTTPTransport` does for the
    engine's requests (HTTP/1.1, TLS verified as httpx2 verifies it, no proxy), with httpcore2's errors given
    as httpx2's."""

    def __init__(
        self, *, connections: int, keepalive_expiry: float = 5.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl_context or httpx2.create_ssl_context(),
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=keepalive_expiry,
            network_backend=_Backend(),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        url = request.url
        core = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core)
        except Exception as exc:
            raise _as_httpx2(exc) from exc
        assert isinstance(response.stream, AsyncIterable)
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            raise _as_httpx2(exc) from exc

    async def aclose(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            await closer()


# httpcore2's errors and the httpx2 errors they become, most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx2.HTTPError]], ...] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.ProxyError, httpx2.ProxyError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
)


def _as_httpx2(exc: Exception) -> Exception:
    """The httpx2 error for an httpcore2 one; anything else is re-raised as it is."""
    for theirs, ours in _ERRORS:
        if isinstance(exc, theirs):
            return ours(str(exc))
    raise exc
