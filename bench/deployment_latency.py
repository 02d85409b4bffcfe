"""How soon do served deployments start their runs? Event -> run, run -> next run, schedule -> run.

The tests check that these runs happen, with the right parameters; how fast depends on the
machine's load, so it is measured here and printed, never asserted. The script starts, in a
temporary directory removed at the end:

* ``prefect server start --no-ui`` (its own ``PREFECT_HOME``, SQLite, a free port), with the
  settings of the test server (events flushed every 0.5 s);
* the Scenario emulator in a thread (0.5 s jobs) and a ``ScenarioCredentials`` block for it;
* ``scenario-upscale serve`` with a ``--interval`` schedule and ``PREFECT_RUNNER_POLL_FREQUENCY=1``
  (Prefect's default of 10 s adds up to 10 s to every figure below).

Then it emits ``asset.uploaded`` ``--events`` times, one after the other (2 images each), and
prints per event: the flow run created by the server's automation, the run Running, and
``publish-upscaled`` Running after the batch's completion event. Last, for the recurring
deployment: how late each of the first ``--scheduled`` runs started after its scheduled time
(negative: the runner's prefetch started it early) and how many the overlap guard cancelled.

    scripts/uv run --frozen python bench/deployment_latency.py [--events 3] [--scheduled 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from commands.prefect_runtime import find_free_port, stop_process_group  # noqa: E402

INTERVAL_S = 6.0
PATIENCE_S = 180.0
T = TypeVar("T")


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield
    finally:
        stop_process_group(process, timeout=30)


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {PATIENCE_S:g} s waiting for {what}")
        time.sleep(0.2)


async def _until(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    deadline = time.monotonic() + PATIENCE_S
    while (value := await check()) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {PATIENCE_S:g} s waiting for {what}")
        await asyncio.sleep(0.1)
    return value


def _images(folder: Path, n: int) -> None:
    # Content of their own: the batch journal would skip a copy of an earlier event's image.
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        Image.new("RGB", (40 + i, 30), (n * 37 % 255, 90 + i, 160)).save(
            folder / f"event{n}-{i}.png"
        )


async def measure(root: Path, events: int, scheduled: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.objects import FlowRun
    from prefect.events import emit_event

    from deployments.definitions import (
        ASSET_UPLOADED,
        NEW_ASSETS_NIGHTLY,
        PUBLISH_ON_BATCH_COMPLETED,
        UPSCALE_ON_ASSET_UPLOADED,
    )

    async with get_client() as client:

        async def runs_of(name: str) -> list[FlowRun]:
            found = await client.read_deployment_by_name(name)
            ids = DeploymentFilterId(any_=[found.id])
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=ids), limit=200
            )

        async def one_event(n: int) -> None:
            landing = root / f"landing-{n}"
            _images(landing, n)
            before = {r.id for r in await runs_of(UPSCALE_ON_ASSET_UPLOADED)}
            emitted = datetime.now(UTC)
            emit_event(
                event=ASSET_UPLOADED,
                resource={"prefect.resource.id": f"asset.bench.{n}"},
                payload={"location": str(landing)},
            )

            async def started() -> FlowRun | None:
                runs = await runs_of(UPSCALE_ON_ASSET_UPLOADED)
                return next((r for r in runs if r.id not in before and r.start_time), None)

            run = await _until(started, f"the run of event {n}")

            async def finished() -> FlowRun | None:
                current = await client.read_flow_run(run.id)
                return current if current.state and current.state.is_final() else None

            done = await _until(finished, f"the end of the run of event {n}")

            async def published() -> FlowRun | None:
                for r in await runs_of(PUBLISH_ON_BATCH_COMPLETED):
                    if f"event{n}-" in str(r.parameters.get("outputs", [])):
                        return r if r.start_time else None
                return None

            publish = await _until(published, f"publish-upscaled after event {n}")
            assert run.created and run.start_time and done.end_time and publish.start_time
            created = (run.created - emitted).total_seconds()
            running = (run.start_time - emitted).total_seconds()
            handoff = (publish.start_time - done.end_time).total_seconds()
            print(
                f"event {n}: asset.uploaded -> flow run created {created:.2f} s, Running "
                f"{running:.2f} s; batch Completed -> publish-upscaled Running {handoff:.2f} s"
            )

        for n in range(events):
            await one_event(n)

        async def due_runs() -> list[FlowRun] | None:
            now = datetime.now(UTC)
            runs = [
                r
                for r in await runs_of(NEW_ASSETS_NIGHTLY)
                if r.expected_start_time and r.expected_start_time <= now
            ]
            final = [r for r in runs if r.state and r.state.is_final()]
            return final if len(final) >= scheduled else None

        runs = sorted(
            await _until(due_runs, f"{scheduled} scheduled runs"),
            key=lambda r: r.expected_start_time or datetime.min.replace(tzinfo=UTC),
        )
        delays = [
            round((r.start_time - r.expected_start_time).total_seconds(), 2)
            for r in runs
            if r.start_time and r.expected_start_time and not (r.state and r.state.is_cancelled())
        ]
        cancelled = sum(1 for r in runs if r.state and r.state.is_cancelled())
        print(
            f"schedule every {INTERVAL_S:g} s: start delays {delays} s "
            f"(the first one includes the serve process's start); "
            f"{cancelled} of {len(runs)} cancelled by the overlap guard"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3, help="asset.uploaded events to time")
    parser.add_argument("--scheduled", type=int, default=4, help="scheduled runs to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="deployment-latency-") as tmp:
        root = Path(tmp)
        port = find_free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        settings = {
            "PREFECT_HOME": str(root / "home"),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        }
        os.environ.update(settings)  # before Prefect is imported: this process is a client too
        env = {**os.environ, **settings}
        server = [sys.executable, "-m", "prefect", "server", "start", "--no-ui"]
        started = time.monotonic()
        with _process([*server, "--host", "127.0.0.1", "--port", str(port)], env, root / "s.log"):
            _wait(lambda: _healthy(api_url), "the Prefect server")
            print(f"Prefect server healthy after {time.monotonic() - started:.1f} s")
            from blocks.credentials import ScenarioCredentials
            from deployments.definitions import ALL_DEPLOYMENTS
            from scenario_upscale.emulator import EmulatorConfig, EmulatorServer

            with EmulatorServer(EmulatorConfig(job_duration_s=0.5)) as emulator:
                ScenarioCredentials(
                    api_key=emulator.api_key,
                    api_secret=emulator.api_secret,
                    base_url=emulator.base_url,
                ).save("bench-latency", overwrite=True)
                folders = {name: root / name for name in ("source", "target", "published")}
                for folder in folders.values():
                    folder.mkdir()
                serve = [sys.executable, "-m", "commands.cli", "serve"]
                for name, folder in folders.items():
                    serve += [f"--{name}", str(folder)]
                serve += ["--staging", str(root / "staging"), "--credentials-block"]
                serve += ["bench-latency", "--interval", str(INTERVAL_S), "--prefetch-seconds", "3"]
                started = time.monotonic()
                with _process(serve, env, root / "serve.log"):
                    _wait(lambda: _served(api_url, ALL_DEPLOYMENTS), "the served deployments")
                    print(f"deployments served after {time.monotonic() - started:.1f} s")
                    try:
                        asyncio.run(measure(root, args.events, args.scheduled))
                    except SystemExit:
                        log = (root / "serve.log").read_text(errors="replace").splitlines()
                        print("\n".join(["serve's last lines:", *log[-40:]]))
                        raise


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _served(api_url: str, names: tuple[str, ...]) -> bool:
    with httpx.Client(base_url=api_url, timeout=5) as http:
        return all(http.get(f"/deployments/name/{n}").status_code == 200 for n in names)


if __name__ == "__main__":
    main()
