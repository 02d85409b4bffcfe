"""The ``upscale-batch`` and ``upscale-image`` flows, run in-process against a real Prefect server
and the Scenario emulator as a real HTTP server.

What a user sees: the outputs on disk, the flow run's final state, the artifacts and events on the
server, the team's global concurrency limit, and what Scenario charged (emulator stats).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, State
from prefect.client.schemas.sorting import ArtifactSort
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventRelatedFilter,
)
from prefect.events.schemas.events import ReceivedEvent
from prefect.exceptions import ObjectNotFound

from blocks.credentials import ScenarioCredentials
from flows.options import AdvancedSettings
from flows.reporting import (
    BATCH_COMPLETED,
    JOB_COMPLETED,
    JOB_FAILED,
    RELATED_OUTPUTS_LIMIT,
    RESULTS_ARTIFACT_KEY,
    RESULTS_TABLE_KEY,
    emit_batch_event,
    watching_progress,
)
from flows.states import OVER_BUDGET, PARTIALLY_COMPLETED, BatchIncomplete
from flows.upscale import DEFAULT_CONCURRENCY_LIMIT, upscale_batch, upscale_image
from flows.upscale_models import ScenarioModels, UpscaleV3
from scenario_upscale.batch import BatchReport, ItemResult, Progress, UpscaleSpec
from scenario_upscale.emulator import EmulatorServer
from tests.prefect_server import PrefectTestServer
from tests.support import write_images

pytestmark = pytest.mark.prefect_server

T = TypeVar("T")

V3 = "model_upscale-v3"
SEEDVR = "model_seedvr-2-upscale-image"
TWO_MODELS = [
    UpscaleSpec(model_id=V3, parameters={"upscaleFactor": 2}),
    UpscaleSpec(model_id=SEEDVR, parameters={"upscaleFactor": 3}),
]
FACTORS = {V3: 2, SEEDVR: 3}
JOB_DURATION_S = 0.3
#: How long the server may take to persist an event (flush interval 0.5 s) or anything else.
DEADLINE_S = 15.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll ``probe`` until it returns something truthy, or fail after ``DEADLINE_S``."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {DEADLINE_S} s waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
def scenario(fresh_emulator: EmulatorServer) -> EmulatorServer:
    """The reset emulator with short jobs."""
    fresh_emulator.configure(job_duration_s=JOB_DURATION_S)
    return fresh_emulator


@pytest.fixture
async def credentials_block(
    prefect_client_settings: PrefectTestServer, scenario: EmulatorServer
) -> str:
    """A saved ScenarioCredentials block pointing at the emulator; its unique name."""
    name = unique("flows-test")
    await ScenarioCredentials(
        api_key=scenario.api_key,
        api_secret=scenario.api_secret,
        base_url=scenario.base_url,
        timeout_s=10,
    ).asave(name)
    return name


async def run_batch_flow(credentials_block: str, **parameters: Any) -> State[BatchReport]:
    """``upscale_batch`` with the knobs (``max_concurrency``...) given flat, as ``advanced``."""
    knobs = {k: parameters.pop(k) for k in AdvancedSettings.model_fields if k in parameters}
    knobs.setdefault("concurrency_limit", unique("gcl"))
    return await upscale_batch(  # type: ignore[no-any-return]
        credentials_block=credentials_block,
        advanced=AdvancedSettings(**knobs),
        return_state=True,
        **parameters,
    )


async def run_on_folders(
    credentials_block: str, tmp_path: Path, **parameters: Any
) -> State[BatchReport]:
    """The flow on the inputs in ``tmp_path/in``, into ``tmp_path/out``."""
    return await run_batch_flow(
        credentials_block,
        inputs=str(tmp_path / "in"),
        target=str(tmp_path / "out"),
        **parameters,
    )


async def report_of(state: State[Any]) -> BatchReport:
    """The report of a run, also of one that failed (its result is ``BatchIncomplete``)."""
    report = await state.aresult(raise_on_failure=False)
    if isinstance(report, BatchIncomplete):
        report = report.report
    assert isinstance(report, BatchReport), report
    return report


def flow_run_id(state: State[Any]) -> UUID:
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    return run_id


def is_file(path: str) -> bool:
    return Path(path).is_file()


def file_uri(path: str) -> str:
    """What an output's related resource id must be: ``file://`` and its absolute path."""
    return f"file://{Path(path).resolve()}"


