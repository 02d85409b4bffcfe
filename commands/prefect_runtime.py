"""The Prefect API a command talks to: the configured one, else a local server, quietly.

Prefect decides everything it can: its settings (environment, profile, ``.env``,
``prefect.toml``, ``pyproject.toml``) name the API, home and address; ``prefect server start``
runs the server; ``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL`` sets the console level (INFO flow
and task logs still go to the API). What is written here, and why:

- ``LocalPrefectServer`` runs ``prefect server start`` in the foreground itself: with
  ``--background`` the server writes to pipes nobody reads once the CLI exits (no log when it
  fails), the CLI returns before the server is healthy, and ``prefect server stop`` signals it
  without waiting for the exit. ``SubprocessASGIServer`` (ephemeral mode, ``prefect.testing``)
  serves no UI, prints to the terminal and takes a random port in 8000-8999.
- The early start: ``import prefect.settings`` imports the whole ``prefect`` package (the same
  1,082 modules as ``import prefect``), so ``prefect_api`` entered before Prefect is imported
  starts the server first, unless ``PREFECT_API_URL`` is in the environment or a server answers
  on the environment's (or Prefect's default) address. That process resolves its home and
  address with Prefect's settings, as this one does meanwhile; it is stopped if the settings
  name an API. It keeps the start-up as fast as before (``bench/prefect_startup.py``).
- ``drain_prefect_workers``: Prefect has no public flush for its event worker (the log handler's
  ``flush`` drains logs only). ``drain_all``, a public classmethod of both workers' private base
  ``QueueService``, sends what is queued before the server stops, else Prefect retries at exit
  and prints connection errors.
- ``quiet_prefect_console``: Prefect reads that variable when it sets its logging up, at import;
  if that happened already, the level is applied to Prefect's "console" handler by name.
- ``wait_until_recorded``: the server writes task runs from events in batches after the client
  sent them; a server stopped at once loses the last ones.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import logging.config
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, STDOUT, Popen
from typing import IO, Literal
from uuid import UUID

CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
Source = Literal["configured", "local-running", "local-started"]
# Local servers only: a proxy from the environment must not see these requests.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_CLIENT_ONLY = ("PREFECT_API_URL", "PREFECT_UI_URL")  # a server started here serves itself
LEASES_ON_DISK = {
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": (
        "prefect.server.concurrency.lease_storage.filesystem"
    )
}
"""A server started here keeps its concurrency leases in its home (unless the environment says
otherwise). Prefect's default keeps them in memory: the team's slots held by a run when that
server stopped were then taken for good (nothing left to expire), and every later run waited
on a full limit. On disk, they expire on the next start like any killed run's."""


class PrefectServerStartupError(RuntimeError):
    """The Prefect server exited or was not healthy in time; the message has its log's tail."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _answers(api_url: str, timeout: float = 1.0) -> bool:
    try:
        with _LOCAL.open(f"{api_url}/health", timeout=timeout) as response:
            return bool(response.read().strip() == b"true")
    except OSError:
        return False


def server_log(home: Path) -> Path:
    return Path(home) / "logs" / "local-server.log"


def _server_args(ui: bool, log_level: str) -> list[str]:
    return ["--ui" if ui else "--no-ui", "--analytics-off", "--log-level", log_level]


class LocalPrefectServer:
    """``prefect server start`` in its own process group, its output in ``log_file``.

    ``process`` adopts a server that :func:`prefect_api` started early instead of starting one.
    """

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        ui: bool = False,
        log_file: Path | None = None,
        log_level: str = "WARNING",
        extra_env: dict[str, str] | None = None,
        process: Popen[bytes] | None = None,
    ) -> None:
        self.home, self.host, self.ui = Path(home), host, ui
        self.port = port if port is not None else find_free_port(host)
        self.log_file = log_file or server_log(self.home)
        self.log_level, self.extra_env, self.process = log_level, extra_env or {}, process

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def start(self) -> None:
        address = ["--host", self.host, "--port", str(self.port)]
        command = [sys.executable, "-u", "-m", "prefect", "server", "start", *address]
        command += _server_args(self.ui, self.log_level)
        env = LEASES_ON_DISK | {k: v for k, v in os.environ.items() if k not in _CLIENT_ONLY}
        env.update(PREFECT_HOME=str(self.home), **self.extra_env)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as log:
            log.write(f"$ {shlex.join(command)}\n".encode())
            log.flush()
            self.process = _spawn(command, env, log)

    def wait_until_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not _answers(self.api_url):
            assert self.process is not None, "server not started"
            if (code := self.process.poll()) is not None:
                self.process = None
                raise self._error(f"exited with code {code} before becoming healthy")
            if time.monotonic() > deadline:
                self.stop()
                raise self._error(f"was not healthy after {timeout:.0f} s")
            time.sleep(0.1)

    def _error(self, what: str) -> PrefectServerStartupError:
        try:
            tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            tail = "<no log>"
        return PrefectServerStartupError(
            f"Prefect server at {self.api_url} {what}. Last lines of {self.log_file}:\n{tail}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout`` s; idempotent."""
        process, self.process = self.process, None
        if process is not None:
            stop_process_group(process, timeout)


