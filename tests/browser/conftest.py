"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and a Prefect server
that serves its UI.

Chromium is installed with apt when it is missing (the tests run as root in CI and in the dev
container); where that is impossible the tests are skipped, saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from commands.prefect_runtime import LocalPrefectServer, find_free_port
from tests.prefect_server import CLIENT_SETTINGS, SERVER_SETTINGS
from tests.support import apt_install

CHROMIUM = "/usr/bin/chromium"
UI_STARTUP_TIMEOUT_S = 240.0
"""A fresh home first copies the UI's bundle: slower than the API-only test server."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Chromium (installed if missing), headless, without network chatter of its own."""
    if not Path(CHROMIUM).exists() and (why := apt_install("chromium")):
        pytest.skip(why)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass(frozen=True)
class UIServer:
    url: str
    api_url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    """A ``prefect server start`` with its UI, on its own database, for this module."""
    home = tmp_path_factory.mktemp("prefect-ui-home")
    port = find_free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server = LocalPrefectServer(
        home,
        port=port,
        ui=True,
        log_file=home / "server.log",
        extra_env=SERVER_SETTINGS
        | {
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
            # The UI asks the API at this address (by default the one of port 4200).
            "PREFECT_UI_API_URL": api_url,
        },
    )
    server.start()
    try:
        server.wait_until_healthy(UI_STARTUP_TIMEOUT_S)
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home),
            **CLIENT_SETTINGS,
        }
        yield UIServer(url=server.url, api_url=api_url, env=env)
    finally:
        server.stop()
