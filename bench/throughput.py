"""Issue 11's benchmarks P1-P5: how close does a batch get to Scenario's physical limit?

With a team ceiling of C jobs and jobs of d seconds, N inputs cannot finish before ⌈N/C⌉·d.
This script measures, from the outside as far as it can, the engine (``run_batch``), the
``upscale-batch`` flow and a seed-style client (one job at a time, 3 s polls) against the
emulator, and prints one line per benchmark: name, measured value, goal, pass/fail.

Where the figures come from:
- the emulator runs in its own process (``serve`` on 127.0.0.1), so its CPU and memory are not
  the client's; it is reset before every run. Requests per route come from its
  ``/_emulator/stats``; job creation and success times from its job listing (``createdAt`` and the
  ``statusHistory`` dates, milliseconds, the same machine clock as ours);
- every measured run is a fresh Python process (``--case``), so peak RSS (``VmHWM``) and CPU
  seconds (``time.process_time``: all its threads) belong to that run alone; imports and set-up
  happen before the clock starts;
- detection lag: the engine has no per-job "noticed" hook, only its progress callback, whose
  ``finished`` count rises when it sees a job terminal. The k-th rise is matched with the k-th
  success on the emulator (rank-matched); exact if jobs are noticed in the order they end.
  Collect lag is per job: the output file's mtime minus the job's success time;
- the flows run against a ``prefect server start`` this script starts (temporary home, free port);
- P5 runs ``scenario-upscale demo`` and Prefect's empty flow (``prefect_startup.py``) as
  subprocesses, in the same Prefect mode, and reads the demo's first job from its emulator.

    bench/run [--quick] [--only P1,P3] [--p4-output-mb 300] [--p4-upload-mb 40] [--p4-video-mb 180]

Results are also written to ``bench/results/latest.json``. Everything else lives in a temporary
directory removed at the end; the servers it starts are stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from commands.prefect_runtime import LocalPrefectServer, find_free_port  # noqa: E402

KEY, SECRET = "emulator-key", "emulator-secret"
MODEL, FACTOR = "model_upscale-v3", 2
# The large files' models keep their outputs near the input's size: the emulator (on the same
# 2 cores) renders them for real, and P4 is about what the client holds, not the emulator.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "small": (MODEL, {"upscaleFactor": FACTOR}),
    "outputs": (MODEL, {"upscaleFactor": FACTOR}),
    "upload": ("model_scenario-gemini-upscale", {"upscaleFactor": "4k"}),
    "video": (
        "model_seedvr-2-upscale-video",
        {
            "upscaleMode": "target",
            "targetResolution": "1080p",
            "outputQuality": "low",
            "outputWriteMode": "fast",
        },
    ),
}
BLOCK = "bench-throughput"
CASE_TIMEOUT_S = 600.0
SEED_POLL_S = 3.0
# Routes that carry file bytes or drive the emulator itself, not API calls (P2 leaves them out).
BYTE_ROUTES = ("/_cdn", "/_s3/", "/_emulator", "POST /v1/assets", "/v1/uploads")


# -- sizes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One measured run: a fresh process running ``kind`` over ``n`` inputs."""

    name: str
    kind: str  # "engine" | "flow" | "seed"
    n: int
    d: float
    c: int = 50
    inputs: str = "small"  # "small" PNGs, "outputs" noise PNGs, one big "upload" PNG, one "video"

    @property
    def limit(self) -> float:
        return math.ceil(self.n / self.c) * self.d


