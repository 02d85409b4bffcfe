"""pytest plugin: one real Prefect server for the test session.

Enable it in ``tests/conftest.py`` with::

    pytest_plugins = ["tests.prefect_server"]

Fixtures:

``prefect_server`` (session)
    A ``prefect server start --no-ui`` subprocess on 127.0.0.1 and a free port, SQLite in a
    temporary ``PREFECT_HOME``, analytics off, all services on (scheduler, triggers, event
    persister, ...) with short flush intervals so events and task runs are queryable within
    ~1 s. Yields :class:`PrefectTestServer` (``api_url``, ``home``, ``env``, ``log_file``...).
    Server output goes to ``<home>/server.log``; on a start-up failure or timeout the error
    shows its tail. Stopped with SIGTERM (SIGKILL after 10 s) at the end of the session.

``prefect_client_settings`` (function)
    Points this process's Prefect settings at that server (``PREFECT_API_URL``,
    ``PREFECT_HOME``) for in-process flow runs and ``get_client()``; restored afterwards.
    Also visible to async tests whose event loop context was copied before the fixture ran.

Subprocesses (``prefect deploy``, a ``serve`` process, a flow script)::

    subprocess.run([...], env=prefect_server.env)  # full environment, server variables set
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from commands.prefect_runtime import LocalPrefectServer, drain_prefect_workers

#: Seconds to wait for ``/api/health``: ~9 s on a fresh database on 2 idle cores.
STARTUP_TIMEOUT_S = 90.0

#: Variables the *server* is started with, on top of what LocalPrefectServer sets
#: (home, host, port, analytics off, UI off).
SERVER_SETTINGS: dict[str, str] = {
    # Events and client-side task runs are written every 5 s by default; tests poll for them.
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    # Expired concurrency leases (a killed run's slots) are swept every 15 s by default.
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1",
    # Nothing to vacuum in a database that lives for one session.
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "false",
}

#: Variables every *client* process of the test server gets (see ``PrefectTestServer.env``).
CLIENT_SETTINGS: dict[str, str] = {
    # A client that somehow lost PREFECT_API_URL must fail, not start an ephemeral server on
    # the same SQLite file.
    "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
    # `serve` polls for scheduled/triggered runs every 10 s by default; 1 s makes event-trigger
    # tests take ~2-3 s instead of 6-13 s.
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


@dataclass(frozen=True)
class PrefectTestServer:
    """What the ``prefect_server`` fixture yields.

    Attributes:
        api_url: ``http://127.0.0.1:PORT/api``.
        url: ``http://127.0.0.1:PORT``.
        home: The temporary ``PREFECT_HOME`` (database ``home/prefect.db``).
        log_file: The server's stdout/stderr.
        pid: Server process id (leader of its own process group).
        overrides: The Prefect variables a client needs (``PREFECT_API_URL``, ``PREFECT_HOME``,
            ...), e.g. for ``monkeypatch.setenv``.
        env: ``os.environ`` (as at session start) plus ``overrides``: pass it as ``env=`` to
            ``subprocess`` for ``prefect deploy``, ``serve`` processes or flow scripts.
    """

    api_url: str
    url: str
    home: Path
    log_file: Path
    pid: int
    overrides: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectTestServer]:
    """A real Prefect server for the whole session (see module docstring)."""
    home = tmp_path_factory.mktemp("prefect-home")
    database = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db"}
    server = LocalPrefectServer(
        home, log_file=home / "server.log", log_level="INFO", extra_env=SERVER_SETTINGS | database
    )
    server.start()
    try:
        server.wait_until_healthy(STARTUP_TIMEOUT_S)
    except BaseException:
        server.stop()
        raise
    assert server.process is not None
    pid = server.process.pid
    overrides = {"PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(home), **CLIENT_SETTINGS}
    info = PrefectTestServer(
        api_url=server.api_url,
        url=server.url,
        home=home,
        log_file=server.log_file,
        pid=pid,
        overrides=overrides,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("PREFECT_API_KEY",)},
            **overrides,
        },
    )
    try:
        yield info
    finally:
        # Deliver this process's pending logs/events while the server still listens.
        drain_prefect_workers(timeout=10)
        server.stop(timeout=10)


@pytest.fixture
def prefect_client_settings(prefect_server: PrefectTestServer) -> Iterator[PrefectTestServer]:
    """Point in-process Prefect (flows, ``get_client()``) at ``prefect_server``; restore after."""
    import prefect.context
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        temporary_settings,
    )

    updates = {
        PREFECT_API_URL: prefect_server.api_url,
        PREFECT_HOME: str(prefect_server.home),
        PREFECT_SERVER_EPHEMERAL_ENABLED: False,
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(temporary_settings(updates=updates))
        # Also make them the process-global fallback, which contexts copied before this fixture
        # ran see (threads Prefect started earlier in the session, an event loop's saved
        # context), as Prefect's own test harness does (prefect issue #15818).
        stack.enter_context(
            prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()
            )
        )
        yield prefect_server
        drain_prefect_workers(timeout=10)
