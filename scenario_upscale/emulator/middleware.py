"""Outermost ASGI layer: request accounting and request-level fault injection.

It sits outside FastAPI on purpose: injected 5xx/timeouts happen "before doing anything" (no route
runs), and only at this level is uvicorn's own ``send`` reachable, whose owner holds the socket
transport needed to drop a connection after the job was committed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response
from .runtime import Runtime

_FAULT_MESSAGES = {500: "Internal server error", 502: "Bad Gateway", 503: "Service Unavailable"}
_RANDOM_5XX = (500, 502, 503)


class EmulatorMiddleware:
    def __init__(
        self, app: ASGIApp, runtime: Runtime, routes: list[tuple[str, re.Pattern[str]]]
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.routes = routes

    def _template(self, scope: Scope) -> str:
        path = str(scope.get("path", ""))
        for template, regex in self.routes:
            if regex.match(path):
                return template
        return "<unmatched>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        template = self._template(scope)
        method = str(scope["method"])
        runtime.stats.requests[f"{method} {template}"] += 1
        # uvicorn passes a bound method of its request cycle, which owns the transport.
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        dropped = False

        async def guarded_send(message: Message) -> None:
            nonlocal dropped
            if dropped:
                return
            if message["type"] == "http.response.start":
                if scope.get("emulator.drop"):
                    dropped = True
                    await self._drop(transport)
                    return
                runtime.stats.statuses[str(message["status"])] += 1
            elif message["type"] == "http.response.body" and scope.get("emulator.truncate"):
                body = bytes(message.get("body", b""))
                await send(
                    {
                        "type": "http.response.body",
                        "body": body[: len(body) // 2],
                        "more_body": True,
                    }
                )
                dropped = True
                await asyncio.sleep(0.01)  # let the partial body reach the socket first
                await self._drop(transport)
                return
            await send(message)

        limit = runtime.config.behaviour.gateway_body_limit
        if limit is not None and str(scope.get("path", "")).startswith("/v1"):
            replay = await self._read_within(receive, limit)
            if replay is None:
                # The API gateway refuses the body before any route (or fault) sees it.
                refusal = error_response(413, "Request Entity Too Large", key="error", bare=True)
                await refusal(scope, receive, guarded_send)
                return
            receive = replay
        if template.startswith("/v1") and self._faults_apply(template):
            fault = await self._request_fault(method)
            if fault is not None:
                await fault(scope, receive, guarded_send)
                return
        await self.app(scope, receive, guarded_send)
        if dropped:
            # Let the loop run connection_lost() so uvicorn sees a disconnect, not a bug.
            await asyncio.sleep(0.01)

    @staticmethod
    async def _read_within(receive: Receive, limit: int) -> Receive | None:
        """Read the whole body; a ``receive`` that replays it, or None when over ``limit`` bytes.

        An oversized body is still read to its end (and dropped), so the client gets the 413
        instead of a connection reset in the middle of its upload.
        """
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)
                break
            size += len(message.get("body", b""))
            if size <= limit:
                messages.append(message)
            if not message.get("more_body", False):
                break
        if size > limit:
            return None

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return replay

    def _faults_apply(self, template: str) -> bool:
        wanted = self.runtime.config.fault_routes
        return not wanted or template in wanted

    async def _request_fault(
        self, method: str
    ) -> Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]] | None:
        runtime = self.runtime
        config = runtime.config
        if config.latency_s > 0:
            runtime.stats.faults["latency"] += 1
            await runtime.sleep_or_shutdown(config.latency_s)
        if runtime.take("hang_next_n_requests") or runtime.chance(config.timeout_rate):
            runtime.stats.faults["timeout"] += 1
            await runtime.sleep_or_shutdown(runtime.config.hang_s)
            # What API Gateway says after its own 29 s integration timeout.
            return error_response(504, "Endpoint request timed out", key="message")
        status: int | None = None
        if method == "GET":
            if runtime.take("fail_next_n_gets"):
                status = 503
            elif runtime.chance(config.error_rate_5xx):
                status = runtime.rng.choice(_RANDOM_5XX)
        elif method == "POST":
            if runtime.take("fail_next_n_posts"):
                status = 503
            elif runtime.chance(config.error_rate_5xx_post):
                status = runtime.rng.choice(_RANDOM_5XX)
        if status is None:
            return None
        runtime.stats.faults["5xx"] += 1
        return error_response(status, _FAULT_MESSAGES[status], key="message")

    async def _drop(self, transport: Any) -> None:
        if transport is not None and hasattr(transport, "abort"):
            # RST without a response: the client sees "server disconnected" / connection reset.
            transport.abort()
            return
        # Not under uvicorn: hang instead, which a client experiences as a read timeout.
        await self.runtime.sleep_or_shutdown(self.runtime.config.hang_s)
