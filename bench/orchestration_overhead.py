"""What does Prefect orchestration cost a batch, compared with the same steps in plain asyncio?

One run of this script measures, for a batch of ``--inputs`` small distinct PNGs (48x48, one
model, ``model_upscale-v3`` x2) against the Scenario emulator (jobs take ``--job-duration`` s,
emulator concurrency limit 50, ``max_concurrency=50`` on our side, so orchestration overhead is
not hidden behind the concurrency ceiling):

  asyncio      ``scenario_upscale.batch.run_batch``: the engine's steps in plain asyncio (baseline)
  prefect-25   the ``upscale-batch`` flow with its default ``shard_size=25``
  prefect-1    the same flow with ``shard_size=1``: one task run per job per step

Each run gets a fresh target folder (nothing is skipped) and a reset emulator; the configurations
are interleaved (asyncio, prefect-25, prefect-1, asyncio, ...) for ``--repeat`` rounds, and the
median is reported. The Prefect flows run in this process against a real ``prefect server start``
(its own temporary ``PREFECT_HOME``, SQLite, a free port) started by the script; its start-up
and one untimed warm-up run of each configuration are measured apart.

Columns: wall time from the call to its return (median, and range over the rounds); ratio to
asyncio; task runs the server recorded for the flow run; status requests (``GET /v1/jobs`` +
``GET /v1/jobs/{jobId}``) per job; emulator requests in all; CPU seconds during the call of this
process (client *and* emulator thread), of the Prefect server, and of everything else on the
machine ("other": load that is not ours, i.e. noise); the Prefect client's retries during the call,
one value per round (a 503 from the server when its SQLite was locked costs >= 2 s of back-off);
after the flow returned: how long a trivial follow-up flow run (one task) took, and how long the
server stayed busy (until every task run is recorded as completed and its CPU use stayed below
15 % of a core for 2 s). Then where the time went, per phase, and emulator requests per route.

    scripts/uv run --frozen python bench/orchestration_overhead.py [--inputs 200] [--repeat 3]

Everything (inputs, outputs, Prefect home and database) lives in a temporary directory removed at
the end; the server is stopped and the emulator thread joined before the script exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Neither imports Prefect: PREFECT_HOME can still be chosen before Prefect reads its settings.
from commands.prefect_runtime import LocalPrefectServer, find_free_port  # noqa: E402

MODEL = "model_upscale-v3"
FACTOR = 2
IMAGE_SIZE = 48
CONCURRENCY = 50
BLOCK = "bench-scenario"
IDLE_CPU = 0.15  # fraction of one core
IDLE_FOR_S = 2.0
SETTLE_TIMEOUT_S = 240.0
STATUS_ROUTES = ("GET /v1/jobs", "GET /v1/jobs/{jobId}")


@dataclass
class Sample:
    wall: float
    jobs: int
    status_requests: int
    requests_total: int
    proc_cpu: float
    server_cpu: float
    requests: dict[str, int] = field(default_factory=dict)
    task_runs: int | None = None
    task_runs_at_return: int | None = None
    follow_up: float | None = None
    busy_after: float | None = None
    other_cpu: float = 0.0
    client_retries: int = 0
    timeline: dict[str, float] = field(default_factory=dict)
    prefect: dict[str, float] = field(default_factory=dict)

    @property
    def status_per_job(self) -> float:
        return self.status_requests / max(1, self.jobs)


@dataclass(frozen=True)
class Config:
    name: str
    shard_size: int | None  # None: plain asyncio
    label: str


CONFIGS = [
    Config("asyncio", None, "run_batch, plain asyncio, shard_size=25"),
    Config("prefect-25", 25, "upscale_batch flow, shard_size=25 (default)"),
    Config("prefect-1", 1, "upscale_batch flow, shard_size=1"),
]


# -- helpers ------------------------------------------------------------------------------------


def write_inputs(folder: Path, count: int) -> None:
    """``count`` distinct 48x48 PNGs (distinct content: distinct uploads, jobs and charges)."""
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(count):
        image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (i % 256, (i // 256) % 256, 128))
        image.putpixel((i % IMAGE_SIZE, (i // IMAGE_SIZE) % IMAGE_SIZE), (255, 255, 255))
        image.save(folder / f"tile{i:04d}.png")


def group_cpu(pgid: int | None) -> float:
    """CPU seconds (user + system) of the live processes in process group ``pgid``."""
    if pgid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is the 5th field of stat
            total += int(fields[11]) + int(fields[12])
    return total / tick


def machine_cpu() -> float:
    """CPU seconds all processes on this machine have used (busy time from /proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Timeline:
    """When the batch's progress counters moved (the engine's ``on_progress`` callback)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.prepared: float | None = None
        self.first_submit: float | None = None
        self.all_finished: float | None = None
        self.all_done: float | None = None

    def __call__(self, progress: Any) -> None:
        now = time.perf_counter() - self.t0
        if self.prepared is None and progress.total:
            self.prepared = now
        if self.first_submit is None and progress.submitted:
            self.first_submit = now
        if self.all_finished is None and progress.total and progress.finished >= progress.total:
            self.all_finished = now
        if self.all_done is None and progress.total and progress.done >= progress.total:
            self.all_done = now

    def phases(self, wall: float) -> dict[str, float]:
        if None in (self.prepared, self.first_submit, self.all_finished, self.all_done):
            return {}
        assert self.prepared and self.first_submit and self.all_finished and self.all_done
        return {
            "call -> inputs prepared (read, upload)": self.prepared,
            "prepared -> first submit (price)": self.first_submit - self.prepared,
            "first submit -> last job seen finished": self.all_finished - self.first_submit,
            "last job finished -> last output collected": self.all_done - self.all_finished,
            "last output collected -> return": wall - self.all_done,
        }


def commit() -> str:
    """The measured code: HEAD, with ``+dirty`` if flows/ or the engine have local changes."""
    import subprocess

    def git(*argv: str) -> str:
        run = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True)
        return run.stdout.strip()

    dirty = git("status", "--porcelain", "--", "flows", "scenario_upscale", "blocks")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return ""
    return f"{min(present):.2f}-{max(present):.2f}"


class ErrorRecords(logging.Handler):
    """Counts Prefect's ERROR records (the console shows none of them) by their first line."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.name}: {record.getMessage().splitlines()[0]}"
        if record.exc_info and record.exc_info[1] is not None:
            error = str(record.exc_info[1]).splitlines()
            line += f" ({type(record.exc_info[1]).__name__}: {error[-2 if len(error) > 1 else 0]})"
        line = line if len(line) <= 200 else line[:197] + "..."
        self.seen[line] = self.seen.get(line, 0) + 1


class ClientRetries(logging.Handler):
    """Counts the Prefect client's retries (e.g. a 503 when the server's SQLite is locked).

    Each waits 2 s and more before the next attempt (``prefect.client.base``).
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.reasons: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "retryable" in message and "Another attempt" in message:
            self.count += 1
            reason = message.split(". Another attempt")[0]
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


RETRIES = ClientRetries()


# -- the benchmark --------------------------------------------------------------------------------


class Bench:
    def __init__(self, tmp: Path, args: argparse.Namespace, server: LocalPrefectServer) -> None:
        self.tmp = tmp
        self.args = args
        self.server = server
        self.pgid = server.process.pid if server.process else None
        self.inputs = tmp / "inputs"
        self.warm_inputs = tmp / "warm-inputs"
        self.sizes = {self.inputs: args.inputs, self.warm_inputs: 4}
        self.runs = 0
        from scenario_upscale.batch import UpscaleSpec
        from scenario_upscale.emulator import EmulatorConfig, EmulatorServer

        self.spec = UpscaleSpec(model_id=MODEL, parameters={"upscaleFactor": FACTOR})
        self.emulator = EmulatorServer(
            EmulatorConfig(job_duration_s=args.job_duration, concurrency_limit=CONCURRENCY)
        )

    def fresh_target(self) -> str:
        self.runs += 1
        return str(self.tmp / "out" / f"run{self.runs:03d}")

    async def save_credentials(self) -> None:
        from blocks.credentials import ScenarioCredentials

        await ScenarioCredentials(
            api_key=self.emulator.api_key,
            api_secret=self.emulator.api_secret,
            base_url=self.emulator.base_url,
        ).asave(BLOCK, overwrite=True)

    # -- one run ----------------------------------------------------------------------------

    async def run(self, config: Config, inputs: Path) -> Sample:
        await asyncio.to_thread(self.emulator.reset)
        target = self.fresh_target()
        cpu0, server0, machine0 = time.process_time(), group_cpu(self.pgid), machine_cpu()
        t0 = time.perf_counter()
        timeline = Timeline(t0)
        retries0 = RETRIES.count
        run_id, count = await self._call(config, str(inputs), target, timeline)
        wall = time.perf_counter() - t0
        retries = RETRIES.count - retries0
        proc_cpu, server_cpu = time.process_time() - cpu0, group_cpu(self.pgid) - server0
        other_cpu = machine_cpu() - machine0 - proc_cpu - server_cpu
        stats = await asyncio.to_thread(self.emulator.stats)
        if count != self.sizes[inputs] or stats.jobs_created != count:
            raise SystemExit(f"{config.name}: {count} succeeded, {stats.jobs_created} jobs")
        sample = Sample(
            wall=wall,
            jobs=stats.jobs_created,
            status_requests=sum(stats.requests.get(r, 0) for r in STATUS_ROUTES),
            requests_total=stats.requests_total,
            requests=dict(stats.requests),
            proc_cpu=proc_cpu,
            server_cpu=server_cpu,
            other_cpu=max(0.0, other_cpu),
            client_retries=retries,
            timeline=timeline.phases(wall),
        )
        if run_id is not None:
            sample.task_runs_at_return = await self.count_task_runs(run_id)
            f0 = time.perf_counter()
            await self.ping()
            sample.follow_up = time.perf_counter() - f0
            idle_at = await self.wait_until_settled(run_id)
            sample.busy_after = idle_at - (t0 + wall)
            sample.task_runs = await self.count_task_runs(run_id)
            sample.prefect = await self.prefect_phases(run_id, t0, wall)
        else:
            await self.wait_until_settled(None)
        return sample

    async def _call(
        self, config: Config, inputs: str, target: str, timeline: Timeline
    ) -> tuple[UUID | None, int]:
        if config.shard_size is None:
            from blocks.credentials import ScenarioCredentials
            from scenario_upscale.batch import run_batch

            credentials = await ScenarioCredentials.aload(BLOCK)
            async with credentials.get_client() as client:
                report = await run_batch(
                    client,
                    inputs,
                    target,
                    [self.spec],
                    max_concurrency=CONCURRENCY,
                    on_progress=timeline,
                )
            return None, report.count("success")
        from flows.options import AdvancedSettings
        from flows.reporting import watching_progress
        from flows.upscale import upscale_batch

        with watching_progress(timeline):
            state = await upscale_batch(
                inputs=inputs,
                target=target,
                upscales=[self.spec],
                credentials_block=BLOCK,
                advanced=AdvancedSettings(
                    max_concurrency=CONCURRENCY, shard_size=config.shard_size
                ),
                return_state=True,
            )
        report = await state.aresult(raise_on_failure=False)
        return state.state_details.flow_run_id, report.count("success")

    # -- what the server says ---------------------------------------------------------------

    async def count_task_runs(self, flow_run_id: UUID, completed: bool = False) -> int:
        from prefect.client.orchestration import get_client

        body: dict[str, Any] = {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}}
        if completed:
            body["task_runs"] = {"state": {"type": {"any_": ["COMPLETED"]}}}
        async with get_client() as client:
            response = await client._client.post("/task_runs/count", json=body)
        return int(response.json())

    async def ping(self) -> None:
        """A trivial flow run with one task, to completion."""
        from prefect import flow, task

        @task(name="bench-ping-task", persist_result=False)
        async def one() -> int:
            return 1

        @flow(name="bench-ping", persist_result=False)
        async def ping() -> int:
            return await one()

        await ping()

    async def wait_until_settled(self, flow_run_id: UUID | None) -> float:
        """Time the server went quiet: every task run it knows is Completed, CPU low a while."""
        deadline = time.perf_counter() + SETTLE_TIMEOUT_S
        step = 0.5
        quiet_since: float | None = None
        last_cpu, last_t = group_cpu(self.pgid), time.perf_counter()
        while time.perf_counter() < deadline:
            await asyncio.sleep(step)
            cpu, now = group_cpu(self.pgid), time.perf_counter()
            busy = (cpu - last_cpu) / (now - last_t) >= IDLE_CPU
            if not busy and flow_run_id is not None:
                total = await self.count_task_runs(flow_run_id)
                busy = await self.count_task_runs(flow_run_id, completed=True) < total
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = last_t
            if quiet_since is not None and now - quiet_since >= IDLE_FOR_S:
                return quiet_since
            last_cpu, last_t = cpu, now
        print(f"  (server still busy after {SETTLE_TIMEOUT_S:.0f} s)", flush=True)
        return time.perf_counter()

    async def prefect_phases(self, flow_run_id: UUID, t0: float, wall: float) -> dict[str, float]:
        """The flow's time outside its tasks, from the timestamps the server recorded."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        async with get_client() as client:
            flow_run = await client.read_flow_run(flow_run_id)
            task_runs = []
            while True:
                page = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                    limit=200,
                    offset=len(task_runs),
                )
                task_runs += page
                if len(page) < 200:
                    break
        # Server timestamps are wall-clock; map the call's start onto the same clock.
        call = time.time() - (time.perf_counter() - t0)
        start: dict[str, float] = {}
        end: dict[str, float] = {}
        for t in task_runs:
            if not (t.start_time and t.end_time):
                return {}
            name = t.name.rsplit("-", 1)[0]
            start[name] = min(start.get(name, 1e20), t.start_time.timestamp())
            end[name] = max(end.get(name, 0.0), t.end_time.timestamp())
        if not (flow_run.start_time and flow_run.end_time and "submit-jobs" in start):
            return {}
        running, final = flow_run.start_time.timestamp(), flow_run.end_time.timestamp()
        return {
            "call -> flow run Running": running - call,
            "Running -> prepare-inputs starts": start["prepare-inputs"] - running,
            "prepare-inputs": end["prepare-inputs"] - start["prepare-inputs"],
            "price-jobs": end["price-jobs"] - start["price-jobs"],
            "price-jobs ends -> first submit-jobs starts": start["submit-jobs"] - end["price-jobs"],
            "first submit-jobs starts -> last task ends": max(end.values()) - start["submit-jobs"],
            "last task ends -> flow run final state": final - max(end.values()),
            "final state -> call returns": call + wall - final,
        }


