"""A local scale-out stack: PostgreSQL, a Prefect server on it, a process work pool, N workers.

Prefect's own distributed set-up on one machine, as it runs across many: the server keeps its
state in PostgreSQL (``initdb``/``pg_ctl`` into a folder of the stack's), the deployments of
``upscale-sharded`` and ``upscale-batch`` are applied onto a process work pool, and each worker
is a ``prefect worker start`` process of its own that runs the flow runs it takes as
subprocesses. ``scenario-upscale stack`` runs it in the foreground; the tests and the benchmark
use ``LocalStack``.

PostgreSQL refuses to run as root: as root, ``initdb`` and ``pg_ctl`` run as the ``postgres``
user (``runuser``), which owns the data folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from subprocess import Popen
from types import TracebackType
from typing import Self

from commands.prefect_runtime import LocalPrefectServer, find_free_port, stop_process_group
from deployments.generate import PROJECT, WORK_POOL

STACK_DEPLOYMENTS = ("upscale-sharded/upscale-across-workers", "upscale-batch/upscale-folder")
"""What the stack applies onto its pool: a sharded batch and the deployment of its shards."""

SERVER_SETTINGS = {
    # A killed run's leases (the team's slots) are swept every 15 s by default.
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
    # A pool of process workers on one database: more than the default 5 connections.
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "20",
}
WORKER_SETTINGS = {
    # Take new runs within a second (default 10 s) and tell the server it lives every 5 s
    # (default 30 s): the parent of a sharded batch reruns a dead worker's shard after three
    # silent intervals.
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
    # The shards' BatchReports, for the parent (run_deployment(...).state.aresult()).
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed, or its server did not start."""


def postgres_bin(debian: Path = Path("/usr/lib/postgresql")) -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: on the PATH, else Debian's own folder."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(debian.glob("*/bin"), reverse=True):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresUnavailable(
        "PostgreSQL's initdb and pg_ctl were not found (on the PATH or in "
        "/usr/lib/postgresql/*/bin): install them, e.g. `apt-get install postgresql` on Debian"
    )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, theirs, ...), read from ``/proc`` (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (command) state ppid ...": the command may hold spaces and parentheses.
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class LocalPostgres:
    """A PostgreSQL server of its own in ``folder``, on 127.0.0.1 and a free port; trusted
    local connections as the ``prefect`` user.

    As root, the server runs as the ``postgres`` user, which cannot reach a folder inside
    another user's private one (pytest's, ``mktemp``'s): it then lives in a temporary folder
    of its own instead, owned by ``postgres`` and removed when it stops.
    """

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.as_postgres = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="postgres-")) if self.as_postgres else folder
        self.port = port or find_free_port()
        self.bin = postgres_bin()
        self.data = self.folder / "data"
        self.log_file = self.folder / "postgres.log"
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://prefect@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:  # PostgreSQL will not run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"`{args[0]}` failed with code {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "prefect", "--auth=trust", "-E",
                      "UTF8", "--no-sync")  # fmt: skip
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log_file),
                  "-w", "-t", "60", "start")  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop the server; idempotent. As root, its folder goes too."""
        if self.running:
            self.running = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        if self.as_postgres:
            shutil.rmtree(self.folder, ignore_errors=True)


_PREPARE_POOL = """
import asyncio, sys, time, urllib.request
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.settings import PREFECT_API_URL
from deployments.definitions import build_deployments

deadline = time.monotonic() + 300
while True:
    try:
        local = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        local.open(PREFECT_API_URL.value() + "/health", timeout=2).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)

async def prepare(pool, names, project):
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"), overwrite=True)
    for deployment in build_deployments():
        if f"{deployment.flow_name}/{deployment.name}" in names:
            # Flow runs start in the project folder, as prefect.yaml's pull step makes them.
            deployment.job_variables = {**deployment.job_variables, "working_dir": project}
            await deployment.aapply(work_pool_name=pool)

asyncio.run(prepare(sys.argv[1], sys.argv[3:], sys.argv[2]))
"""


class LocalStack:
    """PostgreSQL, a Prefect server on it, the work pool ``pool`` and ``workers`` workers.

    Args:
        folder: Where everything lives (database, Prefect home, logs, results).
        workers: How many workers to start.
        runs_per_worker: Flow runs one worker runs at once (``prefect worker start --limit``),
            so the shards of a batch spread over the workers.
        pool: The process work pool.
        server_settings: More variables for the server.

    Example:
        >>> with LocalStack(Path("/tmp/stack"), workers=2) as stack:
        ...     subprocess.run(["prefect", "deployment", "ls"], env=stack.env)
    """

    def __init__(
        self,
        folder: Path,
        workers: int = 2,
        *,
        runs_per_worker: int = 2,
        pool: str = WORK_POOL,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder.resolve()
        self.pool = pool
        self.runs_per_worker = runs_per_worker
        self.postgres = LocalPostgres(self.folder / "postgres")
        self.home = self.folder / "prefect-home"
        database = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": self.postgres.url}
        self.server = LocalPrefectServer(
            self.home,
            log_file=self.folder / "logs" / "server.log",
            log_level="INFO",
            extra_env=SERVER_SETTINGS | database | (server_settings or {}),
        )
        self.worker_count = workers
        self.workers: dict[str, Popen[bytes]] = {}

    @property
    def env(self) -> dict[str, str]:
        """The environment of a client of this stack (a flow run, ``prefect`` commands)."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
            "PREFECT_API_URL": self.server.api_url,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOCAL_STORAGE_PATH": str(self.folder / "results"),
        }

    def start(self) -> None:
        """Start everything, or stop what started and raise."""
        pool: Popen[str] | None = None
        try:
            self.postgres.start()
            self.server.start()
            # Importing Prefect and the flows takes as long as the server's start: overlap them.
            pool = self._prepare_pool()
            self.server.wait_until_healthy()
            _, errors = pool.communicate()
            if pool.returncode != 0:
                raise RuntimeError(f"preparing the work pool failed: {errors[-3000:]}")
            for n in range(1, self.worker_count + 1):
                self.start_worker(f"worker-{n}")
        except BaseException:
            if pool is not None and pool.poll() is None:
                pool.kill()
                pool.wait()
            self.stop()
            raise

    def _prepare_pool(self) -> Popen[str]:
        """Create the pool and apply the deployments onto it, once the server answers.

        In a process of its own: this one may have imported Prefect against another API.
        """
        command = [sys.executable, "-c", _PREPARE_POOL, self.pool, str(PROJECT), *STACK_DEPLOYMENTS]
        return subprocess.Popen(
            command, env=self.env, cwd=PROJECT, stderr=subprocess.PIPE, text=True
        )

    def start_worker(self, name: str) -> Popen[bytes]:
        """Start one more worker of the pool, named ``name`` (its log: ``logs/<name>.log``)."""
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", self.pool,
                   "--type", "process", "--name", name,
                   "--limit", str(self.runs_per_worker)]  # fmt: skip
        log_file = self.folder / "logs" / f"{name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            # A session of its own: stopping it (or killing it) reaches its flow runs too.
            self.workers[name] = subprocess.Popen(
                command,
                env=self.env | WORKER_SETTINGS,
                cwd=PROJECT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.workers[name]

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker and every process under it, as a machine that dies.

        Its flow runs included: Prefect starts each in a session of its own, out of reach of a
        signal to the worker's process group.
        """
        process = self.workers.pop(name)
        below = descendants(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """Stop the workers, the server, then PostgreSQL; idempotent."""
        while self.workers:
            _, process = self.workers.popitem()
            stop_process_group(process)
        self.server.stop()
        self.postgres.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
