"""The aiohttp transport fails the way httpx's own does, against real sockets on 127.0.0.1:
the retry and reconcile rules recognise only ``httpx.TransportError``s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from commands.prefect_runtime import find_free_port
from scenario_upscale.transport import AiohttpTransportAsHttpx, CookielessClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(handler: Handler | None, **kwargs: object) -> httpx.Response:
    port = find_free_port()
    server = await asyncio.start_server(handler, "127.0.0.1", port) if handler else None
    try:
        async with httpx.AsyncClient(transport=AiohttpTransportAsHttpx()) as client:
            response = await client.request(
                "POST",
                f"http://127.0.0.1:{port}/x",
                **kwargs,  # type: ignore[arg-type]
            )
            await response.aread()
            return response
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()


async def _cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    await writer.drain()
    writer.close()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"this is not HTTP\r\n\r\n")
    await writer.drain()
    writer.close()


async def _ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (None, httpx.ConnectError),  # nothing listens: refused
        (_hang_up, httpx.RemoteProtocolError),  # the request went out, no answer came
        (_cut_body, httpx.RemoteProtocolError),
        (_garbage, httpx.RemoteProtocolError),
    ],
    ids=["refused", "hung up after the request", "body cut short", "not HTTP"],
)
def test_each_failure_is_the_transport_error_httpx_raises(
    handler: Handler | None, expected: type[httpx.TransportError]
) -> None:
    with pytest.raises(expected) as caught:
        asyncio.run(_request(handler))
    assert not isinstance(caught.value, httpx.ConnectTimeout)  # never "not sent" by mistake


def test_an_error_of_a_streamed_body_reaches_the_caller_as_itself() -> None:
    class InputChanged(Exception):
        pass

    async def body() -> AsyncIterator[bytes]:
        yield b"first part"
        raise InputChanged("the file changed while it was read")

    with pytest.raises(InputChanged):
        asyncio.run(_request(_ok, content=body(), headers={"Content-Length": "100"}))


def test_an_answer_is_read_whole() -> None:
    response = asyncio.run(_request(_ok, content=b"hello"))
    assert (response.status_code, response.content) == (200, b"ok")


def test_the_client_keeps_no_cookie_the_server_sets() -> None:
    seen: list[bytes] = []

    async def set_cookie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            seen.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: s=1; Path=/\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async def twice() -> None:
        port = find_free_port()
        server = await asyncio.start_server(set_cookie, "127.0.0.1", port)
        try:
            async with CookielessClient(transport=AiohttpTransportAsHttpx()) as client:
                for _ in range(2):
                    (await client.get(f"http://127.0.0.1:{port}/")).raise_for_status()
                assert not client.cookies
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(twice())
    assert len(seen) == 2 and b"cookie:" not in seen[1].lower()
