"""The deployments served for real: schedule, event triggers, chaining, against a real server.

One ``scenario-upscale serve`` subprocess for the module (two servers of the same deployments
interfere), pointed at the session Prefect server and at the Scenario emulator of this process.
Every wait polls for a condition with a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.events import emit_event

from blocks.credentials import ScenarioCredentials
from deployments.definitions import (
    ALL_DEPLOYMENTS,
    ASSET_UPLOADED,
    NEW_ASSETS_NIGHTLY,
    PUBLISH_ON_BATCH_COMPLETED,
    UPSCALE_ON_ASSET_UPLOADED,
    UPSCALE_ON_DEMAND,
    DeploymentSettings,
)
from flows.pipeline import asset_pipeline, outputs_of, thumbnail_name
from scenario_upscale.emulator import EmulatorServer
from scenario_upscale.watermark import load_watermark, watermark_path
from tests.prefect_server import PrefectTestServer
from tests.support import ServeProcess, serving, write_images

pytestmark = pytest.mark.prefect_server

REPO = Path(__file__).parents[2]
INTERVAL_S = 6.0
"""The recurring deployment's schedule in these tests (a nightly cron in real life)."""
PATIENCE_S = 120.0
"""How long a wait may take before the test calls it stuck: generous, since a loaded machine
slows every step (a limit on the time itself would fail good runs; bench/ measures it)."""
T = TypeVar("T")


@dataclass(frozen=True)
class Served:
    """The module's serve process and the folders its deployments use."""

    serve: ServeProcess
    source: Path
    target: Path
    published: Path
    staging: Path
    credentials_block: str


def all_exist(paths: Iterable[str | Path]) -> bool:
    return all(Path(p).is_file() for p in paths)


def make_images(folder: Path, prefix: str, count: int, size: tuple[int, int]) -> list[Path]:
    """PNGs with names and content of their own: no output of another test matches them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:02d}.png"
        Image.new("RGB", (size[0] + i, size[1]), (30 * i % 255, 140, 60)).save(path)
        paths.append(path)
    return paths


async def eventually(
    check: Callable[[], Awaitable[T | None]], within_s: float, what: str, served: Served | None
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        value = await check()
        if value:
            return value
        if served is not None:
            served.serve.fail_if_exited()
        if time.monotonic() > deadline:
            tail = served.serve.log_tail() if served else ""
            pytest.fail(f"timed out after {within_s:g} s waiting for {what}\n{tail}")
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def credentials_block(prefect_server: PrefectTestServer, emulator: EmulatorServer) -> str:
    """A ScenarioCredentials block on the test server, pointing at the emulator."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    name = f"scenario-deployments-{uuid.uuid4().hex[:8]}"
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        ScenarioCredentials(
            api_key=emulator.api_key,
            api_secret=emulator.api_secret,
            base_url=emulator.base_url,
            timeout_s=10,
        ).save(name, overwrite=True)
    return name


@pytest.fixture(scope="module")
def served(
    prefect_server: PrefectTestServer,
    credentials_block: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """``scenario-upscale serve`` for this module, stopped with SIGTERM at the end."""
    root = tmp_path_factory.mktemp("deployments")
    folders = {name: root / name for name in ("source", "target", "published", "staging")}
    for folder in folders.values():
        folder.mkdir()
    options = [
        *("--source", str(folders["source"]), "--target", str(folders["target"])),
        *("--published", str(folders["published"]), "--staging", str(folders["staging"])),
        *("--credentials-block", credentials_block, "--interval", str(INTERVAL_S)),
        # Start a scheduled run's process 3 s ahead (~2.5 s of imports here): Prefect's 10 s
        # would propose run N+1 while run N holds the nightly's single slot, and cancel it.
        *("--prefetch-seconds", "3"),
    ]
    with serving(
        options,
        api_url=prefect_server.api_url,
        env=prefect_server.env,
        cwd=REPO,
        log=root / "serve.log",
        deployments=ALL_DEPLOYMENTS,
        automations={"upscale-on-asset-uploaded", "publish-on-batch-completed"},
        timeout_s=PATIENCE_S,
    ) as serve:
        yield Served(serve=serve, credentials_block=credentials_block, **folders)


@pytest.fixture
async def client(prefect_client_settings: PrefectTestServer) -> AsyncIterator[PrefectClient]:
    async with get_client() as prefect:
        yield prefect


async def runs_of(client: PrefectClient, deployment: str) -> list[FlowRun]:
    found = await client.read_deployment_by_name(deployment)
    return await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])), limit=200
    )


