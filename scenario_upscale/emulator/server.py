"""Run the emulator: in a background thread for tests/demos, or in the foreground for the CLI."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import httpx
import uvicorn

from .app import EmulatorApp
from .config import EmulatorConfig
from .stats import EmulatorStats

_STARTUP_TIMEOUT_S = 10.0


def _uvicorn_config(app: EmulatorApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # No dictConfig: do not reconfigure the host process's logging (pytest, Prefect).
        log_config=None,
        # Keep uvicorn's send un-wrapped so the drop fault can reach the transport.
        proxy_headers=False,
        lifespan="on",
        # Hanging fault requests are woken at shutdown; this only bounds a misbehaving one.
        timeout_graceful_shutdown=3,
    )


class EmulatorServer:
    """``with EmulatorServer(EmulatorConfig(...)) as emu:`` -> a live server on 127.0.0.1."""

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = EmulatorApp(config)
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.Client | None = None

    # --- addresses and credentials -----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("EmulatorServer is not running")
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def api_key(self) -> str:
        return self.app.runtime.config.api_key

    @property
    def api_secret(self) -> str:
        return self.app.runtime.config.secret_value()

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        # Bind first so the port is known (port 0 -> a free one) before uvicorn starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._port = int(sock.getsockname()[1])
        server = uvicorn.Server(_uvicorn_config(self.app, self.host, self._port))
        self._server = server

        def run() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                await server.serve(sockets=[sock])

            asyncio.run(main())
            sock.close()

        self._thread = threading.Thread(target=run, name="scenario-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("Scenario emulator failed to start")
            time.sleep(0.01)
        self._http = httpx.Client(base_url=self.root_url, timeout=10.0)
        return self

    def stop(self) -> None:
        if self._thread is None or self._server is None:
            return
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._loop is not None and not self._loop.is_closed():
            # Wake requests parked in a hang fault so graceful shutdown does not wait for them.
            self._loop.call_soon_threadsafe(self.app.runtime.shutdown_event.set)
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._thread = None
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- control over HTTP (the same routes a separate process would use) ----------------------

    def _client(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("EmulatorServer is not running")
        return self._http

    def stats(self) -> EmulatorStats:
        response = self._client().get("/_emulator/stats")
        response.raise_for_status()
        return EmulatorStats.model_validate(response.json())

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Patch the running config; returns the new config (secret masked)."""
        if "api_secret" in changes and hasattr(changes["api_secret"], "get_secret_value"):
            changes["api_secret"] = changes["api_secret"].get_secret_value()
        response = self._client().put("/_emulator/config", json=changes)
        if response.status_code == 400:
            raise ValueError(response.json().get("reason", response.text))
        response.raise_for_status()
        return self.app.runtime.config

    def reset(self) -> None:
        """Drop all state and counters and restore the start-up config."""
        self._client().post("/_emulator/reset").raise_for_status()


def serve(host: str = "127.0.0.1", port: int = 8765, config: EmulatorConfig | None = None) -> None:
    """Run in the foreground until interrupted (Ctrl+C)."""
    app = EmulatorApp(config)
    uvicorn.Server(_uvicorn_config(app, host, port)).run()