# -- report ---------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def report(results: dict[str, list[Sample]], args: argparse.Namespace) -> None:
    base = median([s.wall for s in results["asyncio"]])
    print()
    print(
        f"commit {commit()}: {args.inputs} inputs ({IMAGE_SIZE}x{IMAGE_SIZE} PNG, "
        f"{MODEL} x{FACTOR}), emulator jobs "
        f"{args.job_duration:g} s, concurrency {CONCURRENCY}; median of {args.repeat} "
        f"(range when >1); {os.cpu_count()} cores"
    )
    header = (
        f"{'config':10} | {'wall s':>6} | {'range':>11} | {'ratio':>5} | {'task runs':>9} | "
        f"{'status/job':>10} | {'reqs':>5} | {'cpu s':>5} | {'srv cpu':>7} | "
        f"{'other':>5} | {'retries':>7} | {'follow-up':>9} | {'busy after':>10}"
    )
    print(header)
    print("-" * len(header))
    for config in CONFIGS:
        samples = results[config.name]
        wall = median([s.wall for s in samples])
        runs = [s.task_runs for s in samples if s.task_runs is not None]
        print(
            f"{config.name:10} | {fmt(wall):>6} | {spread([s.wall for s in samples]):>11} | "
            f"{fmt(wall / base if wall and base else None):>5} | "
            f"{(str(max(runs)) if runs else '-'):>9} | "
            f"{fmt(median([s.status_per_job for s in samples])):>10} | "
            f"{fmt(median([float(s.requests_total) for s in samples]), '.0f'):>5} | "
            f"{fmt(median([s.proc_cpu for s in samples]), '.1f'):>5} | "
            f"{fmt(median([s.server_cpu for s in samples]), '.1f'):>7} | "
            f"{fmt(median([s.other_cpu for s in samples]), '.1f'):>5} | "
            f"{'/'.join(str(s.client_retries) for s in samples):>7} | "
            f"{fmt(median([s.follow_up for s in samples])):>9} | "
            f"{fmt(median([s.busy_after for s in samples]), '.1f'):>10}"
        )
    print()
    for config in CONFIGS[1:]:
        samples = results[config.name]
        wall = median([s.wall for s in samples])
        if wall and base:
            print(
                f"{config.name}: {wall / base:.2f}x asyncio "
                f"({100 * (wall / base - 1):+.0f} %, {wall - base:+.2f} s; target: within +10 %)"
            )

    def rows(title: str, attr: str, configs: list[Config]) -> None:
        print(f"\n{title}")
        print(f"  {'':46}" + "".join(f" | {c.name:>10}" for c in configs))
        keys = list(getattr(results[configs[-1].name][0], attr))
        for key in keys:
            values = [median([getattr(s, attr).get(key) for s in results[c.name]]) for c in configs]
            print(f"  {key:46}" + "".join(f" | {fmt(v):>10}" for v in values))

    rows(
        "Where the wall time went (s, median; from the engine's progress callback)",
        "timeline",
        CONFIGS,
    )
    rows("Prefect's share outside the tasks (s, median; server timestamps)", "prefect", CONFIGS[1:])
    at_return = [
        fmt(median([float(s.task_runs_at_return or 0) for s in results[c.name]]), ".0f")
        for c in CONFIGS[1:]
    ]
    print(
        f"  {'task runs on the server when the call returned':46}"
        + "".join(f" | {v:>10}" for v in at_return)
    )
    routes = sorted({r for samples in results.values() for s in samples for r in s.requests})
    print("\nEmulator requests by route (median per run)")
    print(f"  {'route':34}" + "".join(f" | {c.name:>10}" for c in CONFIGS))
    for route in routes:
        counts = [
            median([float(s.requests.get(route, 0)) for s in results[c.name]]) for c in CONFIGS
        ]
        print(f"  {route:34}" + "".join(f" | {fmt(n, '.0f'):>10}" for n in counts))