def pixel_size(path: str) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


async def read_events(
    names: list[str], since: datetime, related_id: str | None = None
) -> list[ReceivedEvent]:
    event_filter = EventFilter(
        occurred=EventOccurredFilter(since=since, until=datetime.now(UTC) + timedelta(minutes=1)),
        event=EventNameFilter(name=names),
        related=EventRelatedFilter(id=[related_id]) if related_id else None,
    )
    async with get_client() as client:
        page = await client.read_events(filter=event_filter, limit=50)
    return list(page.events)


async def read_run_artifacts(run_id: UUID) -> list[Artifact]:
    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )


def table_rows(artifact: Artifact) -> list[dict[str, Any]]:
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert isinstance(data, list), data
    return data


# -- the happy path -------------------------------------------------------------------------------


async def test_a_batch_with_two_models_writes_every_output_at_its_size(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "in", 2, size=(40, 30))
    out = tmp_path / "out"

    state = await run_batch_flow(
        credentials_block,
        inputs=str(tmp_path / "in"),
        target=str(out),
        upscales=TWO_MODELS,
    )

    assert state.is_completed() and state.name == "Completed", (state.name, state.message)
    report = await report_of(state)
    assert report.ok and report.count("success") == 4, report.results
    assert {(Path(r.source).name, r.model_id) for r in report.results} == {
        (p.name, m) for p in images for m in FACTORS
    }
    stats = scenario.stats()
    assert stats.jobs_created == 4
    assert report.creative_units == pytest.approx(stats.creative_units_charged)
    assert report.creative_units > 0
    for result in report.results:
        factor = FACTORS[result.model_id]
        source_size = pixel_size(result.source)
        assert (result.input_width, result.input_height) == source_size
        [output] = result.outputs
        assert Path(output).parent == out and is_file(output)
        expected = (source_size[0] * factor, source_size[1] * factor)
        assert pixel_size(output) == expected
        assert (result.output_width, result.output_height) == expected
        assert result.job_id and result.error is None
    assert len({o for r in report.results for o in r.outputs}) == 4  # no output overwritten
    assert state.message == report.summary()


