"""The HTTP layer of the client's two httpx clients (API and signed URLs): aiohttp's transport
under httpx, and no cookie jar.

Why not httpx's own: its pool (httpcore 1.0.9) asks every idle connection whether the server
closed it, on every request, through anyio's attribute lookup (a ``getpeername`` and a ``poll``
per connection). With 50 jobs in flight that was a quarter of the client's CPU per job
(upstream: encode/httpcore#928, open). The SDK's own answer is its ``aiohttp`` extra
(``httpx-aiohttp``): httpx's API above, aiohttp's pool and parser below. At N=1000, C=50 the
engine's CPU per job went from 18.4 to 13.3 ms.

What this module adds to httpx-aiohttp: failures look as they do with httpx's own transport.
Its table calls a refused connection, or one dropped after the request went out, a
``ConnectTimeout``, and lets other aiohttp errors (a malformed answer) through as they are; an
error raised by a streamed request body (an input that changed while it was read) reaches aiohttp
as a failed send. Here each becomes the ``httpx.TransportError`` httpx would raise, and the
body's own error is raised as itself. A proxy from the environment is still honoured: httpx
mounts its own transport for it.
Its cost: aiohttp is imported with the SDK (about 0.2 s), which looks for httpx-aiohttp then.

No cookie jar (``CookielessClient``): Scenario's API authenticates every request, and a signed
URL must carry nothing of ours; yet httpx builds urllib request and response objects for its jar
from every answer (about 6 % of the engine's CPU per job at 50 jobs in flight).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class CookielessClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that neither keeps nor sends cookies."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        return None  # httpx's constructor sets its empty jar: nothing to keep


class AiohttpTransportAsHttpx(AiohttpTransport):
    """httpx-aiohttp's transport, failing the way httpx's own does."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = None
        try:
            request.content  # noqa: B018  # raises for a body still to be streamed
        except httpx.RequestNotRead:
            assert isinstance(request.stream, httpx.AsyncByteStream)
            sent = _Sent(request.stream)
            request.stream = sent
        try:
            response = await super().handle_async_request(request)
        except Exception as error:
            if sent is not None and sent.raised is not None:
                raise sent.raised from None
            raise _as_httpx(error, request) from error.__cause__ or error
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Answer(response.stream, request)
        return response


class _Sent(httpx.AsyncByteStream):
    """A streamed request body that keeps what it raised."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner
        self.raised: Exception | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as error:
            self.raised = error
            raise


class _Answer(httpx.AsyncByteStream):
    """A response body whose failures are httpx's."""

    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as error:
            raise _as_httpx(error, self._request) from error.__cause__ or error

    async def aclose(self) -> None:
        await self._inner.aclose()


def _as_httpx(error: Exception, request: httpx.Request) -> Exception:
    """The ``httpx.TransportError`` httpx's own transport raises where aiohttp raised ``error``
    (or httpx-aiohttp's translation of it); any other error as it is."""
    original = error.__cause__ if isinstance(error, httpx.TransportError) else error
    if not isinstance(original, aiohttp.ClientError | TimeoutError):
        return error
    kind: type[httpx.TransportError]
    if isinstance(original, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(original, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError  # refused, unknown host, TLS handshake
    elif isinstance(original, aiohttp.ServerTimeoutError | TimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(original, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        kind = httpx.RemoteProtocolError
    elif isinstance(original, aiohttp.ClientOSError):
        kind = httpx.ReadError
    else:
        kind = httpx.RemoteProtocolError  # a malformed answer
    return kind(f"{type(original).__name__}: {original}", request=request)
