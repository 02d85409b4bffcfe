"""Scale-out on Prefect's own distributed set-up: PostgreSQL, a process work pool, two workers.

One stack for the module (``commands.stack.LocalStack``: PostgreSQL in a temporary folder, a
Prefect server on it, the pool and two workers that each run one flow run at a time, so shards
spread over both) and one emulator of its own with short jobs and a ceiling of ``CEILING`` jobs
in flight. The flows run as they would across machines: a driver process (the parent flow, or
``run_deployment`` calls) against the stack's API, the shards on the workers. PostgreSQL is
installed with apt when it is missing; skipped only where that is impossible, or it cannot start.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from commands.stack import LocalStack, PostgresUnavailable, postgres_bin
from flows.reporting import BATCH_COMPLETED, RESULTS_ARTIFACT_KEY
from scenario_upscale.batch import BatchReport
from scenario_upscale.emulator import EmulatorConfig, EmulatorServer
from scenario_upscale.emulator.stats import EmulatorStats
from tests.support import apt_install, write_images

CEILING = 6
"""The emulator's concurrency ceiling, and the team's global concurrency limit."""
BLOCK = "scale-out"

_DRIVER = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.deployments import run_deployment
from blocks.credentials import ScenarioCredentials
from commands.prefect_runtime import drain_prefect_workers
from flows.sharded import upscale_sharded

async def main(emulator, job):
    await ScenarioCredentials(
        api_key=emulator["key"], api_secret=emulator["secret"], base_url=emulator["url"]
    ).save(emulator["block"], overwrite=True)
    async with get_client() as client:
        limits = {limit.name for limit in await client.read_global_concurrency_limits()}
        if job["limit"] not in limits:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=job["limit"], limit=job["ceiling"])
            )
    common = {"credentials_block": emulator["block"], "concurrency_limit": job["limit"],
              "max_concurrency": job["ceiling"], "target": job["target"]}
    if job["kind"] == "sharded":
        report = await upscale_sharded(inputs=job["inputs"], shard_inputs=job["shard_inputs"],
                                       poll_s=1.0, **common)
        print(json.dumps([report.model_dump(mode="json")]))
        return
    advanced = {"concurrency_limit": common.pop("concurrency_limit"),
                "max_concurrency": common.pop("max_concurrency")}
    runs = await asyncio.gather(*(
        run_deployment("upscale-batch/upscale-folder",
                       parameters={"inputs": inputs, "advanced": advanced, **common},
                       poll_interval=1)
        for inputs in job["inputs"]
    ))
    reports = [await run.state.aresult() for run in runs]
    print(json.dumps([r.model_dump(mode="json") for r in reports]))

asyncio.run(main(json.loads(sys.argv[1]), json.loads(sys.argv[2])))
drain_prefect_workers()  # the parent's batch event reaches the server before this process ends
"""


@pytest.fixture(scope="module")
def scale_emulator() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(job_duration_s=0.3, concurrency_limit=CEILING)
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    try:
        postgres_bin()
    except PostgresUnavailable:
        if why := apt_install("postgresql"):
            pytest.skip(f"PostgreSQL is not installed and could not be: {why}")
    try:
        local = LocalStack(tmp_path_factory.mktemp("stack"), workers=2, runs_per_worker=1)
        local.start()
    except PostgresUnavailable as error:
        pytest.skip(f"PostgreSQL cannot be started here: {error}")
    try:
        yield local
    finally:
        local.stop()