# ----------------------------------------------------------------------------------------------


async def test_recurring_run_upscales_only_what_is_new_on_schedule(
    served: Served, client: PrefectClient, fresh_emulator: EmulatorServer
) -> None:
    mark_file = watermark_path(
        str(served.target), str(served.source), DeploymentSettings().upscales
    )
    write_images(served.source, 3)

    async def first_pass_done() -> bool:
        mark = load_watermark(mark_file, str(served.source))
        return mark.modified_at is not None and len(list(served.target.glob("tile*@*.png"))) == 3

    await eventually(first_pass_done, PATIENCE_S, "a scheduled run to upscale the 3 inputs", served)
    assert fresh_emulator.stats().jobs_created == 3
    quiet_since = datetime.now(UTC)

    async def two_later_runs() -> list[FlowRun] | None:
        runs = await runs_of(client, NEW_ASSETS_NIGHTLY)
        later = [
            r
            for r in runs
            if r.expected_start_time
            and r.expected_start_time > quiet_since
            and r.state
            and r.state.is_completed()
        ]
        return later if len(later) >= 2 else None

    await eventually(two_later_runs, 4 * INTERVAL_S + PATIENCE_S, "two more scheduled runs", served)
    # Nothing new arrived: those runs submitted no job (and paid for nothing).
    stats = fresh_emulator.stats()
    assert stats.jobs_created == 3, stats

    # Something new arrives: the next run upscales that, and only that.
    newcomer = served.source / "newcomer.png"
    Image.new("RGB", (33, 21), (200, 10, 10)).save(newcomer)

    async def newcomer_done() -> bool:
        return any(served.target.glob("newcomer@*.png"))

    await eventually(
        newcomer_done, 3 * INTERVAL_S + PATIENCE_S, "a scheduled run to take the newcomer", served
    )
    assert fresh_emulator.stats().jobs_created == 4

    # The schedule: a run every INTERVAL_S, except runs cancelled because the previous one
    # still worked (the overlap guard; the next run caught up). How late runs start depends on
    # the machine's load: bench/deployment_latency.py measures it, no test asserts it.
    now = datetime.now(UTC)
    runs = sorted(
        (
            r
            for r in await runs_of(client, NEW_ASSETS_NIGHTLY)
            if r.expected_start_time and r.expected_start_time <= now
        ),
        key=lambda r: r.expected_start_time or now,
    )
    expected = [r.expected_start_time for r in runs if r.expected_start_time]
    gaps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(expected)}
    assert gaps == {INTERVAL_S}, gaps
    # (A cancelled run has a start_time too: the moment it was cancelled.)
    started = [r for r in runs if r.start_time and r.state and not r.state.is_cancelled()]
    assert len(started) >= 4

    # Quieten the schedule for the rest of the module.
    await client.pause_deployment((await client.read_deployment_by_name(NEW_ASSETS_NIGHTLY)).id)


