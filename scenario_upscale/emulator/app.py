"""Assemble the ASGI application: FastAPI routers wrapped by the accounting/fault layer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from .config import EmulatorConfig
from .errors import install_error_handlers
from .middleware import EmulatorMiddleware
from .routes import admin, assets, cdn, generate, jobs, models, uploads
from .runtime import Runtime


class EmulatorApp:
    """The ASGI callable uvicorn runs; keeps handles on the FastAPI app and the runtime."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.runtime = Runtime(config or EmulatorConfig())
        runtime = self.runtime

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            yield
            await runtime.close()

        api = FastAPI(
            title="Scenario API emulator",
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
            lifespan=lifespan,
        )
        api.state.runtime = runtime
        install_error_handlers(api)
        routers = (
            models.router,
            assets.router,
            uploads.router,
            generate.router,
            jobs.router,
            cdn.router,
            admin.router,
        )
        for router in routers:
            api.include_router(router)
        # Route templates ("/v1/jobs/{jobId}") for per-route stats and fault targeting, taken
        # from our own routers so it does not depend on FastAPI's internal route tree.
        templates = [
            (route.path, route.path_regex)
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute)
        ]
        self.fastapi = api
        self._asgi = EmulatorMiddleware(api, runtime, templates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    return EmulatorApp(config)
