"""Issue 10's reliability checks as commands: a fault soak and a SIGKILL crash check.

    bench/reliability.py soak  [--inputs 1000] [--reruns 1] [--fault-rate 0.1] ...
    bench/reliability.py crash [--inputs 100] [--kills upload,submit,poll,submit,download] ...

Both run the engine's ``run_batch`` in child processes (``_batch``), each over the same inputs and
target, against the emulator in a process of its own (``serve`` on 127.0.0.1, a free port, a
random key and secret), and judge the outcome from the outside: charges from the emulator's
``/_emulator/stats``, jobs from its listing, outputs by decoding the files in the target.

- ``soak``: one run under faults on every route (5xx on ~``--fault-rate`` of the API's GETs and
  POSTs, lost submit answers, failing jobs, signed URLs that expire in ``--url-ttl-s``, CDN 503s
  and cut transfers, a team ceiling below the run's concurrency), then ``--reruns`` reruns.
- ``crash``: a clean run into one target, then runs into another target each SIGKILLed at a
  moment read from the emulator's counters (``upload``: the k-th upload of that run arrived;
  ``submit``: the k-th job created; ``poll``: the k-th job read or listing; ``download``: the k-th
  CDN download), then one rerun to the end; outputs are compared byte for byte with the clean run.

It prints one line per figure and exits 1 when a promise is broken: an input charged more than
once, a paid output not delivered by the run that paid for it (soak), a failed input a rerun did
not try again (soak), an output missing at the end or different from the clean run's (crash), an
output that does not decode at the expected size, a ``.part`` file left, a key or secret in a
file written (the targets, the runs' logs and their home folder), a kill point not reached.
``--json PATH`` writes the figures too.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from commands.prefect_runtime import find_free_port  # noqa: E402
from scenario_upscale.emulator.stats import EmulatorStats  # noqa: E402

MODEL, FACTOR = "model_upscale-v3", 2
SUFFIX = f"@upscale-v3x{FACTOR}"  # the engine's output name: <stem>@<model><scale>.<ext>
KILL_POINTS = ("upload", "submit", "poll", "download")
RUN_TIMEOUT_S = 1800.0
STATS_EVERY_S = 0.05


# -- inputs and the emulator ------------------------------------------------------------------


def write_inputs(folder: Path, count: int) -> list[Path]:
    """``count`` distinct small PNGs of varying sizes (distinct content: distinct charges)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"in{i:04d}.png"
        image = Image.new("RGB", (32 + i % 17, 24 + i % 13), (i % 256, (i // 256) % 256, 90))
        image.putpixel((i % 24, 0), (255, 255, 255))
        image.save(path)
        paths.append(path)
    return paths


class Emulator:
    """A running emulator, driven through its HTTP controls (``/_emulator/…``)."""

    def __init__(self, root: str, api_key: str, api_secret: str) -> None:
        self.root, self.api_key, self.api_secret = root, api_key, api_secret
        self.http = httpx.Client(base_url=root, auth=(api_key, api_secret), timeout=60)

    @property
    def secrets(self) -> list[bytes]:
        """What must never be written: the key, the secret and their Basic auth header value."""
        basic = base64.b64encode(f"{self.api_key}:{self.api_secret}".encode())
        return [self.api_key.encode(), self.api_secret.encode(), basic]

    def reset(self, options: argparse.Namespace, **faults: Any) -> None:
        """No jobs, assets or counters; the check's pacing and ceiling, and ``faults`` on."""
        self.http.post("/_emulator/reset").raise_for_status()
        config = {"job_duration_s": options.job_duration_s, "concurrency_limit": options.ceiling}
        self.http.put("/_emulator/config", json=config | faults).raise_for_status()

    def stats(self) -> EmulatorStats:
        return EmulatorStats.model_validate(self.http.get("/_emulator/stats").json())

    def jobs(self) -> dict[str, str]:
        """Every job on the emulator: id -> status (GET faults off for the reading)."""
        config = self.http.get("/_emulator/config").json()
        quiet = {"error_rate_5xx": 0.0, "latency_s": 0.0, "timeout_rate": 0.0}
        self.http.put("/_emulator/config", json=quiet).raise_for_status()
        try:
            found: dict[str, str] = {}
            token: str | None = None
            while True:
                params: dict[str, Any] = {"pageSize": 100}
                if token:
                    params["paginationToken"] = token
                page = self.http.get("/v1/jobs", params=params)
                page.raise_for_status()
                body = page.json()
                found.update({job["jobId"]: job["status"] for job in body["jobs"]})
                token = body.get("nextPaginationToken")
                if not token or not body["jobs"]:
                    return found
        finally:
            restore = {key: config[key] for key in quiet}
            self.http.put("/_emulator/config", json=restore).raise_for_status()


EMULATOR = """
import os
from scenario_upscale.emulator import EmulatorConfig
from scenario_upscale.emulator.server import serve
config = EmulatorConfig.model_validate_json(os.environ.pop("RELIABILITY_EMULATOR_CONFIG"))
serve("127.0.0.1", int(os.environ.pop("RELIABILITY_EMULATOR_PORT")), config)
"""


@contextlib.contextmanager
def emulator_process(log: Path) -> Iterator[Emulator]:
    """The emulator in its own process, with a random key and secret to look for afterwards."""
    key, secret = "soak-key-" + secrets.token_hex(8), "soak-secret-" + secrets.token_hex(12)
    port = find_free_port()
    env = dict(os.environ)
    env.update(
        RELIABILITY_EMULATOR_CONFIG=json.dumps({"api_key": key, "api_secret": secret}),
        RELIABILITY_EMULATOR_PORT=str(port),
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", EMULATOR],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    emulator = Emulator(f"http://127.0.0.1:{port}", key, secret)
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if emulator.http.get("/_emulator/health").status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start; see {log}")
            time.sleep(0.2)
        yield emulator
    finally:
        emulator.http.close()
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def the_emulator(given: Emulator | None, log: Path) -> contextlib.AbstractContextManager[Emulator]:
    """The emulator a caller gives (the test suite's), or one in a process of its own."""
    return contextlib.nullcontext(given) if given else emulator_process(log)


# -- one run of the engine, in a child process -------------------------------------------------


def _batch() -> None:
    """The child: imports the engine (the slow part), then waits for its spec on stdin."""
    import scenario_upscale.batch  # noqa: F401

    line = sys.stdin.readline()
    if not line:
        return  # a spare child that was never used
    spec = json.loads(line)
    log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ["HOME"] = spec["home"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results = asyncio.run(_run_batch(spec))
    Path(spec["results"]).write_text(json.dumps(results))


async def _run_batch(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """``run_batch`` as a user would call it, with the default policies."""
    from scenario_upscale.api import ScenarioClient
    from scenario_upscale.batch import UpscaleSpec, run_batch

    async with ScenarioClient(
        api_key=spec["api_key"],
        api_secret=spec["api_secret"],
        base_url=spec["base_url"],
        strict_responses=True,
    ) as client:
        report = await run_batch(
            client,
            spec["inputs"],
            spec["target"],
            [UpscaleSpec(model_id=MODEL, parameters={"upscaleFactor": FACTOR})],
            max_concurrency=spec["max_concurrency"],
        )
    print(report.summary(), flush=True)
    return [r.model_dump(mode="json") for r in report.results]


@dataclass
class Run:
    """One child run: how it ended and what it reported (nothing when it was killed)."""

    index: int
    log: Path
    exit_code: int | None = None
    killed_at: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.results)

    def delivered_jobs(self) -> set[str]:
        return {r["job_id"] for r in self.results if r["status"] == "success" and r["job_id"]}


# A child takes seconds to import the engine on a busy machine: one is always started ahead (it
# imports while the current run works, and across checks in one process) and begins its batch
# only when it reads its spec.
_spare: list[subprocess.Popen[bytes]] = []


def _spawn() -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SCENARIO_"))}
    return subprocess.Popen(
        [sys.executable, __file__, "_batch"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )


def take_child() -> subprocess.Popen[bytes]:
    """A child that has imported the engine (or is importing it), and another started ahead."""
    child = _spare.pop() if _spare else _spawn()
    if child.poll() is not None:
        child = _spawn()
    _spare.append(_spawn())
    return child


def stop_spare() -> None:
    """Stop the child started ahead, which has no batch to run."""
    while _spare:
        child = _spare.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


atexit.register(stop_spare)


class Runs:
    """The runs of one check: the same inputs, and a home of their own (``~/.cache``...)."""

    def __init__(self, tmp: Path, inputs: Path, max_concurrency: int) -> None:
        self.tmp, self.inputs, self.max_concurrency = tmp, inputs, max_concurrency
        self.home = tmp / "home"
        self.home.mkdir(exist_ok=True)
        self.logs: list[Path] = []
        self.started = 0
        if not _spare:
            _spare.append(_spawn())  # it imports while the emulator starts

    def start(self, target: Path, emulator: Emulator) -> tuple[Run, subprocess.Popen[bytes]]:
        """Hand a waiting child its batch (credentials on its stdin, never in argv or env)."""
        self.started += 1
        run = Run(self.started, self.tmp / f"run-{self.started}.log")
        spec = {
            "base_url": emulator.root + "/v1",
            "api_key": emulator.api_key,
            "api_secret": emulator.api_secret,
            "inputs": str(self.inputs),
            "target": str(target),
            "max_concurrency": self.max_concurrency,
            "results": str(self.tmp / f"run-{run.index}.json"),
            "log": str(run.log),
            "home": str(self.home),
        }
        process = take_child()
        assert process.stdin is not None
        process.stdin.write(json.dumps(spec).encode() + b"\n")
        process.stdin.close()
        self.logs.append(run.log)
        return run, process

    def finish(self, run: Run, process: subprocess.Popen[bytes]) -> Run:
        try:
            run.exit_code = process.wait(RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            run.exit_code = process.wait()
            run.killed_at = f"timeout after {RUN_TIMEOUT_S:.0f} s"
        results = self.tmp / f"run-{run.index}.json"
        if results.exists():
            run.results = json.loads(results.read_text())
        return run

    def to_the_end(self, target: Path, emulator: Emulator) -> Run:
        return self.finish(*self.start(target, emulator))


# -- judging what is on disk ---------------------------------------------------------------------


@dataclass
class Disk:
    outputs: int = 0
    verified: int = 0
    bad: list[str] = field(default_factory=list)
    staging_left: list[str] = field(default_factory=list)


def judge_target(target: Path, inputs: Path) -> Disk:
    """Every output decoded in full by Pillow at ``FACTOR`` times its input's size; every
    ``.part`` file (a download's staging name) left anywhere in the target."""
    disk = Disk()
    if not target.exists():
        return disk
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        relative = str(path.relative_to(target))
        if ".part" in path.name:
            disk.staging_left.append(relative)
            continue
        if relative.startswith(".scenario-upscale"):
            continue  # the journal, its lock and the watermarks
        disk.outputs += 1
        source = inputs / (path.stem.removesuffix(SUFFIX) + path.suffix)
        try:
            with Image.open(source) as original:
                expected = (original.width * FACTOR, original.height * FACTOR)
            with Image.open(path) as image:
                image.load()
                size = image.size
        except (OSError, ValueError) as error:
            disk.bad.append(f"{relative}: {type(error).__name__}: {error}")
            continue
        if size != expected:
            disk.bad.append(
                f"{relative}: {size[0]}x{size[1]}, expected {expected[0]}x{expected[1]}"
            )
        else:
            disk.verified += 1
    return disk


def files_with_secrets(roots: list[Path], needles: list[bytes]) -> tuple[int, list[str]]:
    """How many files were read under ``roots``, and those holding one of ``needles``."""
    scanned, found = 0, []
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            scanned += 1
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                found.append(str(path))
    return scanned, found


def charges(stats: EmulatorStats) -> tuple[int, int, int]:
    """Jobs charged, inputs charged (net of refunds) at least once, and more than once.

    Keyed by the input's content (model and sha256), so the same bytes uploaded twice count once.
    """
    net = [entry.net_charges for entry in stats.charges_by_content.values()]
    return (
        sum(e.charges for e in stats.charges_by_content.values()),
        sum(n >= 1 for n in net),
        sum(n > 1 for n in net),
    )


# -- the report ------------------------------------------------------------------------------


@dataclass
class Figures:
    check: str
    command: str
    started_utc: str
    lines: list[tuple[str, str, bool | None]] = field(default_factory=list)  # name, value, kept
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, name: str, value: object, kept: bool | None = None) -> None:
        """A figure; ``kept`` says whether the promise it measures holds (None: information)."""
        self.lines.append((name, str(value), kept))

    def value(self, name: str) -> str:
        """The figure called ``name``, as printed."""
        return next(value for line, value, _ in self.lines if line == name)

    @property
    def broken(self) -> list[str]:
        return [name for name, _, kept in self.lines if kept is False]

    def show(self) -> str:
        marks = {True: "ok", False: "BROKEN", None: ""}
        head = f"{self.check}: {self.command}  ({self.started_utc}, {self.seconds:.0f} s)"
        body = [f"{name:52} {value:>12}  {marks[kept]}" for name, value, kept in self.lines]
        tail = [f"  {line}" for line in self.details.get("evidence", [])]
        verdict = "every promise kept" if not self.broken else "BROKEN: " + ", ".join(self.broken)
        return "\n".join([head, *body, *tail, verdict])


def common_figures(
    figures: Figures, emulator: Emulator, runs: Runs, targets: list[Path], inputs: Path
) -> None:
    """What both checks print about charges, the files in the targets and secrets."""
    stats = emulator.stats()
    charged, paid_inputs, twice = charges(stats)
    figures.add("jobs created", stats.jobs_created)
    refunded = sum(entry.refunds for entry in stats.charges_by_content.values())
    figures.add("jobs charged / refunded", f"{charged}/{refunded}")
    figures.add("inputs charged (net of refunds)", paid_inputs)
    figures.add("inputs charged more than once", twice, twice == 0)
    for target in targets:
        disk = judge_target(target, inputs)
        name = target.name
        figures.add(f"outputs in {name}", disk.outputs)
        figures.add(
            f"outputs in {name} verified by decoding", disk.verified, disk.verified == disk.outputs
        )
        figures.add(f".part files left in {name}", len(disk.staging_left), not disk.staging_left)
        figures.details.setdefault("evidence", []).extend(disk.bad[:10] + disk.staging_left[:10])
    scanned, leaks = files_with_secrets([*targets, runs.home, *runs.logs], emulator.secrets)
    figures.add("files written scanned for the key and secret", scanned)
    figures.add("files holding the key or secret", len(leaks), not leaks)
    figures.details.setdefault("evidence", []).extend(leaks[:10])


def log_excerpt(run: Run, lines: int = 5) -> list[str]:
    text = run.log.read_text(errors="replace").splitlines() if run.log.exists() else []
    return [f"run {run.index} log: {line[:200]}" for line in text[-lines:]]


# -- soak ---------------------------------------------------------------------------------------


def soak_faults(options: argparse.Namespace) -> dict[str, Any]:
    n, rate = options.inputs, options.fault_rate
    return {
        "seed": options.seed,
        "error_rate_5xx": rate,
        "error_rate_5xx_post": rate,
        "drop_generate_after_commit": max(1, round(n * rate / 10)),
        "job_failure_rate": options.job_failure_rate,
        "url_ttl_s": options.url_ttl_s,
        "fail_next_n_downloads": max(1, round(n * rate / 2)),
        "truncate_next_n_downloads": max(1, round(n * rate / 2)),
    }


def soak(options: argparse.Namespace, tmp: Path, emulator: Emulator | None) -> Figures:
    figures = Figures("soak", options.command, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    inputs, target = tmp / "inputs", tmp / "target"
    write_inputs(inputs, options.inputs)
    runs = Runs(tmp, inputs, options.max_concurrency)
    with the_emulator(emulator, tmp / "emulator.log") as emu:
        faults = soak_faults(options)
        emu.reset(options, **faults)
        figures.details["faults"] = faults
        figures.add("inputs", options.inputs)
        known: dict[str, str] = {}
        undelivered_total = 0
        for index in range(1 + options.reruns):
            run = runs.to_the_end(target, emu)
            jobs = emu.jobs()
            paid = {job for job, status in jobs.items() if job not in known and status == "success"}
            undelivered = sorted(paid - run.delivered_jobs())
            undelivered_total += len(undelivered)
            label = "run" if index == 0 else f"rerun {index}"
            figures.add(
                f"{label}: succeeded / skipped / failed",
                f"{run.count('success')}/{run.count('skipped')}/"
                f"{len(run.results) - run.count('success') - run.count('skipped')}",
            )
            figures.add(f"{label}: exit code", run.exit_code, run.exit_code == 0)
            figures.add(f"{label}: paid outputs not delivered in this run", len(undelivered))
            # A rerun tries a failed input again: a failure on an earlier run's job is not that.
            untried = [
                r["job_id"]
                for r in run.results
                if r["status"] == "failure" and known.get(r["job_id"]) == "failure"
            ]
            if index:
                figures.add(f"{label}: failed inputs not tried again", len(untried), not untried)
            if undelivered or untried or run.exit_code != 0:
                evidence = figures.details.setdefault("evidence", [])
                errors = [
                    f"{r['source']}: {r['status']}: {r['error']}"
                    for r in run.results
                    if r["job_id"] in undelivered or r["job_id"] in untried
                ]
                evidence += errors[:10] + log_excerpt(run)
            known = jobs
        figures.add(
            "paid outputs not delivered in the run that paid",
            undelivered_total,
            undelivered_total == 0,
        )
        stats = emu.stats()
        figures.add("faults injected", sum(stats.faults_injected.values()))
        figures.details["faults_injected"] = stats.faults_injected
        common_figures(figures, emu, runs, [target], inputs)
    return figures


# -- crash --------------------------------------------------------------------------------------


def counter(point: str, stats: EmulatorStats) -> int:
    """How far a run got, as the emulator counts it, for one kill point."""
    requests = stats.requests
    if point == "upload":
        return requests.get("POST /v1/assets", 0) + requests.get("POST /v1/uploads", 0)
    if point == "submit":
        return stats.jobs_created
    if point == "poll":
        return requests.get("GET /v1/jobs", 0) + requests.get("GET /v1/jobs/{jobId}", 0)
    return stats.cdn_downloads


def kill_when(
    runs: Runs,
    emulator: Emulator,
    target: Path,
    point: str,
    threshold: int,
    say: Callable[[str], None],
) -> Run:
    """Start a run and SIGKILL it once its ``point`` counter grew by ``threshold``."""
    base = counter(point, emulator.stats())
    run, process = runs.start(target, emulator)
    while process.poll() is None:
        stats = emulator.stats()
        if (grown := counter(point, stats) - base) >= threshold:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            run.killed_at = (
                f"{point} (+{grown}: uploads {counter('upload', stats)}, "
                f"jobs {stats.jobs_created}, polls {counter('poll', stats)}, "
                f"downloads {stats.cdn_downloads} in all)"
            )
            say(f"run {run.index}: SIGKILL at {run.killed_at}")
            return run
        time.sleep(STATS_EVERY_S)
    say(f"run {run.index}: ended before its {point} kill point")
    return runs.finish(run, process)


def crash(
    options: argparse.Namespace,
    tmp: Path,
    emulator: Emulator | None,
    say: Callable[[str], None],
) -> Figures:
    figures = Figures("crash", options.command, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    kills = [k.strip() for k in options.kills.split(",") if k.strip()]
    inputs, clean, crashed = tmp / "inputs", tmp / "clean", tmp / "crashed"
    write_inputs(inputs, options.inputs)
    threshold = max(1, options.inputs // 10)
    runs = Runs(tmp, inputs, options.max_concurrency)
    with the_emulator(emulator, tmp / "emulator.log") as emu:
        emu.reset(options)
        reference = runs.to_the_end(clean, emu)
        say(f"clean run: {reference.count('success')} succeeded, exit {reference.exit_code}")
        emu.reset(options)  # the charges below are the crashed runs' alone
        killed = [kill_when(runs, emu, crashed, point, threshold, say) for point in kills]
        last = runs.to_the_end(crashed, emu)
        say(f"last rerun: {last.count('success')} succeeded, {last.count('skipped')} skipped")
        hit = [run for run in killed if run.killed_at and run.killed_at.startswith(tuple(kills))]
        figures.add("inputs", options.inputs)
        figures.add(
            "clean run: succeeded",
            reference.count("success"),
            reference.count("success") == options.inputs,
        )
        figures.add("SIGKILLs asked for", len(kills))
        figures.add(
            "kill points hit",
            ", ".join(k.killed_at.split()[0] for k in hit if k.killed_at) or "none",
            len(hit) == len(kills),
        )
        figures.details["kills"] = [k.killed_at for k in killed]
        figures.add("reruns", len(killed))
        figures.add(
            "last rerun: succeeded / skipped",
            f"{last.count('success')}/{last.count('skipped')}",
            last.count("success") + last.count("skipped") == options.inputs,
        )
        _, paid_inputs, _ = charges(emu.stats())
        figures.add(
            "inputs charged exactly once after the kills",
            paid_inputs,
            paid_inputs == options.inputs,
        )
        identical, differing = 0, []
        for expected in sorted(p for p in clean.iterdir() if p.is_file()):
            mine = crashed / expected.name
            if mine.is_file() and mine.read_bytes() == expected.read_bytes():
                identical += 1
            else:
                differing.append(expected.name)
        figures.add(
            "outputs byte-identical to the clean run", identical, identical == options.inputs
        )
        evidence = figures.details.setdefault("evidence", [])
        evidence += [f"differs or missing: {name}" for name in differing[:10]]
        if last.exit_code != 0:
            evidence += log_excerpt(last)
        common_figures(figures, emu, runs, [clean, crashed], inputs)
    return figures


# -- the command ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = main.add_subparsers(dest="check", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--job-duration-s", type=float, default=1.0, help="emulated job length")
    shared.add_argument("--ceiling", type=int, default=40, help="the team's concurrency ceiling")
    shared.add_argument("--max-concurrency", type=int, default=50, help="the run's jobs in flight")
    shared.add_argument("--json", type=Path, help="also write the figures to this file")
    shared.add_argument("--keep", type=Path, help="keep inputs, targets and logs in this folder")
    soak_options = sub.add_parser("soak", parents=[shared], help="a run under faults, and reruns")
    soak_options.add_argument("--inputs", type=int, default=1000)
    soak_options.add_argument("--reruns", type=int, default=1)
    soak_options.add_argument("--fault-rate", type=float, default=0.1, help="5xx per request")
    soak_options.add_argument("--job-failure-rate", type=float, default=0.05)
    soak_options.add_argument("--url-ttl-s", type=float, default=2.0, help="signed URL life")
    soak_options.add_argument("--seed", type=int, default=0, help="the emulator's fault dice")
    crash_options = sub.add_parser("crash", parents=[shared], help="SIGKILLs, then a rerun")
    crash_options.add_argument("--inputs", type=int, default=100)
    crash_options.add_argument(
        "--kills",
        default="upload,submit,poll,submit,download",
        help=f"one SIGKILLed run per entry, in order; points: {', '.join(KILL_POINTS)}",
    )
    return main


def say(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def check(
    argv: list[str], emulator: Emulator | None = None, say: Callable[[str], None] = say
) -> Figures:
    """Run the check ``argv`` asks for (``soak …`` or ``crash …``) and return its figures;
    against ``emulator`` when given, else against one started in a process of its own."""
    options = parser().parse_args(argv)
    if options.check == "crash" and (
        unknown := sorted({k.strip() for k in options.kills.split(",")} - set(KILL_POINTS))
    ):
        parser().error(
            f"--kills: unknown {', '.join(unknown)}; choose from {', '.join(KILL_POINTS)}"
        )
    options.command = "bench/reliability.py " + " ".join(argv)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if options.keep:
            tmp = options.keep
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reliability-")))
        if options.check == "soak":
            figures = soak(options, tmp, emulator)
        else:
            figures = crash(options, tmp, emulator, say)
    figures.seconds = time.monotonic() - started
    if options.json:
        options.json.write_text(json.dumps(asdict(figures), indent=2))
    return figures


def main() -> None:
    if sys.argv[1:2] == ["_batch"]:
        _batch()
        return
    try:
        figures = check(sys.argv[1:])
    finally:
        stop_spare()
    print(figures.show())
    sys.exit(1 if figures.broken else 0)


if __name__ == "__main__":
    main()
