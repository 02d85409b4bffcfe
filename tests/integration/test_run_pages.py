"""What a run shows in Prefect's UI, read back from a real Prefect server: the before/after
pictures, honest states and costs (net of Scenario's refunds), the events, and the artifacts and
event every run ends with (a budget stop and a nothing-new night too).
"""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prefect.client.schemas.objects import Artifact
from prefect.events.schemas.events import ReceivedEvent

from flows.pictures import ARTIFACT_PICTURE_BUDGET, THUMBNAIL_MAX_SIDE, code
from flows.pipeline import (
    GALLERY_ARTIFACT_KEY,
    PipelineResult,
    asset_pipeline,
    publish_upscaled,
    upscale_new_assets,
)
from flows.reporting import (
    BATCH_COMPLETED,
    JOB_COMPLETED,
    JOB_FAILED,
    PICTURED_RESULTS,
    PRICE_ARTIFACT_KEY,
    RESULTS_ARTIFACT_KEY,
    RESULTS_TABLE_KEY,
    results_markdown,
)
from flows.states import OVER_BUDGET, PARTIALLY_COMPLETED, BatchIncomplete, RunIncomplete, result_of
from scenario_upscale.batch import BatchReport, ItemResult
from scenario_upscale.emulator import EmulatorServer
from tests.integration.test_flows import (
    TWO_MODELS,
    V3,
    credentials_block,
    eventually,
    file_uri,
    flow_run_id,
    read_events,
    read_run_artifacts,
    report_of,
    run_on_folders,
    scenario,
    table_rows,
    unique,
)
from tests.support import write_images

pytestmark = pytest.mark.prefect_server

__all__ = ["credentials_block", "scenario"]  # fixtures shared with test_flows

DATA_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<uri>data:image/(?:png|jpeg);base64,[^)]+)\)")


