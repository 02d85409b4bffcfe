"""How this project's commands run Prefect: quickly, quietly, and visibly in the UI afterwards.

Prefect's "local default" (no ``PREFECT_API_URL``) is *ephemeral mode*: every process that runs
a flow imports the whole server stack, starts a temporary server subprocess that writes to the
terminal, and stops it at exit. Measured on a 2-core machine (``bench/prefect_startup.py``):
~8 s before the flow body starts (~12 s on a fresh ``PREFECT_HOME``), a telemetry ERROR line,
INFO lines per task, an ``EventsWorker - Still processing items`` WARNING at exit, and, when the
server is stopped while it persists events, ``Error flushing events`` / ``CancelledError``
tracebacks from the server (its output is the terminal's).

:func:`prefect_api` keeps the local default's *data* (the SQLite database in ``PREFECT_HOME``,
``~/.prefect`` unless set, so ``prefect server start`` shows the runs later) but runs the server
itself:

1. If an API is configured (``PREFECT_API_URL`` from the environment, a profile, ``.env`` or
   ``prefect.toml``: a running server or Prefect Cloud), it is used as is.
2. Else, if a Prefect server already answers on the local default address
   (``PREFECT_SERVER_API_HOST``:``PREFECT_SERVER_API_PORT``, ``127.0.0.1:4200``), it is used;
   a second server on the same SQLite file would fight over it ("database is locked").
3. Else a ``prefect server start`` subprocess is started on that address (or a free port if it
   is taken) with the UI on, its output going to ``$PREFECT_HOME/logs/local-server.log``. The
   server stack is never imported into this process; when no configuration source can name an
   API (checked by reading the files, without importing Prefect) the server is started before
   Prefect is imported, so the two overlap. Prefect's log/event workers are drained before the
   server is stopped with SIGTERM, so nothing is lost and nothing is printed.

   Same machine: 5.5 s to the flow body (0.69x ephemeral), 10.5 s on a fresh home.

In all cases Prefect's console handler is raised to ``WARNING`` (flow and task logs still go to
the API, so the UI shows them), and ``PREFECT_API_URL`` is set both in Prefect's settings context
and in ``os.environ`` for subprocesses. For the early start to help, enter :func:`prefect_api`
before importing Prefect (import the flows inside the block); otherwise it starts the server
after Prefect's settings are read (6.9 s).

Usage::

    from commands.prefect_runtime import prefect_api

    with prefect_api() as api:
        state = asyncio.run(demo_flow(return_state=True))  # or any flow call
        print(api.view_hint(state.state_details.flow_run_id))

:class:`LocalPrefectServer` is the subprocess wrapper used here and by the test suite's
``prefect_server`` fixture.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import importlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from uuid import UUID

import httpx

__all__ = [
    "DEFAULT_CONSOLE_LEVEL",
    "LocalPrefectServer",
    "PrefectAPI",
    "PrefectServerStartupError",
    "aprefect_api",
    "drain_prefect_workers",
    "find_free_port",
    "prefect_api",
    "quiet_prefect_console",
]

#: Level of Prefect's console handler inside :func:`prefect_api`: INFO records (flow/task
#: progress, "Beginning flow run", "Finished in state Completed()") go to the API only.
DEFAULT_CONSOLE_LEVEL = "WARNING"

#: Environment variable read by Prefect's ``logging.yml`` loader
#: (``PREFECT_LOGGING_[PATH]_[TO]_[KEY]``) for ``handlers.console.level``.
_CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"

Source = Literal["configured", "local-running", "local-started"]


class PrefectServerStartupError(RuntimeError):
    """The Prefect server subprocess exited or did not become healthy in time."""


# --------------------------------------------------------------------------------------------
# Local server subprocess
# --------------------------------------------------------------------------------------------


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like uvicorn: a port whose last connections linger in TIME_WAIT is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _is_healthy(api_url: str, timeout: float = 1.0) -> bool:
    try:
        response = httpx.get(f"{api_url}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text.strip() == "true"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:])


class LocalPrefectServer:
    """A ``prefect server start`` subprocess on SQLite, its output in a log file.

    The process runs in its own session (Ctrl-C in the terminal does not reach it; the owner
    stops it) and :meth:`stop` signals the whole process group, SIGTERM then SIGKILL, so no
    process is left behind. An ``atexit`` hook stops it if the owner forgets to.

    Args:
        home: ``PREFECT_HOME`` of the server (database ``home/prefect.db`` unless ``database_url``
            or the environment say otherwise).
        host: Interface to listen on.
        port: Port to listen on; a free one if ``None``. If the port turns out to be taken, a
            free one is tried instead (up to 3 attempts).
        ui: Serve the UI (``--ui``) or not (``--no-ui``).
        log_file: Where the server's stdout/stderr go; ``home/logs/local-server.log`` if
            ``None``. Truncated on start.
        database_url: ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` to force, e.g. a temporary
            SQLite file; inherited from the environment / Prefect default if ``None``.
        extra_env: More environment variables for the server (``PREFECT_SERVER_SERVICES_*``...).
        log_level: ``PREFECT_SERVER_LOGGING_LEVEL`` of the server.
    """

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        ui: bool = False,
        log_file: Path | None = None,
        database_url: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        log_level: str = "WARNING",
    ) -> None:
        self.home = Path(home)
        self.host = host
        self.port = port if port is not None else find_free_port(host)
        self.ui = ui
        self.log_file = (
            log_file if log_file is not None else self.home / "logs" / "local-server.log"
        )
        self.database_url = database_url
        self.extra_env = dict(extra_env or {})
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, also the UI's when ``ui`` is on: ``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://HOST:PORT/api``: the value for ``PREFECT_API_URL``."""
        return f"{self.url}/api"

    @property
    def client_env(self) -> dict[str, str]:
        """Variables a client subprocess (``prefect deploy``, ``serve``, a flow) needs."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_HOME": str(self.home)}

    def server_env(self) -> dict[str, str]:
        """The full environment the server process is started with."""
        env = {
            k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL")
        }
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_SERVER_API_HOST": self.host,
                "PREFECT_SERVER_API_PORT": str(self.port),
                # No network on many machines: telemetry would only log errors.
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_LOGGING_LEVEL": self.log_level,
                "PREFECT_SERVER_UI_ENABLED": "true" if self.ui else "false",
                # The UI must talk to this server even if a profile names another API.
                "PREFECT_SERVER_UI_API_URL": self.api_url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.database_url is not None:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        """``python -m prefect server start ...`` with this interpreter (no PATH lookup)."""
        return [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ui" if self.ui else "--no-ui",
            "--analytics-off",
        ]

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the process and return at once (see :meth:`wait_until_healthy`)."""
        if self.process is not None:
            raise RuntimeError("server already started")
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as log:
            log.write(f"$ {shlex.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                env=self.server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.home,
            )
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def wait_until_healthy(self, timeout: float = 90.0) -> None:
        """Block until ``GET /api/health`` answers ``true``.

        Raises:
            PrefectServerStartupError: the process exited or ``timeout`` passed; the message
                holds the tail of the server log.
        """
        deadline = time.monotonic() + timeout
        retries_left = 3
        while True:
            process = self.process
            if process is None:
                raise RuntimeError("server not started")
            code = process.poll()
            if code is not None:
                log = _tail(self.log_file)
                if retries_left and "already in use" in log:
                    # Someone took the port between choosing it and binding it.
                    retries_left -= 1
                    self.process = None
                    self.port = find_free_port(self.host)
                    self.start()
                    continue
                self.process = None
                raise PrefectServerStartupError(
                    f"Prefect server exited with code {code} before becoming healthy at "
                    f"{self.api_url}. Last lines of {self.log_file}:\n{log}"
                )
            if _is_healthy(self.api_url):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise PrefectServerStartupError(
                    f"Prefect server at {self.api_url} was not healthy after {timeout:.0f} s. "
                    f"Last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # The leader is gone; take down anything it left in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> LocalPrefectServer:
        self.start()
        try:
            self.wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Console logging
# --------------------------------------------------------------------------------------------


def _console_handlers() -> list[logging.Handler]:
    """Prefect console handlers attached to any logger (none before Prefect set up logging)."""
    if "prefect.logging.handlers" not in sys.modules:
        return []
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    return [h for lg in loggers for h in lg.handlers if isinstance(h, PrefectConsoleHandler)]


@contextlib.contextmanager
def quiet_prefect_console(level: str | int = DEFAULT_CONSOLE_LEVEL) -> Iterator[None]:
    """Show only records at ``level`` or above on Prefect's console handler, then restore.

    Only the *console handler* is raised: logger levels are untouched, so INFO flow and task
    run logs still reach the API handler (and the UI). Works whether Prefect's logging is
    already set up (handlers are adjusted) or not yet (``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL``
    is read by ``setup_logging`` and inherited by subprocesses).
    """
    name = logging.getLevelName(level) if isinstance(level, int) else level.upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        raise ValueError(f"unknown logging level {level!r}")
    previous_env = os.environ.get(_CONSOLE_LEVEL_ENV)
    os.environ[_CONSOLE_LEVEL_ENV] = name
    previous_levels = [(h, h.level) for h in _console_handlers()]
    for handler, _ in previous_levels:
        handler.setLevel(numeric)
    try:
        yield
    finally:
        for handler, old in previous_levels:
            handler.setLevel(old)
        if previous_env is None:
            os.environ.pop(_CONSOLE_LEVEL_ENV, None)
        else:
            os.environ[_CONSOLE_LEVEL_ENV] = previous_env


def wait_until_recorded(api_url: str, timeout: float = 10.0, interval: float = 0.5) -> None:
    """Wait until a server has stored the task runs reported to it, before it is stopped.

    Task runs reach the database through events that the server's recorder writes in batches,
    after the client has sent them: stopping the server at once loses the last ones (seen here:
    8 of 12 task runs recorded). The count stops changing once the backlog is written.
    """
    deadline = time.monotonic() + timeout
    previous = -1
    while time.monotonic() < deadline:
        try:
            response = httpx.post(f"{api_url}/task_runs/count", json={}, timeout=interval * 4)
            count = int(response.json())
        except (httpx.HTTPError, ValueError):
            return
        if count == previous:
            return
        previous = count
        time.sleep(interval)


def drain_prefect_workers(timeout: float = 10.0) -> None:
    """Send this process's pending flow/task logs and events to the API, then stop the workers.

    Call it before the API goes away; otherwise Prefect tries at interpreter exit and prints
    connection errors. Blocking; from async code use ``await asyncio.to_thread(...)``.
    """
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop()
        # drain_all() would return a coroutine here; do the blocking version in a thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(drain_prefect_workers, timeout).result()
        return
    # A stopped worker with items left warns "Still processing items: N items remaining..."
    # (logger named after its class, propagating to the console): progress, not a problem.
    progress_loggers = [logging.getLogger(name) for name in ("APILogWorker", "EventsWorker")]
    previous = [lg.level for lg in progress_loggers]
    for lg in progress_loggers:
        lg.setLevel(logging.ERROR)
    try:
        if "prefect.logging.handlers" in sys.modules:
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=timeout)
        if "prefect.events.worker" in sys.modules:
            from prefect.events.worker import EventsWorker

            EventsWorker.drain_all(timeout=timeout)
    finally:
        for lg, level in zip(progress_loggers, previous, strict=True):
            lg.setLevel(level)


# --------------------------------------------------------------------------------------------
# prefect_api()
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefectAPI:
    """The Prefect API a command talks to inside :func:`prefect_api`.

    Attributes:
        api_url: ``PREFECT_API_URL`` in effect.
        ui_url: Base URL of a UI reachable *now*, or ``None``.
        source: ``"configured"`` (``PREFECT_API_URL`` was set: a server or Prefect Cloud),
            ``"local-running"`` (a server already listened on the local default address) or
            ``"local-started"`` (this process started one; it stops at the end of the block).
        home: ``PREFECT_HOME``: the local database lives there unless configured otherwise.
        server_log: Log file of the server this process started, else ``None``.
        later_ui_url: Base UI URL after the command ended: for ``"local-started"`` the one
            ``prefect server start`` serves (same database), else ``ui_url``.
        later_command: What to run first to make ``later_ui_url`` reachable, or ``None``.
    """

    api_url: str
    ui_url: str | None
    source: Source
    home: Path
    server_log: Path | None = None
    later_ui_url: str | None = None
    later_command: str | None = None

    def ui_url_for_flow_run(self, flow_run_id: UUID | str) -> str | None:
        """UI page of a flow run, reachable while the block runs; ``None`` without a UI."""
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}" if self.ui_url else None

    def later_ui_url_for_flow_run(self, flow_run_id: UUID | str) -> str | None:
        """UI page of a flow run after the command ended (see ``later_command``)."""
        return f"{self.later_ui_url}/runs/flow-run/{flow_run_id}" if self.later_ui_url else None

    def view_hint(self, flow_run_id: UUID | str) -> str:
        """One line telling a person how to see the flow run in the UI after the command."""
        url = self.later_ui_url_for_flow_run(flow_run_id)
        if url is None:
            return f"Flow run {flow_run_id} is recorded at {self.api_url}."
        if self.later_command:
            return f"To see this run in the Prefect UI: run `{self.later_command}`, then open {url}"
        return f"See this run in the Prefect UI: {url}"


def _default_home() -> Path:
    return Path("~/.prefect").expanduser()


@dataclass
class _Plan:
    api: PrefectAPI
    server: LocalPrefectServer | None


_ADDRESS_KEYS = frozenset(
    {"PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_API_HOST", "PREFECT_SERVER_API_PORT"}
)


def _only_default_configuration() -> bool:
    """True if no Prefect configuration source can name an API, home or server address.

    Checked without importing Prefect (that takes ~1.5 s, which is what starting the server
    early saves): the environment, the active profile in the profiles file, and the files
    Prefect's settings read from the working directory (``.env``, ``prefect.toml``,
    ``pyproject.toml [tool.prefect]``). Anything unusual answers False: the caller then decides
    with Prefect's own settings, only later.
    """
    if any(k in os.environ for k in ("PREFECT_API_URL", "PREFECT_PROFILE")):
        return False
    cwd = Path.cwd()
    env_file = cwd / ".env"
    if env_file.is_file() and "PREFECT_" in env_file.read_text(errors="replace"):
        return False
    if (cwd / "prefect.toml").exists():
        return False
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file() and "[tool.prefect" in pyproject.read_text(errors="replace"):
        return False
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles_path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml"))
    if profiles_path.exists():
        try:
            profiles = tomllib.loads(profiles_path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return False
        active = str(profiles.get("active", "ephemeral"))
        profile: object = profiles.get("profiles", {}).get(active)
        if profile is None:
            return active == "ephemeral"
        return isinstance(profile, dict) and not (_ADDRESS_KEYS & set(profile))
    return True


def _start_early(*, ui: bool, log_file: Path | None) -> LocalPrefectServer | None:
    """Start the local server before Prefect is imported, if the outcome is certain.

    :func:`_plan` confirms the guess with Prefect's settings and stops the server if it was
    wrong (it cannot be, short of a configuration source :func:`_only_default_configuration`
    does not know about).
    """
    if "prefect.settings" in sys.modules or not _only_default_configuration():
        return None
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    host = os.environ.get("PREFECT_SERVER_API_HOST", "127.0.0.1")
    port = int(os.environ.get("PREFECT_SERVER_API_PORT", "4200"))
    if _is_healthy(f"http://{host}:{port}/api", timeout=0.5):
        return None
    server = LocalPrefectServer(
        home, host=host, port=port if _port_is_free(host, port) else None, ui=ui, log_file=log_file
    )
    server.start()
    return server


def _plan(*, ui: bool, log_file: Path | None, early: LocalPrefectServer | None = None) -> _Plan:
    """Decide which API to use; start (not wait for) a local server if needed."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    home = Path(settings.home).expanduser()
    host, port = settings.server.api.host, settings.server.api.port
    if early is not None and (settings.api.url or (early.home, early.host) != (home, host)):
        early.stop()
        early = None
    if settings.api.url:
        ui_url = settings.ui_url
        return _Plan(PrefectAPI(settings.api.url, ui_url, "configured", home, None, ui_url), None)

    default_url = f"http://{host}:{port}"
    later_command = "prefect server start"
    if home != _default_home():
        later_command = f"PREFECT_HOME={shlex.quote(str(home))} {later_command}"

    if early is None and _is_healthy(f"{default_url}/api", timeout=0.5):
        api = PrefectAPI(
            f"{default_url}/api", default_url, "local-running", home, None, default_url
        )
        return _Plan(api, None)

    server = early or LocalPrefectServer(
        home, host=host, port=port if _port_is_free(host, port) else None, ui=ui, log_file=log_file
    )
    if server.process is None:
        server.start()
    api = PrefectAPI(
        server.api_url,
        server.url if ui else None,
        "local-started",
        home,
        server_log=server.log_file,
        later_ui_url=default_url,
        later_command=later_command,
    )
    return _Plan(api, server)


def _wait(plan: _Plan, timeout: float) -> PrefectAPI:
    if plan.server is None:
        return plan.api
    # The flow machinery's import (~0.3-1 s) overlaps the server's start-up.
    importlib.import_module("prefect.flow_engine")
    plan.server.wait_until_healthy(timeout)
    return PrefectAPI(
        plan.server.api_url,  # the port may have changed on retry
        plan.server.url if plan.server.ui else None,
        plan.api.source,
        plan.api.home,
        plan.api.server_log,
        plan.api.later_ui_url,
        plan.api.later_command,
    )


@contextlib.contextmanager
def _use_api(api: PrefectAPI) -> Iterator[None]:
    """Point Prefect's settings context and ``os.environ`` (for subprocesses) at ``api``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: api.api_url}):
            yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


@contextlib.contextmanager
def prefect_api(
    *,
    ui: bool = True,
    console_level: str | int | None = DEFAULT_CONSOLE_LEVEL,
    startup_timeout: float = 120.0,
    log_file: Path | None = None,
) -> Iterator[PrefectAPI]:
    """Provide a Prefect API for the block: the configured one, or a local server, quietly.

    Args:
        ui: Serve the UI from a server started here (costs nothing measurable at start-up).
        console_level: Minimum level Prefect prints to the console (``None``: leave as is).
        startup_timeout: Seconds to wait for a started server (a fresh database takes ~9 s on
            2 cores, ~4.5 s afterwards).
        log_file: Log of a started server; ``$PREFECT_HOME/logs/local-server.log`` by default.

    Yields:
        The :class:`PrefectAPI` in use. Flows called in the block (also via ``asyncio.run``,
        which copies the context) and subprocesses started in it talk to it.

    Raises:
        PrefectServerStartupError: a local server could not be started (message has its log).
    """
    with contextlib.ExitStack() as stack:
        if console_level is not None:
            stack.enter_context(quiet_prefect_console(console_level))
        early = _start_early(ui=ui, log_file=log_file)
        if early is not None:
            stack.callback(early.stop)
        plan = _plan(ui=ui, log_file=log_file, early=early)
        if plan.server is not None:
            stack.callback(plan.server.stop)
        api = _wait(plan, startup_timeout)
        if early is not None or plan.server is not None:
            stack.callback(wait_until_recorded, api.api_url)
        stack.callback(drain_prefect_workers)  # runs before the server stops (LIFO)
        stack.enter_context(_use_api(api))
        yield api


@contextlib.asynccontextmanager
async def aprefect_api(
    *,
    ui: bool = True,
    console_level: str | int | None = DEFAULT_CONSOLE_LEVEL,
    startup_timeout: float = 120.0,
    log_file: Path | None = None,
) -> AsyncIterator[PrefectAPI]:
    """:func:`prefect_api` for async code: waiting and stopping run in a worker thread."""
    async with contextlib.AsyncExitStack() as stack:
        if console_level is not None:
            stack.enter_context(quiet_prefect_console(console_level))
        early = _start_early(ui=ui, log_file=log_file)
        if early is not None:
            stack.push_async_callback(asyncio.to_thread, early.stop)
        plan = await asyncio.to_thread(_plan, ui=ui, log_file=log_file, early=early)
        if plan.server is not None:
            stack.push_async_callback(asyncio.to_thread, plan.server.stop)
        api = await asyncio.to_thread(_wait, plan, startup_timeout)
        if early is not None or plan.server is not None:
            stack.push_async_callback(asyncio.to_thread, wait_until_recorded, api.api_url)
        stack.push_async_callback(asyncio.to_thread, drain_prefect_workers)
        stack.enter_context(_use_api(api))
        yield api
