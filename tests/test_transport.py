"""The engine's transport (`_transport`) against raw servers on loopback: what the wire does, errors as httpx2's,
and the pool (its cap, reuse, connections closed by either side)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest

from sluicegate._transport import EngineTransport

pytestmark = pytest.mark.anyio

# A self-signed certificate for 127.0.0.1 (valid until 2126), made once with `openssl req -x509 -newkey rsa:2048
# -nodes -days 36500 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1`; it protects nothing.
CERT = """\
-----BEGIN CERTIFICATE-----
MIIDHDCCAgSgAwIBAgIUWFF9SptUMJMFEuy0A7DO8af0V1kwDQYJKoZIhvcNAQEL
BQAwFDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTIwNTA3MzkwOFoYDzIxMjYx
MTExMDczOTA4WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwggEiMA0GCSqGSIb3DQEB
AQUAA4IBDwAwggEKAoIBAQCUWzcE2nS7mRv2iMHiZuLOcdDSaqT133ZMR6BA90xT
0SbNInUxDNhzDMx5uImPq/NF157dIm2rN/c56V0lp5E6xwUIyk8diP1PcZFSZzmA
IgOzooYR4rC2sACcEQorUp37RuW6Cxy5cmqjXFzfB1Ym5GpawTC4TAkTpCCcyNj6
OpG3Rj2rVwxT0Yh7dyExIMiQsrNqOAZ/qsXAX47u+Co9UcEy1naKzIJoNjbJPh1j
KDzgjnj08ewM1AGxnxzJ47IhmTAoNTpFvQDWxVSrOHlENTW7OKL+yUjv2UJ3Gtlo
ndIhpAIl+F4vJamznBLKWBgZW1GvS6F4D5yDga5+dW1HAgMBAAGjZDBiMB0GA1Ud
DgQWBBQgTGc5wvHVEoqp5DFcQgZst1P9SjAfBgNVHSMEGDAWgBQgTGc5wvHVEoqp
5DFcQgZst1P9SjAPBgNVHRMBAf8EBTADAQH/MA8GA1UdEQQIMAaHBH8AAAEwDQYJ
KoZIhvcNAQELBQADggEBAAw99ObV73uT0ZQFaA4cdu8kwYbFZJLT9TOYdtLBw3Sk
/NMSd+x9fxFNZlkEJ6iVAHuTygYsrHgwWf0Wb+cobwFeIzk0FHkfYf6E2HsSUmKo
fj/P2KXddDnfj5kQ1F5vuaPrnHUnLWjbtURjJMzIfeFKJJfTeFCECHdnmWUN7Cti
2qRavHxwYAt5UPYpvMuhZi4NJQQxTNvg4rFE4YbiB/XfI4DyPI/aFz9caa/nEaeP
jq3oKtYYbmi6wtWLdqku2kZHNj3O63lriEv+oOwL0cZvAyYJXoSNh+PLwRdNErCc
CK5K3iq5q2txZ9Ek0JAK23obLc74oQ9CxRWjHKrF5oA=
-----END CERTIFICATE-----
"""
KEY = """\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCUWzcE2nS7mRv2
iMHiZuLOcdDSaqT133ZMR6BA90xT0SbNInUxDNhzDMx5uImPq/NF157dIm2rN/c5
6V0lp5E6xwUIyk8diP1PcZFSZzmAIgOzooYR4rC2sACcEQorUp37RuW6Cxy5cmqj
XFzfB1Ym5GpawTC4TAkTpCCcyNj6OpG3Rj2rVwxT0Yh7dyExIMiQsrNqOAZ/qsXA
X47u+Co9UcEy1naKzIJoNjbJPh1jKDzgjnj08ewM1AGxnxzJ47IhmTAoNTpFvQDW
xVSrOHlENTW7OKL+yUjv2UJ3GtlondIhpAIl+F4vJamznBLKWBgZW1GvS6F4D5yD
ga5+dW1HAgMBAAECggEAGnS1uAjY/kdMhEdZA+3DDnufeJaJ+kqyRuITAuLW2q+W
kshNS8T1qHak1CQDa/qG9HKCIv8rvXfKf6pM8RUTwf6RuEKTnzm5qnwfJSnBSEdI
j7Uw4Wmih8GVKj+jp5whDhlTiDzJD40G1UD4UtF1HJRpHuwKqyLsD3OaWTs77ktT
3gqS2mWNniJ089ybL2zo0ONf19+7wERiUj/vKM7ACTY/XggmdAY3H7OLoJJczhbL
/vuUZpvw/oiGeSvgnXqBchfiy+A+NUmuXTiQIN0/O9cUh55DAxWn01EQhxDpW2rc
mMtzUIUuiqAeo0jXuTofc2UqOl1B8FLDcdOvDf6cmQKBgQDQQdLsTVQBAHERyokN
+9Cytj+BJdKLQ4VBK9vI7WPtocIwh90b0ztlIHms3WdCV59dKrXb69PFCS7qyfDN
vGSHVuBpkVFG05FhIBR4G6D4lFc0UX4TBD+Oo4yQUUF+6dZ3Dsad3M7LdDV78ylV
OPcylnjWtfIi0XDp0zLAqrh8uwKBgQC2Xe/kXsUIImsQR583l1sp8cCdBm/1xQw/
uEeMbKavFRTuFdBQ9zULtuj0Sa3dHblpq7xIQqdk1zuTET+QO7aFnhKhk2KDrTpU
XRoxiq1Lspkx321bRLbrRwt9M40/U4MfU0N3FKVgh2dmbqVGQGZ3pd/4NqDU5hWU
bOehDuju5QKBgQCkEWeJULaAf4eUu5pUEPHvCVNofJKtsokVuebSGeui99AUCcVx
OW3OktIpFNhX1M4xSQey9cyFq2FyCZwTiXstgI0Vvi1o/h7HhM17flDH5Z36EsWf
V7Z2unRv8gQGZ1TVwSdKkP2+HZRRTVVf1ZwyF4elp/vV4GjzXbbbQORNJwKBgQCO
2yMyl/JsntmTlSdqGsy1HMWvu/00XzlrKOYTYIFqIW+V2cynwB7zoEL4KkdiMQiv
eHIzgNM0MU5ftGFAkSY3oU4i+Btx3t8UeyIrsOBzreJHqSg3GKrZv3uGhj2dX8QV
Y9ozjB7IcQlUulQJpiUekPfTrqdqXxqEfJMuHUnm6QKBgBvCoNJPqtsN7TKDDx0x
yfyD6DfPDlhfiCdN6QR6eGgkvqEKe2HOzPeeiBw3cEv1+CqLOXpK6FgnWpsErP7i
H/kCpe64W3HQHFJoOCzSlwvaV6oD3Xt1s6sY2Z2UWl1sCwPmRh2LfmpRXsK0T9MF
WBUNTEGJjIc95Lzs0Rp0VArC
-----END PRIVATE KEY-----
"""
OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
TIMEOUTS = {"connect": 2.0, "read": 5.0, "write": 5.0, "pool": None}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def _server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A raw TCP (or TLS) server on 127.0.0.1 running `handler` per connection; yields its base URL. On exit it
    waits for the handlers to end (the client closing is what ends most of them) and closes every connection."""
    running: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        running.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.close()
        if running:
            await asyncio.wait(running, timeout=5)
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (the head is read and dropped; the body is as long as its content-length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def _post(
    transport: EngineTransport, url: str, body: bytes, timeouts: dict[str, float | None] = TIMEOUTS
) -> bytes:
    request = httpx2.Request(
        "POST", url + "/v1/messages", content=body, extensions={"timeout": timeouts}, headers={"x-api-key": "k"}
    )
    response = await transport.handle_async_request(request)
    try:
        return await response.aread()
    finally:
        await response.aclose()


async def test_requests_small_and_large_arrive_whole_and_share_a_kept_alive_connection() -> None:
    """A small body and one far above the write buffer both arrive intact, over one kept-alive connection."""
    bodies: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                bodies.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(OK)
            await writer.drain()
        writer.close()

    big = b"x" * 300_000
    transport = EngineTransport(connections=4)
    async with _server(handler) as url:
        assert await _post(transport, url, b"{}") == b'{"ok":true}'
        assert await _post(transport, url, big) == b'{"ok":true}'
        await transport.aclose()
    assert bodies == [b"{}", big]
    assert connections == 1


async def test_a_body_larger_than_the_read_ahead_streams_through_whole() -> None:
    """A response far larger than what the transport buffers ahead of its reader arrives whole, byte for byte."""
    body = bytes(range(256)) * 20_000  # 5 MB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    transport = EngineTransport(connections=1)
    async with _server(handler) as url:
        request = httpx2.Request("POST", url, content=b"{}", extensions={"timeout": TIMEOUTS})
        response = await transport.handle_async_request(request)
        received = bytearray()
        async for chunk in response.aiter_raw():
            received += chunk
            await asyncio.sleep(0)  # a reader slower than loopback: the transport stops reading meanwhile
        await response.aclose()
        await transport.aclose()
    assert received == body


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    """When the server closes a kept-alive connection, the next request opens a new one instead of failing."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(OK)
        await writer.drain()
        writer.close()  # keep-alive was not refused in the headers, but the server goes away at once

    transport = EngineTransport(connections=4)
    async with _server(handler) as url:
        assert await _post(transport, url, b"{}") == b'{"ok":true}'
        await asyncio.sleep(0.05)  # the close reaches the client's loop
        assert await _post(transport, url, b"{}") == b'{"ok":true}'
        await transport.aclose()
    assert connections == 2


async def test_silence_is_a_read_timeout_and_a_cut_body_a_protocol_error() -> None:
    """No answer within the read timeout raises httpx2.ReadTimeout; a body cut short raises an httpx2 error."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await reader.read()  # nothing is sent back: wait until the client gives up and closes

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial')
        await writer.drain()
        writer.close()

    transport = EngineTransport(connections=4)
    async with _server(silent) as url:
        with pytest.raises(httpx2.ReadTimeout):
            await _post(transport, url, b"{}", {**TIMEOUTS, "read": 0.2})
    async with _server(cut) as url:
        with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
            await _post(transport, url, b"{}")
    await transport.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    """Nothing listening on the port: httpx2.ConnectError, which the engine counts as a connect failure."""

    async def unused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("nothing connects")

    async with _server(unused) as url:  # take a free port, then close it
        pass
    transport = EngineTransport(connections=1)
    with pytest.raises(httpx2.ConnectError):
        await _post(transport, url, b"{}")
    await transport.aclose()


async def test_tls_is_verified_and_then_carries_the_request(tmp_path: Path) -> None:
    """Over TLS the server's certificate is checked (an untrusted one is a connect error) and requests go through."""
    (tmp_path / "cert.pem").write_text(CERT)
    (tmp_path / "key.pem").write_text(KEY)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusting = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(OK)
        await writer.drain()

    async with _server(handler, tls=server_tls) as url:
        untrusting = EngineTransport(connections=1)
        with pytest.raises(httpx2.ConnectError):
            await _post(untrusting, url, b"{}")
        await untrusting.aclose()
        transport = EngineTransport(connections=1, ssl_context=trusting)
        assert await _post(transport, url, b"{}") == b'{"ok":true}'
        await transport.aclose()


async def test_the_pool_opens_no_more_than_its_cap_and_every_request_is_answered() -> None:
    """Twelve requests at once over a pool of three: never more than three connections open, all twelve answered."""
    open_now = peak = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        try:
            while True:
                await _read_request(reader)
                await asyncio.sleep(0.01)  # long enough for the requests to pile up at the pool
                writer.write(OK)
                await writer.drain()
        finally:
            open_now -= 1

    transport = EngineTransport(connections=3)
    async with _server(handler) as url:
        answers = await asyncio.gather(*(_post(transport, url, b"{}") for _ in range(12)))
        await transport.aclose()
    assert answers == [b'{"ok":true}'] * 12
    assert peak == 3


async def test_a_body_ended_by_closing_the_connection_is_whole_and_an_abandoned_one_is_not_reused() -> None:
    """A body without a length ends when the server closes; an answer dropped half-read closes its connection,
    so the next request gets a new one rather than the rest of the old answer."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        body = await _read_request(reader)
        if body == b"close-delimited":
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
            await writer.drain()
            return
        while True:  # a long chunked answer, then the same connection would serve the next request
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(50):
                writer.write(b"6\r\nchunk.\r\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            body = await _read_request(reader)

    transport = EngineTransport(connections=4)
    async with _server(handler) as url:
        assert await _post(transport, url, b"close-delimited") == b"all of it"
        request = httpx2.Request("POST", url, content=b"{}", extensions={"timeout": TIMEOUTS})
        response = await transport.handle_async_request(request)
        assert response.status_code == 200
        await response.aclose()  # not read: the connection cannot carry another request
        assert await _post(transport, url, b"{}") == b"chunk." * 50
        assert await _post(transport, url, b"{}") == b"chunk." * 50  # kept alive after a whole chunked answer
        await transport.aclose()
    assert connections == 3
