"""The session Prefect server fixture and ``commands.prefect_runtime.prefect_api``, for real.

On 2 idle cores ~35 s: the session server's start (~9 s, fresh database), one subprocess that
starts its own local server (~10 s, fresh database) and two that use an existing one (~3 s).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from commands.prefect_runtime import (
    CONSOLE_LEVEL_ENV,
    LocalPrefectServer,
    PrefectAPI,
    PrefectServerStartupError,
    find_free_port,
    prefect_api,
    quiet_prefect_console,
)
from tests.prefect_server import PrefectTestServer

pytestmark = pytest.mark.prefect_server

N_TASKS = 12
FORBIDDEN = ("Traceback", "Error flushing", "CancelledError", "ERROR", "WARNING")


def _trivial_flow() -> Any:
    from prefect import flow, get_run_logger, task

    @task
    async def double(i: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * i

    @flow(name="prefect-runtime-trivial")
    async def trivial(n: int = N_TASKS) -> int:
        get_run_logger().info("trivial flow body ran")
        return sum(await asyncio.gather(*[double(i) for i in range(n)]))

    return trivial


# --------------------------------------------------------------------------------------------
# prefect_server fixture
# --------------------------------------------------------------------------------------------


def test_server_is_healthy_and_isolated(prefect_server: PrefectTestServer) -> None:
    response = httpx.get(f"{prefect_server.api_url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json() is True
    assert prefect_server.api_url.startswith("http://127.0.0.1:")
    assert prefect_server.env["PREFECT_API_URL"] == prefect_server.api_url
    assert prefect_server.env["PREFECT_HOME"] == str(prefect_server.home)
    assert (prefect_server.home / "prefect.db").is_file()
    assert prefect_server.log_file.is_file()
    os.kill(prefect_server.pid, 0)  # still running


async def test_in_process_flow_run_is_recorded_on_the_server(
    prefect_client_settings: PrefectTestServer,
) -> None:
    from prefect.client.orchestration import get_client

    state = await _trivial_flow()(return_state=True)
    assert await state.result() == sum(2 * i for i in range(N_TASKS))
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None

    async with get_client() as client:
        assert client.api_url == httpx.URL(prefect_client_settings.api_url + "/")
        flow_run = await client.read_flow_run(flow_run_id)
        assert flow_run.state is not None and flow_run.state.is_completed()
        flow = await client.read_flow(flow_run.flow_id)
        assert flow.name == "prefect-runtime-trivial"

        # Client-side task runs reach the database through events (flushed every ~1 s here).
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        deadline = time.monotonic() + 15
        while True:
            task_runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if len(task_runs) == N_TASKS or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert len(task_runs) == N_TASKS


def test_prefect_api_uses_a_configured_api(prefect_client_settings: PrefectTestServer) -> None:
    calls: list[str] = []
    with prefect_api(meanwhile=lambda: calls.append("setup")) as api:
        assert calls == ["setup"]
        assert api.source == "configured"
        assert api.api_url == prefect_client_settings.api_url
        assert api.server_log is None
        assert os.environ["PREFECT_API_URL"] == prefect_client_settings.api_url
        state = asyncio.run(_trivial_flow()(n=2, return_state=True))
        assert state.result() == 2
        run_id = UUID(int=1)
        assert (
            api.ui_url_for_flow_run(run_id)
            == f"{prefect_client_settings.url}/runs/flow-run/{run_id}"
        )
        assert api.view_hint(run_id).endswith(
            f"{prefect_client_settings.url}/runs/flow-run/{run_id}"
        )


def test_a_taken_port_names_the_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LocalPrefectServer(tmp_path / "home", port=taken.getsockname()[1])
        server.start()
        with pytest.raises(PrefectServerStartupError, match=r"exited with code 1") as raised:
            server.wait_until_healthy(timeout=120)
    assert "already in use" in str(raised.value)
    assert str(server.log_file) in str(raised.value)


def test_startup_timeout_names_the_log_and_leaves_no_process(tmp_path: Path) -> None:
    server = LocalPrefectServer(tmp_path / "home")
    server.start()
    assert server.process is not None
    pid = server.process.pid
    with pytest.raises(PrefectServerStartupError, match=r"not healthy after 0 s") as raised:
        server.wait_until_healthy(timeout=0.3)
    assert "prefect server start" in str(raised.value)  # the log's first line, the command
    assert str(server.log_file) in str(raised.value)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


# --------------------------------------------------------------------------------------------
# prefect_api() with Prefect's local default, in a clean subprocess
# --------------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[1])
    from commands.prefect_runtime import prefect_api

    calls = []
    with prefect_api(meanwhile=lambda: calls.append("prefect" in sys.modules)) as api:
        from prefect import flow, get_run_logger, task

        @task
        async def double(i: int) -> int:
            await asyncio.sleep(0.01)
            return 2 * i

        @flow(name="prefect-runtime-trivial")
        async def trivial(n: int) -> int:
            get_run_logger().info("trivial flow body ran")
            return sum(await asyncio.gather(*[double(i) for i in range(n)]))

        state = asyncio.run(trivial(int(sys.argv[2]), return_state=True))
        run_id = state.state_details.flow_run_id
        print(json.dumps({
            "source": api.source,
            "api_url": api.api_url,
            "home": str(api.home),
            "server_log": str(api.server_log),
            "flow_run_id": str(run_id),
            "result": state.result(),
            "live_url": api.ui_url_for_flow_run(run_id),
            "hint": api.view_hint(run_id),
            "meanwhile": calls,
        }))
    """
)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _run_child(tmp_path: Path, home: Path, port: int) -> dict[str, Any]:
    """Run CHILD with Prefect's local default (no PREFECT_API_URL in the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {"PREFECT_HOME": str(home), "PREFECT_SERVER_API_PORT": str(port), "HOME": str(tmp_path)}
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo), str(N_TASKS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    for word in FORBIDDEN:
        assert word not in output, f"{word!r} in output:\n{output}"
    assert proc.stderr == "", proc.stderr  # INFO logs went to the API, not the console
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["result"] == sum(2 * i for i in range(N_TASKS))
    assert report["meanwhile"] == [True]  # called once, with Prefect imported
    return report


def test_prefect_api_local_default_is_clean_and_persists_the_run(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    port = find_free_port()  # not 4200: never touch a developer's own server
    report = _run_child(tmp_path, home, port)

    assert report["source"] == "local-started"
    assert report["api_url"] == f"http://127.0.0.1:{port}/api"
    assert Path(report["home"]) == home
    assert Path(report["server_log"]).is_relative_to(home)
    run_id = report["flow_run_id"]
    assert report["live_url"] == f"http://127.0.0.1:{port}/runs/flow-run/{run_id}"
    assert (
        f"prefect server start`, then open http://127.0.0.1:{port}/runs/flow-run/{run_id}"
        in (report["hint"])
    )
    assert not _listening(port), "the server started by prefect_api() is still running"

    # The run, its task runs and its logs are in the local database that a later
    # `prefect server start` (same PREFECT_HOME) serves.
    with sqlite3.connect(home / "prefect.db") as db:
        (state,) = db.execute("SELECT state_type FROM flow_run WHERE id = ?", (run_id,)).fetchone()
        (n_tasks,) = db.execute(
            "SELECT count(*) FROM task_run WHERE flow_run_id = ?", (run_id,)
        ).fetchone()
        logs = [
            m for (m,) in db.execute("SELECT message FROM log WHERE flow_run_id = ?", (run_id,))
        ]
    assert state == "COMPLETED"
    assert n_tasks == N_TASKS
    assert "trivial flow body ran" in logs


def test_prefect_api_reuses_a_server_on_the_local_default_address(
    tmp_path: Path, prefect_server: PrefectTestServer
) -> None:
    port = int(prefect_server.url.rsplit(":", 1)[1])
    report = _run_child(tmp_path, prefect_server.home, port)
    assert report["source"] == "local-running"
    assert report["api_url"] == prefect_server.api_url
    assert report["hint"].endswith(f"{prefect_server.url}/runs/flow-run/{report['flow_run_id']}")
    assert not (prefect_server.home / "logs" / "local-server.log").exists()  # none started


def test_prefect_api_uses_an_api_configured_in_prefect_toml(
    tmp_path: Path, prefect_server: PrefectTestServer
) -> None:
    (tmp_path / "prefect.toml").write_text(f'[api]\nurl = "{prefect_server.api_url}"\n')
    home = tmp_path / "prefect-home"
    port = find_free_port()
    report = _run_child(tmp_path, home, port)
    assert report["source"] == "configured"
    assert report["api_url"] == prefect_server.api_url
    # The server started early, before the settings were read, was stopped.
    assert not _listening(port)


def test_quiet_prefect_console_sets_and_restores_prefects_console_handler() -> None:
    import prefect.main  # noqa: F401  (sets Prefect's logging up, as flows do)
    from prefect.logging.handlers import PrefectConsoleHandler

    (console,) = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    before, client_level = console.level, logging.getLogger("prefect.client").level
    with quiet_prefect_console("error"):
        assert console.level == logging.ERROR
        assert os.environ[CONSOLE_LEVEL_ENV] == "ERROR"  # for subprocesses
        assert logging.getLogger("prefect.client").level == client_level  # loggers untouched
    assert console.level == before


def test_view_hint_without_ui() -> None:
    api = PrefectAPI(api_url="http://h:1/api", ui_url=None, source="configured", home=Path("/x"))
    assert api.ui_url_for_flow_run("abc") is None
    assert "http://h:1/api" in api.view_hint("abc")


async def test_a_servers_concurrency_leases_outlive_its_restart(tmp_path: Path) -> None:
    """A slot of the team's limit held when a server started here stops is still a lease after
    it starts again: it is renewed, released, and the limit is free. (Prefect's default keeps
    leases in memory: after a restart the slot could be neither renewed nor given back, and the
    limit stayed full for every later run.)"""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = LocalPrefectServer(tmp_path / "home")

    async def on_server(call: Any) -> Any:
        server.start()
        try:
            await asyncio.to_thread(server.wait_until_healthy, 120)
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                async with get_client() as client:
                    return await call(client)
        finally:
            server.stop()

    async def take(client: Any) -> UUID:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name="team", limit=1)
        )
        granted = await client.increment_concurrency_slots_with_lease(
            names=["team"], slots=1, mode="concurrency", lease_duration=60
        )
        return UUID(granted.json()["lease_id"])

    lease = await on_server(take)

    async def give_back(client: Any) -> int:
        await client.renew_concurrency_lease(lease_id=lease, lease_duration=60)
        await client.release_concurrency_slots_with_lease(lease_id=lease)
        return int((await client.read_global_concurrency_limit_by_name("team")).active_slots)

    assert await on_server(give_back) == 0