def decoded_pictures(markdown: str) -> list[tuple[str, Image.Image]]:
    """Every inline picture of a Markdown artifact: its alt text and the decoded image."""
    pictures = []
    for match in DATA_IMAGE.finditer(markdown):
        data = base64.b64decode(match["uri"].split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            pictures.append((match["alt"], image.copy()))
    return pictures


def bare_mail_like_names(markdown: str) -> list[str]:
    """Names with an ``@`` left outside code spans: the UI would make them ``mailto:`` links."""
    text = DATA_IMAGE.sub("", markdown)
    text = re.sub(r"`+[^`]*`+", "", text)
    return re.findall(r"[\w.-]+@[\w.-]+", text)


def by_key(artifacts: list[Artifact], key: str) -> Artifact:
    [artifact] = [a for a in artifacts if a.key == key]
    return artifact


async def batch_event_of(run_id: Any, since: datetime) -> ReceivedEvent:
    run = f"prefect.flow-run.{run_id}"

    async def probe() -> list[ReceivedEvent]:
        return await read_events([BATCH_COMPLETED], since, related_id=run)

    [event] = await eventually(probe, f"{BATCH_COMPLETED} of {run}")
    return event


async def test_a_partial_run_is_not_green_shows_pictures_and_charges_net_of_refunds(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "in", 3, size=(200, 90))
    # A name with an ``@``, like the outputs' own names: never rendered as a mail link.
    images[0].rename(tmp_path / "in" / "rune-01@hero.png")
    scenario.configure(fail_next_n_jobs=1)
    since = datetime.now(UTC) - timedelta(seconds=5)

    state = await run_on_folders(credentials_block, tmp_path, upscales=[TWO_MODELS[0]])

    # The state: FAILED-type (red in the runs list), named for what happened.
    assert state.is_failed() and state.name == PARTIALLY_COMPLETED, (state.name, state.message)
    with pytest.raises(BatchIncomplete) as raised:
        await state.aresult()
    report = raised.value.report
    assert report.count("success") == 2 and report.count("failure") == 1
    [failed] = [r for r in report.results if r.status == "failure"]

    # Costs as Scenario bills them: the failed job's charge was refunded.
    stats = scenario.stats()
    assert stats.creative_units_refunded > 0
    assert report.creative_units == pytest.approx(stats.creative_units_charged)
    assert report.creative_units_refunded == pytest.approx(stats.creative_units_refunded)
    assert report.creative_units_net == pytest.approx(stats.creative_units_net)
    assert failed.creative_units_refunded == pytest.approx(stats.creative_units_refunded)
    net, refunded = f"{stats.creative_units_net:g}", f"{stats.creative_units_refunded:g}"
    assert f"{net} creative units ({refunded} refunded)" in report.summary()
    assert state.message is not None and report.summary() in state.message

    run_id = flow_run_id(state)
    artifacts = await read_run_artifacts(run_id)

    # The results: a before/after pair per output, small, decodable, next to the figures.
    results = by_key(artifacts, RESULTS_ARTIFACT_KEY)
    assert results.type == "markdown"
    markdown = str(results.data)
    pictures = decoded_pictures(markdown)
    assert sorted(alt.split(":")[0] for alt, _ in pictures) == ["after"] * 2 + ["before"] * 3
    for _, image in pictures:
        assert max(image.size) <= THUMBNAIL_MAX_SIDE
    afters = [image for alt, image in pictures if alt.startswith("after")]
    assert {image.width for image in afters} == {THUMBNAIL_MAX_SIDE}  # of ~400x180 outputs
    assert len(markdown) < ARTIFACT_PICTURE_BUDGET + 10_000
    assert bare_mail_like_names(markdown) == []
    assert code("rune-01@hero.png") in markdown
    assert f"{refunded} refunded" in markdown and failed.error
    assert "Creative units: " + net + " net" in markdown

    # The full table: net creative units per row, the refund beside them.
    rows = {row["source"]: row for row in table_rows(by_key(artifacts, RESULTS_TABLE_KEY))}
    failed_row = rows[code(failed.source)]
    assert failed_row["creative units"] == 0
    assert failed_row["refunded"] == pytest.approx(stats.creative_units_refunded)
    assert all("`" in row["output"] for row in rows.values() if row["status"] == "success")

    # The progress artifact ends at 100 %, its words say what was submitted and committed.
    [progress] = [a for a in artifacts if a.type == "progress"]
    assert float(progress.data) == 100.0  # type: ignore[arg-type]
    assert progress.description is not None
    assert "**100 %**: 3 of 3 inputs settled (1 failed)" in progress.description
    committed = f"{stats.creative_units_charged:g} creative units committed ({refunded} refunded)"
    assert "3 job(s) submitted" in progress.description and committed in progress.description
    assert PARTIALLY_COMPLETED in progress.description

    # The batch event: an automation tells partial from total failure, and sees the net cost.
    event = await batch_event_of(run_id, since)
    assert event.resource["scenario.outcome"] == event.payload["outcome"] == "partially-completed"
    assert event.payload["creative_units"] == pytest.approx(stats.creative_units_net)
    assert event.payload["creative_units_refunded"] == pytest.approx(stats.creative_units_refunded)

    # Job events: a clean resource id, the input and output as named, related resources.
    run = f"prefect.flow-run.{run_id}"

    async def job_events() -> list[ReceivedEvent] | None:
        found = await read_events([JOB_COMPLETED, JOB_FAILED], since, related_id=run)
        return found if len(found) >= 3 else None

    events = await eventually(job_events, f"3 job events of {run}")
    for e in events:
        job_id = e.payload["job_id"]
        assert e.resource.id == f"scenario.{job_id}" and job_id.startswith("job_")
        assert e.resource["scenario.job-id"] == job_id
        roles = {r.role: r for r in e.related if r.role in ("input", "output")}
        assert roles["input"].id == file_uri(e.payload["source"])
        assert roles["input"]["prefect.resource.name"] == Path(e.payload["source"]).name
        if e.event == JOB_COMPLETED:
            assert roles["output"]["prefect.resource.name"] == Path(e.payload["outputs"][0]).name
        else:
            assert "output" not in roles


async def test_a_budget_stop_ends_with_its_progress_price_per_model_and_event(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(40, 30))
    since = datetime.now(UTC) - timedelta(seconds=5)

    state = await run_on_folders(
        credentials_block, tmp_path, upscales=TWO_MODELS, max_creative_units=0.01
    )

    assert state.is_failed() and state.name == OVER_BUDGET, (state.name, state.message)
    assert state.message is not None and "nothing was submitted" in state.message
    stats = scenario.stats()
    assert stats.jobs_created == 0 and stats.creative_units_charged == 0

    run_id = flow_run_id(state)
    artifacts = await read_run_artifacts(run_id)
    [progress] = [a for a in artifacts if a.type == "progress"]
    assert progress.description is not None
    assert "0 job(s) submitted · 0 creative units committed" in progress.description
    assert "Stopped on budget" in progress.description and "budget of 0.01" in progress.description

    price = by_key(artifacts, PRICE_ARTIFACT_KEY)
    rows = {row["model"]: row for row in table_rows(price)}
    assert set(rows) == {code(spec.model_id) for spec in TWO_MODELS}
    assert all(row["jobs"] == 2 for row in rows.values())
    total = sum(float(row["creative units"]) for row in rows.values())
    assert price.description is not None and f"{total:g} creative units" in price.description
    assert "above the budget of 0.01" in price.description

    event = await batch_event_of(run_id, since)
    assert event.resource["scenario.outcome"] == event.payload["outcome"] == "over-budget"
    assert event.payload["priced_creative_units"] == pytest.approx(total)
    assert event.payload["budget"] == 0.01 and event.payload["outputs"] == []
    assert "nothing was submitted" in event.payload["error"]


async def test_a_nothing_new_night_says_so_and_publishes_nothing_again(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 2, size=(200, 90))
    parameters: dict[str, Any] = {
        "source": str(tmp_path / "in"),
        "target": str(tmp_path / "out"),
        "credentials_block": credentials_block,
        "concurrency_limit": unique("gcl"),
        "return_state": True,
    }
    first = await upscale_new_assets(**parameters)
    assert first.is_completed(), (first.name, first.message)
    outputs = (await first.aresult()).outputs
    assert len(outputs) == 2

    # Publish what the night wrote: a gallery of the thumbnails, inline and bounded.
    publish = await publish_upscaled(
        outputs, str(tmp_path / "published"), max_size=64, return_state=True
    )
    published = await publish.aresult()
    gallery = by_key(await read_run_artifacts(flow_run_id(publish)), GALLERY_ARTIFACT_KEY)
    pictures = decoded_pictures(str(gallery.data))
    assert [alt for alt, _ in pictures] == [Path(p).name for p in published]
    assert all(image.width == 64 for _, image in pictures)  # the published thumbnails
    assert bare_mail_like_names(str(gallery.data)) == []

    since = datetime.now(UTC) - timedelta(seconds=5)
    jobs = scenario.stats().jobs_created
    second = await upscale_new_assets(**parameters)

    assert second.is_completed(), (second.name, second.message)
    assert scenario.stats().jobs_created == jobs
    artifacts = await read_run_artifacts(flow_run_id(second))
    nothing = by_key(artifacts, RESULTS_ARTIFACT_KEY)
    assert "Nothing new" in str(nothing.data) and "nothing was charged" in str(nothing.data)
    event = await batch_event_of(flow_run_id(second), since)
    assert event.resource["scenario.outcome"] == event.payload["outcome"] == "nothing-new"
    assert event.payload["outputs"] == []  # what a publish trigger takes: nothing to redo


async def test_a_rerun_that_finds_everything_done_names_no_output_to_publish_again(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "in", 1, size=(40, 30))
    first = await report_of(await run_on_folders(credentials_block, tmp_path))
    since = datetime.now(UTC) - timedelta(seconds=5)

    state = await run_on_folders(credentials_block, tmp_path)

    assert state.name == "Completed", (state.name, state.message)
    event = await batch_event_of(flow_run_id(state), since)
    assert event.payload["outputs"] == []
    assert event.payload["skipped_outputs"] == first.results[0].outputs
    assert event.resource["scenario.outcome"] == "completed"


async def test_a_pipeline_whose_batch_was_partial_publishes_what_succeeded_and_is_not_green(
    credentials_block: str, scenario: EmulatorServer, tmp_path: Path
) -> None:
    write_images(tmp_path / "drop", 2, size=(40, 30))
    scenario.configure(fail_next_n_jobs=1)

    state = await asset_pipeline(
        source=str(tmp_path / "drop"),
        staging=str(tmp_path / "staging"),
        target=str(tmp_path / "out"),
        published=str(tmp_path / "published"),
        credentials_block=credentials_block,
        return_state=True,
    )

    assert state.is_failed() and state.name == PARTIALLY_COMPLETED, (state.name, state.message)
    with pytest.raises(RunIncomplete, match=r"1 failed; .*; published what succeeded"):
        await state.aresult()
    result = await result_of(state)
    assert isinstance(result, PipelineResult)
    [succeeded] = [r for r in result.report.results if r.status == "success"]
    [thumbnail] = result.published
    assert Path(thumbnail).name.startswith(Path(succeeded.outputs[0]).stem)


async def test_a_large_batch_shows_a_bounded_sample_of_pictures(tmp_path: Path) -> None:
    """Many results: pictures of the first few only, within the byte budget, and a pointer to
    the full table; no Prefect server needed to build the Markdown."""
    [image] = write_images(tmp_path, 1, size=(400, 400))
    noisy = Image.effect_noise((400, 400), 120).convert("RGB")  # what compresses worst
    noisy.save(image)
    now = datetime.now(UTC)
    report = BatchReport(
        results=[
            ItemResult(source=str(image), model_id=V3, status="success", outputs=[str(image)])
            for _ in range(PICTURED_RESULTS + 19)
        ]
        + [
            ItemResult(
                source="in/bad@x.png",
                model_id=V3,
                status="invalid",
                error="in/bad@x.png is not an image | or a video",
            )
        ],
        creative_units=0,
        started_at=now,
        finished_at=now,
    )

    markdown = results_markdown(report, str(tmp_path))
    # The last result first: its error names a file with an ``@``, and has a pipe in it.
    failed = results_markdown(report.model_copy(update={"results": report.results[::-1]}), "o")
    assert bare_mail_like_names(failed) == []
    assert "`in/bad@x.png is not an image \\| or a video`" in failed

    pictures = decoded_pictures(markdown)
    assert 0 < len(pictures) < 2 * PICTURED_RESULTS
    assert sum(len(m["uri"]) for m in DATA_IMAGE.finditer(markdown)) <= ARTIFACT_PICTURE_BUDGET
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and V3 in line]
    assert len(rows) == PICTURED_RESULTS
    assert f"first {PICTURED_RESULTS} of {PICTURED_RESULTS + 20} results" in markdown
    assert code(RESULTS_TABLE_KEY) in markdown