async def test_asset_uploaded_starts_upscale_then_batch_completed_starts_publish(
    served: Served, client: PrefectClient, fresh_emulator: EmulatorServer
) -> None:
    landing = served.staging.parent / f"landing-{uuid.uuid4().hex[:6]}"
    images = make_images(landing, "landed", 2, (52, 36))
    before = {r.id for r in await runs_of(client, UPSCALE_ON_ASSET_UPLOADED)}

    emit_event(
        event=ASSET_UPLOADED,
        resource={"prefect.resource.id": f"asset.landing.{landing.name}"},
        payload={"location": str(landing)},
    )

    async def started() -> FlowRun | None:
        runs = await runs_of(client, UPSCALE_ON_ASSET_UPLOADED)
        return next((r for r in runs if r.id not in before and r.start_time), None)

    run = await eventually(started, PATIENCE_S, "an upscale-batch run started by the event", served)
    assert run.parameters["inputs"] == str(landing)  # templated from payload.location
    assert run.parameters["target"] == str(served.target)  # the deployment's own parameter

    async def finished() -> FlowRun | None:
        current = await client.read_flow_run(run.id)
        return current if current.state and current.state.is_final() else None

    done = await eventually(finished, PATIENCE_S, "the upscale-batch run to finish", served)
    assert done.state is not None and done.state.is_completed(), done.state
    report = await done.state.aresult()  # persisted: the deployment's BatchReport
    outputs = outputs_of(report)
    assert len(outputs) == len(images) and all_exist(outputs)
    assert fresh_emulator.stats().jobs_created == len(images)

    # Its scenario.upscale.batch.completed event starts the downstream deployment with the
    # outputs the event names (a list, templated as a list).
    async def published() -> FlowRun | None:
        for r in await runs_of(client, PUBLISH_ON_BATCH_COMPLETED):
            if sorted(r.parameters.get("outputs", [])) == sorted(outputs) and r.state:
                return r if r.state.is_final() else None
        return None

    publish = await eventually(published, PATIENCE_S, "publish-upscaled for those outputs", served)
    assert publish.state is not None and publish.state.is_completed(), publish.state
    thumbnails = [served.published / thumbnail_name(o, 256) for o in outputs]
    assert all_exist(thumbnails)


async def test_pipeline_hands_results_from_step_to_step(
    served: Served, client: PrefectClient, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    images = make_images(drop, "dropped", 2, (50, 20))

    # Subflows: ingest -> upscale-batch -> publish-upscaled, in this process.
    local = await asset_pipeline(
        source=str(drop),
        staging=str(tmp_path / "staging"),
        target=str(tmp_path / "upscaled"),
        published=str(tmp_path / "published"),
        credentials_block=served.credentials_block,
    )
    assert len(local.ingested) == len(images)
    assert local.report.ok and len(outputs_of(local.report)) == len(images)
    assert sorted(local.published) == sorted(
        str(tmp_path / "published" / thumbnail_name(o, 256)) for o in outputs_of(local.report)
    )
    assert all_exist(local.published)

    # run_deployment: the upscale runs on the served deployment; its BatchReport comes back.
    remote = await asset_pipeline(
        source=str(drop),
        staging=str(tmp_path / "staging-2"),
        target=str(tmp_path / "upscaled-2"),
        published=str(tmp_path / "published-2"),
        credentials_block=served.credentials_block,
        upscale_deployment=UPSCALE_ON_DEMAND,
        upscale_timeout_s=PATIENCE_S,
    )
    assert remote.upscale_flow_run_id is not None
    run = await client.read_flow_run(uuid.UUID(remote.upscale_flow_run_id))
    deployment = await client.read_deployment_by_name(UPSCALE_ON_DEMAND)
    assert run.deployment_id == deployment.id
    assert run.parameters["inputs"] == remote.ingested
    outputs = outputs_of(remote.report)
    assert len(outputs) == len(images)
    assert all(o.startswith(str(tmp_path / "upscaled-2")) for o in outputs) and all_exist(outputs)
    assert sorted(remote.published) == sorted(
        str(tmp_path / "published-2" / thumbnail_name(o, 256)) for o in outputs
    )
    # Same bytes, same model: the second upscale-batch ran new jobs only for its new target.
    assert fresh_emulator.stats().jobs_created == 2 * len(images)