def stop_process_group(process: Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a process started in a session of its own, SIGKILL its group after ``timeout`` s."""
    if process.returncode is not None:
        return  # reaped already: its process group id may belong to someone else by now
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # a stuck leader, or what it left behind
    process.wait()


def _spawn(command: list[str], env: dict[str, str] | None, out: IO[bytes] | int) -> Popen[bytes]:
    # A session of its own: Ctrl-C in the terminal does not reach it, stop() ends the group.
    return subprocess.Popen(
        command, env=env, stdin=DEVNULL, stdout=out, stderr=STDOUT, start_new_session=True
    )


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@contextlib.contextmanager
def quiet_prefect_console(level: str) -> Iterator[None]:
    """Prefect's console shows ``level`` and above; flow and task logs still reach the API."""
    try:
        with _environ(CONSOLE_LEVEL_ENV, level.upper()):  # read when Prefect sets logging up
            _apply_console_level()
            yield
    finally:
        _apply_console_level()


def _apply_console_level() -> None:
    """If Prefect's logging is set up already, give its "console" handler the variable's level.

    By name, as Prefect's ``logging.yml`` declares it; an incremental ``dictConfig`` changes
    only that handler's level (re-running Prefect's ``setup_logging`` would also reset loggers).
    """
    configuration = sys.modules.get("prefect.logging.configuration")
    if configuration is not None and configuration.PROCESS_LOGGING_CONFIG:
        level = os.environ.get(CONSOLE_LEVEL_ENV, "NOTSET")  # logging.yml's default: 0
        handlers = {"console": {"level": level}}
        logging.config.dictConfig({"version": 1, "incremental": True, "handlers": handlers})


def drain_prefect_workers(timeout: float = 10.0) -> None:
    """Send this process's queued logs and events to the API; call with no event loop running."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    # A worker draining a queue warns "Still processing items": progress, not a problem.
    loggers = [logging.getLogger(name) for name in ("APILogWorker", "EventsWorker")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        APILogWorker.drain_all(timeout=timeout)
        EventsWorker.drain_all(timeout=timeout)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def wait_until_recorded(api_url: str, timeout: float = 10.0) -> None:
    """Return once the server's task run count stops changing (or after ``timeout`` s)."""
    deadline, previous = time.monotonic() + timeout, -1
    request = urllib.request.Request(
        f"{api_url}/task_runs/count", data=b"{}", headers={"Content-Type": "application/json"}
    )
    while time.monotonic() < deadline:
        try:
            with _LOCAL.open(request, timeout=2) as response:
                count = int(json.load(response))
        except (OSError, ValueError):
            return
        if count == previous:
            return
        previous = count
        time.sleep(0.5)


@dataclass(frozen=True)
class PrefectAPI:
    """The API in use: ``source`` says where it came from; ``ui_url`` is a UI reachable now.

    ``later_ui_url`` and ``later_command`` say where to see the runs after the command ended
    (a local server this process started is gone by then).
    """

    api_url: str
    ui_url: str | None
    source: Source
    home: Path
    server_log: Path | None = None
    later_ui_url: str | None = None
    later_command: str | None = None

    def ui_url_for_flow_run(self, flow_run_id: UUID | str) -> str | None:
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}" if self.ui_url else None

    def view_hint(self, flow_run_id: UUID | str) -> str:
        """One line telling a person where to see the flow run after the command."""
        base = self.later_ui_url or self.ui_url
        if base is None:
            return f"Flow run {flow_run_id} is recorded at {self.api_url}."
        url = f"{base}/runs/flow-run/{flow_run_id}"
        if self.later_command:
            return f"To see this run in the Prefect UI: run `{self.later_command}`, then open {url}"
        return f"See this run in the Prefect UI: {url}"