async def test_the_run_publishes_a_results_table_and_a_finished_progress_artifact(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    state = await run_on_folders(credentials_block, tmp_path, upscales=TWO_MODELS)
    assert state.is_completed(), state.message
    report = await report_of(state)

    artifacts = await read_run_artifacts(flow_run_id(state))
    tables = [a for a in artifacts if a.type == "table"]
    progress = [a for a in artifacts if a.type == "progress"]
    assert [a.key for a in tables] == [RESULTS_TABLE_KEY], artifacts
    assert [a.key for a in artifacts if a.type == "markdown"] == [RESULTS_ARTIFACT_KEY]
    assert len(progress) == 1, artifacts
    assert float(progress[0].data) == 100.0  # type: ignore[arg-type]

    rows = table_rows(tables[0])
    assert len(rows) == len(report.results) == 4
    # Code-formatted: the UI renders cells as Markdown, and would make ``a@b.png`` a mail link.
    by_item = {(row["source"], row["model"]): row for row in rows}
    for result in report.results:
        row = by_item[(f"`{result.source}`", f"`{result.model_id}`")]
        factor = FACTORS[result.model_id]
        width, height = pixel_size(result.source)
        assert row["status"] == "success"
        assert row["job"] == f"`{result.job_id}`" and row["job"].startswith("`job_")
        assert row["input size"] == f"{width}x{height}"
        assert row["output size"] == f"{width * factor}x{height * factor}"
        assert row["output"] == f"`{result.outputs[0]}`"
        assert row["creative units"] == result.creative_units
        assert row["refunded"] == ""
        assert row["error"] == ""


async def test_the_run_announces_each_job_and_the_batch_with_its_outputs(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    since = datetime.now(UTC) - timedelta(seconds=5)
    state = await run_on_folders(credentials_block, tmp_path, upscales=TWO_MODELS)
    assert state.is_completed(), state.message
    report = await report_of(state)
    run = f"prefect.flow-run.{flow_run_id(state)}"

    async def batch_event() -> list[ReceivedEvent]:
        return await read_events([BATCH_COMPLETED], since, related_id=run)

    [event] = await eventually(batch_event, f"{BATCH_COMPLETED} of {run}")
    outputs = [o for r in report.results for o in r.outputs]
    assert len(outputs) == 4
    assert event.payload["outputs"] == outputs
    assert event.payload["succeeded"] == 4 and event.payload["failed"] == 0
    assert event.resource.id == f"scenario.upscale.batch.{flow_run_id(state)}"
    assert event.resource["scenario.ok"] == "true"
    related_outputs = sorted(r.id for r in event.related if r.role == "output")
    assert related_outputs == sorted(file_uri(o) for o in outputs)
    assert all(r.id.startswith("file:///") for r in event.related if r.role == "output")

    async def job_events() -> list[ReceivedEvent] | None:
        found = await read_events([JOB_COMPLETED, JOB_FAILED], since, related_id=run)
        return found if len(found) >= 4 else None

    events = await eventually(job_events, f"4 job events of {run}")
    await asyncio.sleep(1.0)  # a fifth (duplicate or failed) event would show up by now
    events = await read_events([JOB_COMPLETED, JOB_FAILED], since, related_id=run)
    assert [e.event for e in events] == [JOB_COMPLETED] * 4
    assert sorted(e.resource.id for e in events) == sorted(
        f"scenario.{r.job_id}" for r in report.results
    )
    for e in events:
        [output] = [r.id for r in e.related if r.role == "output"]
        assert output == file_uri(e.payload["outputs"][0])
        assert e.payload["status"] == "success"


async def test_each_output_is_a_materialized_prefect_asset(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    since = datetime.now(UTC) - timedelta(seconds=5)
    state = await run_on_folders(credentials_block, tmp_path)
    report = await report_of(state)
    run = f"prefect.flow-run.{flow_run_id(state)}"
    name = "prefect.asset.materialization.succeeded"

    async def materialized() -> list[ReceivedEvent] | None:
        found = await read_events([name], since, related_id=run)
        return found if len(found) >= 2 else None

    events = await eventually(materialized, f"2 asset materializations of {run}")
    by_key = {e.resource.id: e for e in events}
    for result in report.results:
        event = by_key[file_uri(result.outputs[0])]
        assert event.payload["source"] == result.source
        assert event.payload["job_id"] == result.job_id
        assert event.payload["width"] == result.output_width


async def test_a_batch_with_many_outputs_still_announces_itself(
    prefect_client_settings: PrefectTestServer, tmp_path: Path
) -> None:
    outputs = [str(tmp_path / f"out/{i}.png") for i in range(150)]
    report = BatchReport(
        results=[
            ItemResult(
                source=f"{i}.png", model_id="model_upscale-v3", status="success", outputs=[o]
            )
            for i, o in enumerate(outputs)
        ],
        creative_units=150,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )
    since = datetime.now(UTC) - timedelta(seconds=5)
    run_id = uuid.uuid4()
    emit_batch_event(report, str(tmp_path / "out"), run_id)

    async def batch_event() -> list[ReceivedEvent]:
        found = await read_events([BATCH_COMPLETED], since)
        return [e for e in found if e.resource.id == f"scenario.upscale.batch.{run_id}"]

    [event] = await eventually(batch_event, "the batch event of 150 outputs")
    assert event.payload["outputs"] == outputs  # all of them
    assert event.resource["scenario.outputs"] == "150"
    assert len([r for r in event.related if r.role == "output"]) == RELATED_OUTPUTS_LIMIT


async def test_the_progress_artifact_moves_while_the_batch_runs(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    scenario.configure(job_duration_s=1.0)
    write_images(tmp_path / "in", 6, size=(40, 30))
    target = str(tmp_path / "out")
    run = asyncio.create_task(
        run_batch_flow(
            credentials_block,
            inputs=str(tmp_path / "in"),
            target=target,
            max_concurrency=2,
            shard_size=2,
        )
    )
    seen: set[float] = set()
    words: set[str] = set()
    async with get_client() as client:
        while not run.done():
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])),
                # The newest first: the session's server holds every earlier test's progress.
                sort=ArtifactSort.CREATED_DESC,
                limit=20,
            )
            mine = [a for a in artifacts if a.description and target in a.description]
            seen.update(float(a.data) for a in mine)  # type: ignore[arg-type]
            words.update(a.description for a in mine if a.description)
            await asyncio.sleep(0.2)
    state = await run
    assert state.is_completed(), state.message
    assert any(0 < value < 100 for value in seen), seen  # it moved between start and end
    # In words too, while it runs: the percentage, jobs submitted, creative units committed.
    moving = [w for w in words if "**100 %**" not in w and "job(s) submitted" in w]
    live = re.compile(r"\*\*\d+ %\*\*.* [1-6] job\(s\) submitted · [1-9]")
    assert any(live.search(w) for w in moving), words