def plan(args: argparse.Namespace) -> dict[str, list[Case]]:
    """The runs each benchmark needs; a run shared by two benchmarks is measured once."""
    big, mid, growth, seed = (100, 100, (30, 60), 2) if args.quick else (1000, 500, (100, 300), 5)
    main_d2 = [
        Case(f"engine N={big} d=2", "engine", big, 2),
        Case(f"flow N={big} d=2", "flow", big, 2),
    ]
    p4_small = max(1, args.p4_output_mb // 3)
    return {
        "P1": main_d2
        + [Case(f"engine N={big} d=1", "engine", big, 1), Case(f"flow N={big} d=1", "flow", big, 1)]
        + [Case(f"engine N={n} d=2", "engine", n, 2) for n in growth]
        + [Case(f"seed N={seed} d=2", "seed", seed, 2)],
        "P2": main_d2,
        "P3": [
            Case(f"engine N={mid} d=1", "engine", mid, 1),
            Case(f"flow N={mid} d=1", "flow", mid, 1),
        ],
        "P4": [
            Case(
                f"engine outputs {p4_small} MB",
                "engine",
                outputs_count(p4_small),
                1,
                inputs="outputs",
            ),
            Case(
                f"engine outputs {args.p4_output_mb} MB",
                "engine",
                outputs_count(args.p4_output_mb),
                1,
                inputs="outputs",
            ),
            Case(f"engine upload {args.p4_upload_mb} MB PNG", "engine", 1, 1, inputs="upload"),
        ]
        + (
            [Case(f"engine upload {args.p4_video_mb} MB MP4", "engine", 1, 1, inputs="video")]
            if args.p4_video_mb
            else []
        ),
        "CPU": main_d2,
    }


NOISE_SIDE = 512  # a 512x512 noise PNG (~0.8 MB) upscaled x2: ~3.1 MB of output each
OUTPUT_MB_EACH = 3.1


def outputs_count(megabytes: int) -> int:
    return max(1, math.ceil(megabytes / OUTPUT_MB_EACH))


# -- inputs --------------------------------------------------------------------------------------


def write_small(folder: Path, count: int) -> None:
    """``count`` distinct 48x48 PNGs (distinct content: distinct uploads, jobs and charges)."""
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(count):
        image = Image.new("RGB", (48, 48), (i % 256, (i // 256) % 256, 128))
        image.putpixel((i % 48, (i // 48) % 48), (255, 255, 255))
        image.save(folder / f"tile{i:04d}.png")


def noise_png(path: Path, side: int) -> None:
    """An RGB PNG of random pixels: it does not compress, so bytes ≈ 3 x pixels."""
    from PIL import Image

    Image.frombytes("RGB", (side, side), random.randbytes(side * side * 3)).save(
        path, compress_level=1
    )


def noise_mp4(path: Path, megabytes: int) -> None:
    """A lossless H.264 MP4 of 1080p noise frames (~3.8 MB each) of about ``megabytes``."""
    import av
    from PIL import Image

    with av.open(str(path), mode="w", format="mp4") as sink:
        stream = sink.add_stream("libx264", rate=24)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for _ in range(max(1, math.ceil(megabytes / 3.8))):
            image = Image.frombytes("RGB", (1920, 1080), random.randbytes(1920 * 1080 * 3))
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]  # PyAV stub
            sink.mux(stream.encode(frame))
        sink.mux(stream.encode(None))


def write_inputs(root: Path, case: Case, args: argparse.Namespace) -> Path:
    folder = root / f"{case.inputs}-{case.n}"
    if folder.exists():
        return folder
    if case.inputs == "small":
        write_small(folder, case.n)
    elif case.inputs == "outputs":
        folder.mkdir(parents=True)
        for i in range(case.n):
            noise_png(folder / f"noise{i:04d}.png", NOISE_SIDE)
    elif case.inputs == "upload":
        folder.mkdir(parents=True)
        noise_png(folder / "big.png", int(math.sqrt(args.p4_upload_mb * 1e6 / 3)))
    else:
        folder.mkdir(parents=True)
        noise_mp4(folder / "big.mp4", args.p4_video_mb)
    return folder


# -- the child: one measured run ---------------------------------------------------------------


class Sampler:
    """This process's resident set every 50 ms, to find the peak before the first submit."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def status(field_name: str) -> int:
        """A ``/proc/self/status`` value in kB (``VmRSS``, ``VmHWM``)."""
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append((time.time(), self.status("VmRSS")))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, before: float | None = None) -> float | None:
        kept = [kb for t, kb in self.samples if before is None or t <= before]
        return max(kept) / 1024 if kept else None


class Watch:
    """The engine's progress callback: when the first submit happened, when each job was seen
    terminal (every rise of ``finished``)."""

    def __init__(self) -> None:
        self.first_submit: float | None = None
        self.finished_at: list[float] = []

    def __call__(self, progress: Any) -> None:
        now = time.time()
        if self.first_submit is None and progress.submitted:
            self.first_submit = now
        self.finished_at += [now] * (progress.finished - len(self.finished_at))


async def call_engine(spec: dict[str, Any], watch: Watch) -> list[dict[str, Any]]:
    from scenario_upscale.api import ScenarioClient
    from scenario_upscale.batch import UpscaleSpec, run_batch

    async with ScenarioClient(api_key=KEY, api_secret=SECRET, base_url=spec["base_url"]) as client:
        report = await run_batch(
            client,
            spec["inputs"],
            spec["target"],
            [UpscaleSpec(model_id=spec["model"], parameters=spec["params"])],
            max_concurrency=spec["c"],
            on_progress=watch,
        )
    return [r.model_dump(mode="json") for r in report.results]


async def call_flow(spec: dict[str, Any], watch: Watch) -> list[dict[str, Any]]:
    from flows.options import AdvancedSettings
    from flows.reporting import watching_progress
    from flows.upscale import upscale_batch
    from scenario_upscale.batch import UpscaleSpec

    with watching_progress(watch):
        state = await upscale_batch(
            inputs=spec["inputs"],
            target=spec["target"],
            upscales=[UpscaleSpec(model_id=spec["model"], parameters=spec["params"])],
            credentials_block=BLOCK,
            advanced=AdvancedSettings(max_concurrency=spec["c"]),
            return_state=True,
        )
    report = await state.aresult(raise_on_failure=False)
    if isinstance(report, Exception):
        raise report
    return [r.model_dump(mode="json") for r in report.results]


def call_seed(spec: dict[str, Any], watch: Watch) -> list[dict[str, Any]]:
    """The seed document's client: one input at a time, upload, submit, poll every 3 s, fetch."""
    results = []
    target = Path(spec["target"])
    target.mkdir(parents=True, exist_ok=True)
    with httpx.Client(base_url=spec["base_url"], auth=(KEY, SECRET), timeout=60) as http:
        for path in sorted(Path(spec["inputs"]).iterdir()):
            image = base64.b64encode(path.read_bytes()).decode()
            asset = http.post("/assets", json={"image": image, "name": path.name}).json()
            body = {"image": asset["asset"]["id"], **spec["params"]}
            job = http.post(f"/generate/custom/{spec['model']}", json=body).json()["job"]
            watch.first_submit = watch.first_submit or time.time()
            while job["status"] not in ("success", "failure", "canceled"):
                time.sleep(SEED_POLL_S)
                job = http.get(f"/jobs/{job['jobId']}").json()["job"]
            output = http.get(f"/assets/{job['metadata']['assetIds'][0]}").json()["asset"]
            out = target / path.name
            out.write_bytes(http.get(output["url"]).content)
            results.append({"job_id": job["jobId"], "status": job["status"], "outputs": [str(out)]})
    return results


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child process; everything is imported before the clock starts."""
    if spec["kind"] == "flow":
        from blocks.credentials import ScenarioCredentials
        from commands.prefect_runtime import quiet_prefect_console

        quiet_prefect_console("CRITICAL").__enter__()  # for the whole child process
        ScenarioCredentials(api_key=KEY, api_secret=SECRET, base_url=spec["base_url"]).save(
            BLOCK, overwrite=True
        )
        import flows.upscale  # noqa: F401
    else:
        import scenario_upscale.batch  # noqa: F401
    watch = Watch()
    rss_before = Sampler.status("VmRSS") / 1024
    with Sampler() as sampler:
        cpu0 = time.process_time()
        t_call, t0 = time.time(), time.perf_counter()
        if spec["kind"] == "engine":
            results = asyncio.run(call_engine(spec, watch))
        elif spec["kind"] == "flow":
            results = asyncio.run(call_flow(spec, watch))
        else:
            results = call_seed(spec, watch)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    if spec["kind"] == "flow":
        from commands.prefect_runtime import drain_prefect_workers

        drain_prefect_workers()
    return {
        "t_call": t_call,
        "wall": wall,
        "cpu": cpu,
        "rss_before_mb": rss_before,
        "rss_peak_mb": Sampler.status("VmHWM") / 1024,
        "rss_peak_before_submit_mb": sampler.peak_mb(watch.first_submit),
        "first_submit": watch.first_submit,
        "finished_at": watch.finished_at,
        "results": [
            {k: r.get(k) for k in ("job_id", "status", "outputs", "error")} for r in results
        ],
    }


# -- the emulator, in its own process ------------------------------------------------------------

EMULATOR = """
import sys
from scenario_upscale.emulator import EmulatorConfig
from scenario_upscale.emulator.server import serve
serve("127.0.0.1", int(sys.argv[1]), EmulatorConfig())
"""


class Emulator:
    def __init__(self, log: Path) -> None:
        self.port = find_free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", EMULATOR, str(self.port)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.http = httpx.Client(base_url=self.root, auth=(KEY, SECRET), timeout=60)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/_emulator/stats").status_code == 200:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start; see {log}")
            time.sleep(0.2)

    def prepare(self, case: Case) -> None:
        self.http.post("/_emulator/reset").raise_for_status()
        config = {"job_duration_s": case.d, "concurrency_limit": case.c}
        self.http.put("/_emulator/config", json=config).raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get("/_emulator/stats").json()
        return stats

    def cpu(self) -> float:
        return process_cpu(self.process.pid)

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def list_jobs(http: httpx.Client, base: str = "/v1") -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"pageSize": 100}
        if token:
            params["paginationToken"] = token
        page = http.get(f"{base}/jobs", params=params).json()
        jobs += page["jobs"]
        token = page.get("nextPaginationToken")
        if not token or not page["jobs"]:
            return jobs


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def process_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- measuring one case --------------------------------------------------------------------------


@dataclass
class Measured:
    case: Case
    error: str | None = None
    wall: float | None = None
    ratio: float | None = None
    first_job_s: float | None = None
    requests_per_job: float | None = None
    requests_per_job_with_uploads: float | None = None
    requests: dict[str, int] = field(default_factory=dict)
    detect_lag_p95: float | None = None
    collect_lag_p95: float | None = None
    cpu_ms_per_job: float | None = None
    emulator_cpu_s: float | None = None
    rss_before_mb: float | None = None
    rss_peak_mb: float | None = None
    rss_peak_before_submit_mb: float | None = None
    succeeded: int | None = None
    output_mb: float | None = None
    load_avg: float | None = None


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def measure(case: Case, ctx: Context) -> Measured:
    out = Measured(case)
    inputs = write_inputs(ctx.tmp / "inputs", case, ctx.args)
    model, params = MODELS[case.inputs]
    spec = {
        "kind": case.kind,
        "inputs": str(inputs),
        "target": str(ctx.tmp / "out" / case.name.replace(" ", "_").replace("=", "")),
        "base_url": ctx.emulator.root + "/v1",
        "c": case.c,
        "model": model,
        "params": params,
    }
    ctx.emulator.prepare(case)
    emu_cpu0 = ctx.emulator.cpu()
    env = dict(os.environ)
    if ctx.server is not None:
        env["PREFECT_API_URL"] = ctx.server.api_url
    try:
        child = subprocess.run(
            [sys.executable, __file__, "--case", json.dumps(spec)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        out.error = f"timeout after {CASE_TIMEOUT_S:.0f} s"
        return out
    lines = [line for line in child.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if child.returncode or not lines:
        tail = (child.stdout + child.stderr).strip().splitlines()[-3:]
        out.error = f"exit {child.returncode}: " + " | ".join(tail)
        return out
    run = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    out.load_avg = os.getloadavg()[0]
    out.emulator_cpu_s = ctx.emulator.cpu() - emu_cpu0
    stats = ctx.emulator.stats()
    jobs = {j["jobId"]: j for j in list_jobs(ctx.emulator.http)}
    results = run["results"]
    out.succeeded = sum(r["status"] == "success" for r in results)
    if out.succeeded != case.n or stats["jobs_created"] != case.n:
        out.error = (
            f"{out.succeeded}/{case.n} succeeded, {stats['jobs_created']} jobs created: "
            + "; ".join({str(r.get("error")) for r in results if r["status"] != "success"})[:300]
        )
    out.wall = run["wall"]
    out.ratio = run["wall"] / case.limit
    created = [epoch(j["createdAt"]) for j in jobs.values()]
    out.first_job_s = min(created) - run["t_call"] if created else None
    out.requests = stats["requests"]
    api = sum(
        n for route, n in stats["requests"].items() if not any(b in route for b in BYTE_ROUTES)
    )
    uploads = sum(
        n for r, n in stats["requests"].items() if "POST /v1/assets" in r or "/v1/uploads" in r
    )
    out.requests_per_job = api / case.n
    out.requests_per_job_with_uploads = (api + uploads) / case.n
    success = {
        job_id: epoch(next(e["date"] for e in j["statusHistory"] if e["status"] == "success"))
        for job_id, j in jobs.items()
        if j["status"] == "success"
    }
    if case.kind != "seed":
        noticed = sorted(run["finished_at"])
        out.detect_lag_p95 = p95(
            [n - s for n, s in zip(noticed, sorted(success.values()), strict=False)]
        )
    collect, size = [], 0
    for r in results:
        if r["job_id"] in success and r["outputs"]:
            stat = os.stat(r["outputs"][0])
            collect.append(stat.st_mtime - success[r["job_id"]])
            size += sum(os.stat(o).st_size for o in r["outputs"])
    out.collect_lag_p95 = p95(collect)
    out.output_mb = size / 1e6
    out.cpu_ms_per_job = 1000 * run["cpu"] / case.n
    out.rss_before_mb = run["rss_before_mb"]
    out.rss_peak_mb = run["rss_peak_mb"]
    out.rss_peak_before_submit_mb = run["rss_peak_before_submit_mb"]
    return out


# -- P5: start-up ----------------------------------------------------------------------------------


def demo_first_submit(home: Path, tmp: Path, api_url: str | None) -> float:
    """Seconds from launching ``scenario-upscale demo`` to its first job on its own emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(HOME=str(tmp), PREFECT_HOME=str(home), PREFECT_SERVER_API_PORT=str(find_free_port()))
    if api_url:
        env["PREFECT_API_URL"] = api_url
    work = tmp / f"demo-{time.monotonic_ns()}"
    work.mkdir()
    t0 = time.time()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "commands.cli",
            "demo",
            "--inputs",
            str(work / "in"),
            "--output",
            str(work / "out"),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first: float | None = None
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        if first is None and "Scenario emulator: " in line:
            root = line.split("Scenario emulator: ")[1].split()[0].removesuffix("/v1")
            first = _first_job(root, process)
    process.wait()
    if first is None:
        raise RuntimeError(f"demo exit {process.returncode}: " + " | ".join(lines[-3:]))
    return first - t0


def _first_job(root: str, process: subprocess.Popen[str]) -> float | None:
    with httpx.Client(base_url=root, auth=(KEY, SECRET), timeout=10) as http:
        while process.poll() is None:
            if http.get("/_emulator/stats").json()["jobs_created"]:
                return min(epoch(j["createdAt"]) for j in list_jobs(http))
            time.sleep(0.05)
    return None


def measure_startup(ctx: Context) -> dict[str, Any]:
    """Demo launch → first submit against the empty flow's start, per Prefect mode."""
    from prefect_startup import OPTIONS, run_once

    options = {o.name: o for o in OPTIONS}
    modes = [("running-server", ctx.server.api_url if ctx.server else None)]
    if not ctx.args.quick:
        modes.insert(0, ("own-server-early", None))
    found: dict[str, Any] = {}
    for mode, api_url in modes:
        home = ctx.tmp / f"p5-{mode}"
        try:
            run_once(options[mode], home, ctx.tmp, api_url)  # warm: the database exists after
            empty = run_once(options[mode], home, ctx.tmp, api_url).flow_start
            demo = demo_first_submit(home, ctx.tmp, api_url)
            found[mode] = {
                "empty_flow_s": empty,
                "demo_first_submit_s": demo,
                "ratio": demo / empty,
            }
        except Exception as error:  # a failed mode is reported, the others go on
            found[mode] = {"error": f"{type(error).__name__}: {str(error)[-300:]}"}
        say(f"P5 {mode}: {found[mode]}")
    return found


# -- orchestration and the report -----------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    tmp: Path
    emulator: Emulator
    server: LocalPrefectServer | None


def say(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class Line:
    name: str
    value: str
    goal: str
    verdict: str  # "pass" | "FAIL" | "info" | "ERROR"

    def show(self) -> str:
        return f"{self.name:50} {self.value:48} goal {self.goal:9} {self.verdict}"


def verdict(value: float | None, goal: float) -> str:
    return "ERROR" if value is None else ("pass" if value <= goal else "FAIL")


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def lines_for(bench: str, runs: dict[str, Measured], extra: dict[str, Any]) -> list[Line]:
    out: list[Line] = []

    def broken(m: Measured) -> Line | None:
        if m.error and m.wall is None:
            return Line(f"{bench} {m.case.name}", f"FAILED: {m.error}"[:44], "", "ERROR")
        return None

    for m in [runs[c.name] for c in extra["cases"]]:
        if (line := broken(m)) is not None:
            out.append(line)
            continue
        note = " (" + m.error[:30] + ")" if m.error else ""
        if bench == "P1" and m.case.kind == "seed":
            # Extrapolated to the issue's N=1000, C=50, d=2 s (limit 40 s): it runs one at a time.
            per_job = (m.wall or 0) / m.case.n
            out.append(
                Line(
                    f"P1 baseline seed client N={m.case.n} d=2",
                    f"{per_job:.2f} s/job; N=1000: x{per_job * 1000 / 40:.0f} (extrapolated)",
                    "-",
                    "info",
                )
            )
        elif bench == "P1":
            out.append(
                Line(
                    f"P1 {m.case.name} C={m.case.c} wall/limit",
                    f"{m.wall:.1f}/{m.case.limit:.0f} s = {m.ratio:.2f}{note}",
                    "<= 1.05",
                    verdict(m.ratio, 1.05) if not m.error else "ERROR",
                )
            )
            out.append(
                Line(
                    f"P1 {m.case.name} call -> first job",
                    fmt(m.first_job_s, ".1f", " s"),
                    "<= 3 s",
                    verdict(m.first_job_s, 3),
                )
            )
        elif bench == "P2":
            out.append(
                Line(
                    f"P2 {m.case.name} API requests/job",
                    f"{fmt(m.requests_per_job)} "
                    f"({fmt(m.requests_per_job_with_uploads)} with uploads)",
                    "<= 1.3",
                    verdict(m.requests_per_job, 1.3),
                )
            )
            out.append(
                Line(
                    f"P2 {m.case.name} detection lag p95 (rank)",
                    fmt(m.detect_lag_p95, ".2f", " s"),
                    "<= 0.5 s",
                    verdict(m.detect_lag_p95, 0.5),
                )
            )
            out.append(
                Line(
                    f"P2 {m.case.name} collect lag p95",
                    fmt(m.collect_lag_p95, ".2f", " s"),
                    "-",
                    "info",
                )
            )
        elif bench == "P4":
            value = (
                f"{fmt(m.rss_peak_mb, '.0f')} MB (base {fmt(m.rss_before_mb, '.0f')}, "
                f"{fmt(m.output_mb, '.0f')} MB out"
            )
            if m.case.inputs in ("upload", "video"):
                value += f"; upload {fmt(m.rss_peak_before_submit_mb, '.0f')}"
            out.append(
                Line(
                    f"P4 {m.case.name} peak RSS",
                    value + ")",
                    "<= 250 MB",
                    verdict(m.rss_peak_mb, 250),
                )
            )
        elif bench == "CPU":
            out.append(
                Line(
                    f"CPU {m.case.name} per job",
                    fmt(m.cpu_ms_per_job, ".1f", " ms"),
                    "<= 10 ms",
                    verdict(m.cpu_ms_per_job, 10),
                )
            )
    if bench == "P4":
        # In input count: the engine's P1 runs of small PNGs, when they were measured too.
        by_count = sorted(
            (m.case.n, m.rss_peak_mb)
            for m in runs.values()
            if m.case.kind == "engine" and m.case.inputs == "small" and m.case.d == 2
            if m.rss_peak_mb is not None
        )
        if by_count:
            value = ", ".join(f"N={n}: {mb:.0f}" for n, mb in by_count) + " MB"
            out.append(Line("P4 engine peak RSS by input count (P1 runs)", value, "flat", "info"))
    if bench == "P3":
        engine, flow = (runs[c.name] for c in extra["cases"])
        ratio = flow.wall / engine.wall if flow.wall and engine.wall else None
        out.append(
            Line(
                f"P3 flow/engine N={engine.case.n} d=1",
                f"{fmt(flow.wall, '.1f')}/{fmt(engine.wall, '.1f')} s = {fmt(ratio)}",
                "<= 1.10",
                verdict(ratio, 1.10),
            )
        )
    return out


def startup_lines(found: dict[str, Any]) -> list[Line]:
    out = []
    for mode, figures in found.items():
        if "error" in figures:
            out.append(
                Line(
                    f"P5 demo first submit / empty flow, {mode}",
                    f"FAILED: {figures['error']}"[:44],
                    "",
                    "ERROR",
                )
            )
            continue
        out.append(
            Line(
                f"P5 demo first submit / empty flow, {mode}",
                f"{figures['demo_first_submit_s']:.1f}/{figures['empty_flow_s']:.1f} s"
                f" = {figures['ratio']:.2f}",
                "<= 1.2",
                verdict(figures["ratio"], 1.2),
            )
        )
    return out


def runs_table(runs: dict[str, Measured]) -> list[str]:
    """Every run's figures: the benchmark lines above are drawn from these."""
    rows = [
        f"{'run':26} {'wall s':>7} {'limit':>5} {'ratio':>5} {'1st job':>7} {'req/job':>7} "
        f"{'detect95':>8} {'collect95':>9} {'cpu ms/job':>10} {'emu cpu s':>9} {'peak MB':>7} "
        f"{'load':>4}"
    ]
    for name, m in runs.items():
        rows.append(
            f"{name:26} {fmt(m.wall, '.1f'):>7} {m.case.limit:5.0f} {fmt(m.ratio):>5} "
            f"{fmt(m.first_job_s, '.1f'):>7} {fmt(m.requests_per_job):>7} "
            f"{fmt(m.detect_lag_p95):>8} {fmt(m.collect_lag_p95):>9} "
            f"{fmt(m.cpu_ms_per_job, '.1f'):>10} {fmt(m.emulator_cpu_s, '.1f'):>9} "
            f"{fmt(m.rss_peak_mb, '.0f'):>7} {fmt(m.load_avg, '.1f'):>4}"
            + (f"  {m.error[:80]}" if m.error else "")
        )
    return rows


@contextlib.contextmanager
def prefect_server(tmp: Path, needed: bool) -> Iterator[LocalPrefectServer | None]:
    if not needed:
        yield None
        return
    server = LocalPrefectServer(tmp / "prefect-home", log_file=tmp / "prefect-server.log")
    server.start()
    try:
        server.wait_until_healthy(180)
        yield server
    finally:
        server.stop()


def commit() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", *argv], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--", "flows", "scenario_upscale", "commands")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~2-minute smoke run")
    parser.add_argument("--only", default="P1,P2,P3,P4,P5,CPU", help="e.g. P1,P3")
    parser.add_argument(
        "--p4-output-mb", type=int, help="P4: MB of outputs (default 300, quick 30)"
    )
    parser.add_argument(
        "--p4-upload-mb", type=int, help="P4: size of the PNG uploaded (default 40, quick 10)"
    )
    parser.add_argument(
        "--p4-video-mb",
        type=int,
        help="P4: size of the MP4 uploaded, 0: none (default 180, quick 0)",
    )
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "latest.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print("BENCH_RESULT " + json.dumps(run_case(json.loads(args.case))), flush=True)
        return
    args.p4_output_mb = args.p4_output_mb or (30 if args.quick else 300)
    args.p4_upload_mb = args.p4_upload_mb or (10 if args.quick else 40)
    if args.p4_video_mb is None:
        args.p4_video_mb = 0 if args.quick else 180
    wanted = [b.strip().upper() for b in args.only.split(",") if b.strip()]
    if unknown := sorted(set(wanted) - {*plan(args), "P5"}):
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from P1,P2,P3,P4,P5,CPU")
    plans = {b: cases for b, cases in plan(args).items() if b in wanted}
    cases = list({c.name: c for cs in plans.values() for c in cs}.values())
    started, load0 = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="throughput-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for key in [k for k in os.environ if k.startswith("PREFECT_")]:
            del os.environ[key]
        os.environ.update(
            PREFECT_HOME=str(tmp / "prefect-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="CRITICAL",
        )
        emulator = Emulator(tmp / "emulator.log")
        needs_server = any(c.kind == "flow" for c in cases) or "P5" in wanted
        try:
            with prefect_server(tmp, needs_server) as server:
                ctx = Context(args, tmp, emulator, server)
                runs: dict[str, Measured] = {}
                for case in cases:
                    say(f"{case.name}: running")
                    runs[case.name] = measure(case, ctx)
                    m = runs[case.name]
                    say(
                        f"{case.name}: {m.error or ''} wall {fmt(m.wall, '.1f')} s, "
                        f"ratio {fmt(m.ratio)}"
                    )
                startup = measure_startup(ctx) if "P5" in wanted else {}
        finally:
            emulator.stop()
    lines: list[Line] = []
    for bench, bench_cases in plans.items():
        lines += lines_for(bench, runs, {"cases": bench_cases})
    lines += startup_lines(startup)
    load1 = os.getloadavg()
    header = (
        f"commit {commit()}, {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC, "
        f"{os.cpu_count()} cores, load average {load0[0]:.1f} -> {load1[0]:.1f}, "
        f"{'--quick' if args.quick else 'full'} run in {time.time() - started:.0f} s"
    )
    print(header)
    for line in lines:
        print(line.show())
    if runs:
        print()
        print("\n".join(runs_table(runs)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "header": header,
                "lines": [asdict(line) for line in lines],
                "runs": {name: asdict(m) for name, m in runs.items()},
                "startup": startup,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