def _start_early(ui: bool) -> Popen[bytes] | None:
    """Start a local server now if Prefect is not imported yet and may well want one."""
    if "prefect" in sys.modules or "PREFECT_API_URL" in os.environ:
        return None
    host = os.environ.get("PREFECT_SERVER_API_HOST", "127.0.0.1")
    if _answers(f"http://{host}:{os.environ.get('PREFECT_SERVER_API_PORT', '4200')}/api", 0.5):
        return None  # the usual case of a running server: nothing to start
    command = [sys.executable, "-u", "-m", __name__, *_server_args(ui, "WARNING")]
    return _spawn(command, LEASES_ON_DISK | dict(os.environ), DEVNULL)


def _nothing() -> None:
    return None


@contextlib.contextmanager
def prefect_api(
    *, ui: bool = True, startup_timeout: float = 120.0, meanwhile: Callable[[], object] = _nothing
) -> Iterator[PrefectAPI]:
    """The configured API, else a local server's (reused or started); a quiet console.

    Enter it before importing Prefect for the early start. Prefect's console level is
    ``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL`` if set, else WARNING. ``meanwhile`` is called
    once, with Prefect imported, before waiting for a server that is starting: a command's own
    start-up done there costs nothing while the server boots (several seconds).
    """
    with contextlib.ExitStack() as stack:
        early = _start_early(ui)
        if early is not None:
            stack.callback(stop_process_group, early)
        stack.enter_context(quiet_prefect_console(os.environ.get(CONSOLE_LEVEL_ENV, "WARNING")))
        from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

        settings = get_current_settings()
        home, host, port = Path(settings.home), settings.server.api.host, settings.server.api.port
        server = LocalPrefectServer(home, host=host, port=port, ui=ui, process=early)
        stack.callback(server.stop)
        if settings.api.url:
            server.stop()
            meanwhile()
            api = PrefectAPI(settings.api.url, settings.ui_url, "configured", home)
        else:
            api = _local(server, startup_timeout, meanwhile)
        if api.source == "local-started":
            stack.callback(wait_until_recorded, api.api_url)
        stack.callback(drain_prefect_workers)  # before the server stops (LIFO)
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api.api_url}))
        stack.enter_context(_environ("PREFECT_API_URL", api.api_url))  # for subprocesses
        yield api


def _local(
    server: LocalPrefectServer, timeout: float, meanwhile: Callable[[], object]
) -> PrefectAPI:
    """Use the server on the local default address, or start one (on a free port if taken)."""
    default = server.url
    later = "prefect server start"
    if server.home != Path("~/.prefect").expanduser():
        later = f"PREFECT_HOME={shlex.quote(str(server.home))} {later}"
    importlib.import_module("prefect.flow_engine")  # while the server starts
    meanwhile()
    if server.process is not None:
        try:
            server.wait_until_healthy(timeout)
        except PrefectServerStartupError as error:
            if "already in use" not in str(error):  # the early start only probed the env's port
                raise
    if server.process is None:
        if _answers(server.api_url):
            return PrefectAPI(server.api_url, default, "local-running", server.home)
        with socket.socket() as sock:
            if sock.connect_ex((server.host, server.port)) == 0:
                server.port = find_free_port(server.host)
        server.start()
        server.wait_until_healthy(timeout)
    ui_url = server.url if server.ui else None
    return PrefectAPI(
        server.api_url, ui_url, "local-started", server.home, server.log_file, default, later
    )


if __name__ == "__main__":
    # The early-started server: Prefect's settings give its home (hence its log), as in the
    # process that started it; `prefect server start` takes its address from them too.
    from prefect.cli import app
    from prefect.settings import get_current_settings

    log = server_log(get_current_settings().home)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    sys.argv = ["prefect", "server", "start", *sys.argv[1:]]
    app()