async def test_a_progress_listener_sees_the_counts_of_the_flows_it_watches(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    seen: list[Progress] = []
    with watching_progress(seen.append):
        state = await run_on_folders(credentials_block, tmp_path)
    assert state.is_completed(), state.message
    assert seen and seen[-1].done == seen[-1].total == 2
    assert seen[-1].creative_units > 0

    after = len(seen)
    await run_batch_flow(
        credentials_block, inputs=str(tmp_path / "in"), target=str(tmp_path / "o2")
    )
    assert len(seen) == after  # outside the block, the listener is no longer called


# -- failures -------------------------------------------------------------------------------------


async def test_a_failed_job_leaves_the_others_and_ends_partially_completed(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 3, size=(40, 30))
    scenario.configure(fail_next_n_jobs=1)
    since = datetime.now(UTC) - timedelta(seconds=5)
    state = await run_on_folders(credentials_block, tmp_path, upscales=[TWO_MODELS[0]])

    # Not green in the runs list: a FAILED-type state, told from a total failure by its name.
    assert state.is_failed(), (state.name, state.message)
    assert state.name == PARTIALLY_COMPLETED
    report = await report_of(state)
    [failed] = [r for r in report.results if r.status != "success"]
    assert failed.status == "failure" and failed.error and failed.job_id
    assert state.message is not None
    assert "1 of 3 input(s) failed" in state.message
    assert failed.source in state.message and failed.error in state.message
    succeeded = [r for r in report.results if r.status == "success"]
    assert len(succeeded) == 2
    for result in succeeded:
        [output] = result.outputs
        width, height = pixel_size(result.source)
        assert pixel_size(output) == (2 * width, 2 * height)
    assert scenario.stats().jobs_by_status.get("failure") == 1

    run = f"prefect.flow-run.{flow_run_id(state)}"

    async def failed_events() -> list[ReceivedEvent]:
        return await read_events([JOB_FAILED], since, related_id=run)

    [event] = await eventually(failed_events, f"{JOB_FAILED} of {run}")
    assert event.resource.id == f"scenario.{failed.job_id}"
    assert event.payload["error"] == failed.error

    async def batch_event() -> list[ReceivedEvent]:
        return await read_events([BATCH_COMPLETED], since, related_id=run)

    [batch] = await eventually(batch_event, f"{BATCH_COMPLETED} of {run}")
    assert batch.payload["failed"] == 1 and batch.payload["succeeded"] == 2
    assert batch.resource["scenario.ok"] == "false"
    assert batch.payload["outcome"] == batch.resource["scenario.outcome"] == "partially-completed"


async def test_fail_on_any_error_turns_a_failed_job_into_a_failed_run(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    scenario.configure(fail_next_n_jobs=1)
    state = await run_on_folders(
        credentials_block,
        tmp_path,
        upscales=[TWO_MODELS[0]],
        fail_on_any_error=True,
    )

    assert state.is_failed() and state.name == "Failed", (state.name, state.message)
    assert state.message is not None and "1 of 2 input(s) failed" in state.message
    report = await report_of(state)
    assert report.count("success") == 1 and report.count("failure") == 1
    [ok] = [r for r in report.results if r.status == "success"]
    assert is_file(ok.outputs[0])


async def test_an_input_that_is_not_an_image_fails_alone(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"this is not a png")
    since = datetime.now(UTC) - timedelta(seconds=5)
    state = await run_on_folders(credentials_block, tmp_path, upscales=[TWO_MODELS[0]])

    assert state.name == PARTIALLY_COMPLETED, (state.name, state.message)
    assert state.message is not None and "broken.png" in state.message
    report = await report_of(state)
    [invalid] = [r for r in report.results if r.status != "success"]
    assert invalid.status == "invalid" and invalid.source.endswith("broken.png")
    assert report.count("success") == 2
    stats = scenario.stats()
    assert stats.jobs_created == 2
    assert stats.requests.get("POST /v1/assets") == 2  # the two images; the broken one not

    run = f"prefect.flow-run.{flow_run_id(state)}"

    async def failed_events() -> list[ReceivedEvent]:
        return await read_events([JOB_FAILED], since, related_id=run)

    [event] = await eventually(failed_events, f"{JOB_FAILED} for broken.png of {run}")
    assert event.resource["prefect.resource.name"] == f"broken.png ({V3})"
    assert event.resource.id == file_uri(str(broken))  # never a job: the input is the resource
    assert event.payload["status"] == "invalid"


async def test_a_transient_api_failure_is_retried_by_the_task(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    """The model read fails more often than the client retries: Prefect retries the task."""
    write_images(tmp_path / "in", 1, size=(40, 30))
    attempts = 5  # RetryPolicy().attempts: the client gives up after this many 503s
    scenario.configure(fail_next_n_gets=attempts, fault_routes=["/v1/models/{modelId}"])
    state = await run_on_folders(credentials_block, tmp_path, upscales=[TWO_MODELS[0]])

    assert state.is_completed() and state.name == "Completed", (state.name, state.message)
    stats = scenario.stats()
    assert stats.faults_injected.get("5xx") == attempts
    assert stats.requests["GET /v1/models/{modelId}"] == attempts + 1
    assert stats.jobs_created == 1


async def test_a_batch_above_the_budget_fails_before_anything_is_charged(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    state = await run_on_folders(
        credentials_block,
        tmp_path,
        upscales=TWO_MODELS,
        max_creative_units=0.01,
    )

    assert state.is_failed() and state.name == OVER_BUDGET, (state.name, state.message)
    stats = scenario.stats()
    assert stats.dry_runs == 4
    assert stats.jobs_created == 0
    assert stats.creative_units_charged == 0
    assert state.message is not None
    assert "budget of 0.01" in state.message
    assert "creative units" in state.message and "nothing was submitted" in state.message
    assert not list((tmp_path / "out").glob("*.png"))


async def test_a_rerun_submits_nothing_and_skips_every_item(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    parameters: dict[str, Any] = {
        "inputs": str(tmp_path / "in"),
        "target": str(tmp_path / "out"),
        "upscales": TWO_MODELS,
    }
    first = await report_of(await run_batch_flow(credentials_block, **parameters))
    assert first.count("success") == 4, first.results
    before = scenario.stats()

    state = await run_batch_flow(credentials_block, **parameters)

    assert state.is_completed() and state.name == "Completed", (state.name, state.message)
    second = await report_of(state)
    after = scenario.stats()
    assert after.jobs_created == before.jobs_created == 4
    assert after.creative_units_charged == before.creative_units_charged
    assert after.dry_runs == before.dry_runs
    assert [r.status for r in second.results] == ["skipped"] * 4
    assert second.creative_units == 0
    assert {(r.source, r.model_id, r.job_id, tuple(r.outputs)) for r in second.results} == {
        (r.source, r.model_id, r.job_id, tuple(r.outputs)) for r in first.results
    }


async def test_a_bad_parameter_fails_the_run_before_anything_is_uploaded_or_charged(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    state = await run_on_folders(
        credentials_block,
        tmp_path,
        upscales=[UpscaleSpec(model_id=V3, parameters={"upscaleFactor": 99})],
    )

    assert state.is_failed(), (state.name, state.message)
    assert state.message is not None
    assert "upscaleFactor" in state.message and "99" in state.message
    assert ">= 1" in state.message and "<= 16" in state.message
    stats = scenario.stats()
    assert stats.uploads_created == 0 and stats.assets_created == 0
    assert stats.jobs_created == 0 and stats.dry_runs == 0
    assert stats.creative_units_charged == 0


# -- one image ------------------------------------------------------------------------------------


async def test_upscale_image_returns_the_result_of_its_one_input(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    [source] = write_images(tmp_path / "in", 1, size=(50, 40))
    result = await upscale_image(
        source=str(source),
        target=str(tmp_path / "out"),
        model=ScenarioModels(scenario=UpscaleV3(upscaleFactor=3)),
        credentials_block=credentials_block,
    )

    assert isinstance(result, ItemResult)
    assert result.status == "success" and result.model_id == V3
    assert result.source == str(source)
    [output] = result.outputs
    assert Path(output).parent == tmp_path / "out"
    assert pixel_size(output) == (150, 120)
    assert (result.output_width, result.output_height) == (150, 120)
    assert (result.input_width, result.input_height) == (50, 40)
    assert scenario.stats().jobs_created == 1


async def test_upscale_image_fails_with_the_jobs_error(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    [source] = write_images(tmp_path / "in", 1, size=(50, 40))
    scenario.configure(fail_next_n_jobs=1)
    state = await upscale_image(
        source=str(source),
        target=str(tmp_path / "out"),
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_failed(), (state.name, state.message)
    [job_id] = await _emulator_job_ids(scenario)
    assert state.message is not None
    assert job_id in state.message and "'failure'" in state.message, state.message
    with pytest.raises(Exception, match=job_id):
        await state.aresult()
    assert not list((tmp_path / "out").glob("*.png"))


async def _emulator_job_ids(scenario: EmulatorServer) -> list[str]:
    credentials = ScenarioCredentials(
        api_key=scenario.api_key, api_secret=scenario.api_secret, base_url=scenario.base_url
    )
    async with credentials.get_client() as client:
        return [job.job_id async for job in client.list_jobs()]


# -- the team's concurrency ceiling ---------------------------------------------------------------


async def test_the_global_concurrency_limit_is_created_on_first_use_and_left_free(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    name = unique("team-jobs")
    async with get_client() as client:
        with pytest.raises(ObjectNotFound):
            await client.read_global_concurrency_limit_by_name(name)

    state = await run_on_folders(
        credentials_block,
        tmp_path,
        upscales=TWO_MODELS,
        max_concurrency=3,
        concurrency_limit=name,
    )

    assert state.is_completed(), state.message
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(name)
    assert limit.limit == 3 and limit.active
    assert limit.active_slots == 0


async def test_the_default_global_concurrency_limit_is_the_teams(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 1, size=(40, 30))
    state = await upscale_batch(
        inputs=str(tmp_path / "in"),
        target=str(tmp_path / "out"),
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_completed(), state.message
    async with get_client() as client:
        limit = await client.read_global_concurrency_limit_by_name(DEFAULT_CONCURRENCY_LIMIT)
    assert limit.name == "scenario-team-jobs"
    assert limit.active_slots == 0


_HOLD_SLOTS = """
import asyncio, logging, sys
from flows.tasks import _slots

async def hold(name: str, occupy: int) -> None:
    async with _slots(name, occupy, lambda _: None, logging.getLogger("holder")):
        print("holding", flush=True)
        await asyncio.Event().wait()

asyncio.run(hold(sys.argv[1], int(sys.argv[2])))
"""


async def test_the_slots_of_a_killed_run_come_back_within_its_lease(
    credentials_block: str,
    scenario: EmulatorServer,
    tmp_path: Path,
    prefect_server: PrefectTestServer,
) -> None:
    """A run killed while it holds every slot of the team's limit: the next one says it waits,
    then gets the slots once the killed run's lease runs out (not Prefect's default 300 s)."""
    name = unique("team-jobs")
    async with get_client() as client:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=2)
        )
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLD_SLOTS,
        name,
        "2",
        env=prefect_server.env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    try:
        async with asyncio.timeout(60):
            assert await holder.stdout.readline() == b"holding\n"
    finally:
        holder.kill()  # SIGKILL: no release, no more lease renewals
        await holder.wait()
    write_images(tmp_path / "in", 1, size=(40, 30))
    seen: list[Progress] = []
    # Generous, and below the 300 s of Prefect's default lease: no finer timing is asserted.
    async with asyncio.timeout(240):
        with watching_progress(seen.append):
            state = await run_on_folders(
                credentials_block, tmp_path, max_concurrency=2, concurrency_limit=name
            )
    assert state.is_completed(), state.message
    [waiting] = {p.waiting_for for p in seen if p.waiting_for}
    assert waiting == (
        f"1 slot(s) of the team's concurrency limit {name!r}: 2 of 2 are held by other runs. "
        "The slots of a run that was killed come back once its lease of 60 s runs out."
    )
    assert seen[-1].waiting_for is None

    async def logged() -> list[str] | None:
        async with get_client() as client:
            logs = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
            )
        messages = [log.message for log in logs]
        return messages if any(m.startswith("Got 1 slot(s)") for m in messages) else None

    messages = await eventually(logged, "the run's logs about the slots")
    assert f"Waiting for {waiting}" in messages