async def measure(tmp: Path, args: argparse.Namespace, server: LocalPrefectServer) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from commands.prefect_runtime import drain_prefect_workers

    bench = Bench(tmp, args, server)
    for folder, count in bench.sizes.items():
        write_inputs(folder, count)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}), bench.emulator:
        try:
            await bench.save_credentials()
            warm: list[str] = []
            for config in CONFIGS:
                t0 = time.perf_counter()
                await bench.run(config, bench.warm_inputs)
                warm.append(f"{config.name} {time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            await bench.ping()
            idle_ping = time.perf_counter() - t0
            print(
                f"warm-up (4 inputs, untimed): {', '.join(warm)}; "
                f"trivial flow on an idle server: {idle_ping:.2f} s",
                flush=True,
            )
            results: dict[str, list[Sample]] = {c.name: [] for c in CONFIGS}
            for round_ in range(args.repeat):
                # Rotated each round, so no configuration always runs first or last.
                for config in CONFIGS[round_ % 3 :] + CONFIGS[: round_ % 3]:
                    sample = await bench.run(config, bench.inputs)
                    results[config.name].append(sample)
                    print(
                        f"round {round_ + 1}/{args.repeat} {config.name:10} {sample.wall:6.2f} s"
                        + (
                            f"  (follow-up flow {sample.follow_up:.2f} s, server busy "
                            f"{sample.busy_after:.1f} s after return)"
                            if sample.busy_after is not None
                            else ""
                        ),
                        flush=True,
                    )
            report(results, args)
        finally:
            await asyncio.to_thread(drain_prefect_workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=200, help="images in the batch")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--job-duration", type=float, default=1.0, help="emulator job seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="orchestration-bench-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "prefect-home"
        port = find_free_port()
        for key in [k for k in os.environ if k.startswith("PREFECT_")]:
            del os.environ[key]
        os.environ.update(
            {
                "PREFECT_HOME": str(home),
                "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
            }
        )
        server = LocalPrefectServer(home, port=port, log_file=tmp / "server.log")
        t0 = time.perf_counter()
        server.start()
        try:
            import flows.upscale  # noqa: F401  (Prefect and the flows, while the server boots)

            imported = time.perf_counter() - t0
            server.wait_until_healthy(120)
            healthy = time.perf_counter() - t0
            print(
                f"Prefect start-up (not in the flow times): server healthy {healthy:.1f} s "
                f"after start on a fresh database; Prefect + flows imported meanwhile in "
                f"{imported:.1f} s",
                flush=True,
            )
            from commands.prefect_runtime import quiet_prefect_console

            errors = ErrorRecords()
            logging.getLogger("prefect").addHandler(errors)
            client_logger = logging.getLogger("prefect.client")
            client_logger.setLevel(logging.DEBUG)
            client_logger.addHandler(RETRIES)
            with quiet_prefect_console("CRITICAL"):
                asyncio.run(measure(tmp, args, server))
            logging.getLogger("prefect").removeHandler(errors)
            total = sum(errors.seen.values())
            print(
                f"\nPrefect ERROR log records during the runs (not shown on the console): {total}"
            )
            for line, count in errors.seen.items():
                print(f"  {count:4d} x {line}")
            print(f"Prefect client retries (each waits >= 2 s), warm-up included: {RETRIES.count}")
            for reason, count in RETRIES.reasons.items():
                print(f"  {count:4d} x {reason}")
        finally:
            t1 = time.perf_counter()
            server.stop()
            print(f"Prefect server stopped in {time.perf_counter() - t1:.1f} s", flush=True)


if __name__ == "__main__":
    main()