async def _drive(
    stack: LocalStack, emulator: EmulatorServer, job: dict[str, Any]
) -> asyncio.subprocess.Process:
    about = {
        "key": emulator.api_key,
        "secret": emulator.api_secret,
        "url": emulator.base_url,
        "block": BLOCK,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DRIVER,
        json.dumps(about),
        json.dumps({"limit": "scale-out-team", "ceiling": CEILING, **job}),
        env=stack.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _reports(driver: asyncio.subprocess.Process) -> list[BatchReport]:
    async with asyncio.timeout(600):
        out, err = await driver.communicate()
    assert driver.returncode == 0, err.decode()[-4000:]
    last = out.decode().strip().splitlines()[-1]
    return [BatchReport.model_validate(r) for r in json.loads(last)]


async def _shard_runs(stack: LocalStack) -> list[dict[str, Any]]:
    """The flow runs of ``upscale-batch`` the workers took, with their labels and states."""
    async with httpx.AsyncClient(base_url=stack.server.api_url, timeout=10) as http:
        body = {"flows": {"name": {"any_": ["upscale-batch"]}}}
        response = await http.post("/flow_runs/filter", json=body)
        response.raise_for_status()
        return list(response.json())


async def _api(stack: LocalStack, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=stack.server.api_url, timeout=10) as http:
        response = await http.post(path, json=body)
        response.raise_for_status()
        return response.json()


async def _results_tables(stack: LocalStack) -> int:
    body = {"artifacts": {"key": {"any_": [RESULTS_ARTIFACT_KEY]}}}
    return len(await _api(stack, "/artifacts/filter", body))


async def _batch_events_since(stack: LocalStack, since: datetime) -> list[dict[str, Any]]:
    """The ``batch.completed`` events since ``since``, once at least one is stored."""
    window = {"since": since.isoformat(), "until": (since + timedelta(hours=1)).isoformat()}
    body = {"filter": {"occurred": window, "event": {"name": [BATCH_COMPLETED]}}, "limit": 50}
    async with asyncio.timeout(120):  # the server stores events in batches
        while True:
            events = (await _api(stack, "/events/filter", body))["events"]
            if events:
                return list(events)
            await asyncio.sleep(0.5)


def _paid_once_each(stats: EmulatorStats, inputs: int) -> None:
    """Every input charged exactly once, and nothing refused by the ceiling."""
    assert len(stats.charges_by_content) == inputs
    assert {c.net_charges for c in stats.charges_by_content.values()} == {1}
    assert stats.jobs_created == inputs
    # The shards together never went past the team's ceiling: no submit was refused by it.
    assert stats.rate_limited == 0


async def test_two_runs_on_overlapping_inputs_on_two_workers_pay_once_per_input(
    stack: LocalStack, scale_emulator: EmulatorServer, tmp_path: Path
) -> None:
    scale_emulator.reset()
    images = write_images(tmp_path / "in", 30)
    first, second = [str(p) for p in images[:20]], [str(p) for p in images[10:]]
    target = str(tmp_path / "out")

    driver = await _drive(
        stack, scale_emulator, {"kind": "runs", "inputs": [first, second], "target": target}
    )
    reports = await _reports(driver)

    assert all(r.ok for r in reports), [r.summary() for r in reports]
    _paid_once_each(scale_emulator.stats(), 30)
    jobs = {r.source: r.job_id for report in reports for r in report.results}
    for report in reports:  # the ten inputs both runs had share one job
        assert all(jobs[r.source] == r.job_id for r in report.results)
    workers = {run["labels"].get("prefect.worker.name") for run in await _shard_runs(stack)}
    assert workers == {"worker-1", "worker-2"}
    assert len(list((tmp_path / "out").glob("*.png"))) == 30


async def test_a_sharded_batch_survives_a_worker_killed_mid_shard(
    stack: LocalStack, scale_emulator: EmulatorServer, tmp_path: Path
) -> None:
    scale_emulator.reset()
    count = 240
    write_images(tmp_path / "in", count, size=(24, 16))
    before = {run["id"] for run in await _shard_runs(stack)}
    tables_before, since = await _results_tables(stack), datetime.now(UTC)
    target = str(tmp_path / "out")
    # Two shards, one per worker (each runs one flow run at a time).
    job = {"kind": "sharded", "inputs": str(tmp_path / "in"), "shard_inputs": count // 2}

    driver = await _drive(stack, scale_emulator, {**job, "target": target})
    # Kill a worker once its shard has jobs on the emulator: the shard dies with jobs in flight.
    async with asyncio.timeout(300):
        while True:
            running = [
                run
                for run in await _shard_runs(stack)
                if run["id"] not in before
                and run["state_type"] == "RUNNING"
                and run["labels"].get("prefect.worker.name")
            ]
            if running and scale_emulator.stats().jobs_created >= 10:
                break
            await asyncio.sleep(0.5)
    victim = str(running[0]["labels"]["prefect.worker.name"])
    stack.kill_worker(victim)
    [report] = await _reports(driver)

    assert report.ok, report.summary()
    assert len(report.results) == count
    stats = scale_emulator.stats()
    _paid_once_each(stats, count)
    runs = [run for run in await _shard_runs(stack) if run["id"] not in before]
    assert {run["labels"].get("prefect.worker.name") for run in runs} == {"worker-1", "worker-2"}
    crashed = [run for run in runs if run["state_type"] == "CRASHED"]
    assert [run["labels"]["prefect.worker.name"] for run in crashed] == [victim]
    assert len(runs) == 3  # two shards, the killed one run again
    outputs = [Path(o) for r in report.results for o in r.outputs]
    assert len(outputs) == count and all(o.is_file() for o in outputs)
    # The parent alone announces the batch: one results table, one batch event with every output.
    assert await _results_tables(stack) == tables_before + 1
    [event] = await _batch_events_since(stack, since)
    assert len(event["payload"]["outputs"]) == count
