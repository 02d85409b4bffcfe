"""Flows around ``upscale-batch`` for deployments: recurring, downstream, and chained.

* ``upscale-new-assets``: upscale what is new in a source since the last successful run (the
  recurring deployment; see ``scenario_upscale.watermark``).
* ``publish-upscaled``: thumbnails of upscaled outputs into a publish folder, and a gallery
  artifact of them (the downstream step, triggered by ``scenario.upscale.batch.completed`` with
  the outputs the event names).
* ``asset-pipeline``: ingest -> upscale -> publish, the upscale step as a subflow or as a run of a
  deployment (``run_deployment``), each step's result handed to the next.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import PurePosixPath
from typing import Any, TypeVar, cast

import fsspec
from PIL import Image, UnidentifiedImageError
from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.states import Completed
from pydantic import BaseModel, Field

from flows.options import DEFAULTS, UpscaleOptions
from flows.pictures import PictureBudget, code
from flows.reporting import report_nothing_new
from flows.states import PARTIALLY_COMPLETED, partially_completed, result_of
from flows.upscale import upscale_batch
from scenario_upscale import sources
from scenario_upscale.batch import BatchReport, UpscaleSpec
from scenario_upscale.storage import absolute, write_whole
from scenario_upscale.targets import check_target
from scenario_upscale.watermark import (
    ListedInput,
    Watermark,
    list_source,
    load_watermark,
    save_watermark,
    watermark_path,
)

T = TypeVar("T")


def outputs_of(report: BatchReport) -> list[str]:
    """Every output location of a batch, in result order (what the batch event names, too)."""
    return [o for r in report.results for o in r.outputs]


def _flow_run_id() -> str | None:
    run = FlowRunContext.get()
    return str(run.flow_run.id) if run and run.flow_run else None


def _ended_as(batch: State[BatchReport], result: T) -> State[T]:
    """A parent run ends as its batch did: Completed, or "Partially completed" (FAILED-type,
    see ``flows.states``) with the batch's message, carrying the parent's own result."""
    if batch.name == PARTIALLY_COMPLETED:
        return partially_completed(result, batch.message)
    return Completed(data=result, message=batch.message)


# -- upscale-new-assets -------------------------------------------------------------------------


class NewAssetsResult(BaseModel):
    """What one recurring run found and did.

    Attributes:
        source: The source that was listed.
        target: Where the outputs went.
        new_inputs: Inputs modified since the last successful run (upscaled by this run).
        watermark: The watermark after the run (unchanged if nothing was new or a run failed).
        report: The batch report, or None if nothing was new (no batch was started).
    """

    source: str
    target: str
    new_inputs: list[str] = Field(default_factory=list)
    watermark: Watermark
    report: BatchReport | None = None

    @property
    def outputs(self) -> list[str]:
        return outputs_of(self.report) if self.report else []


@task(name="find-new-assets", cache_policy=NO_CACHE, persist_result=False)
async def find_new_assets(source: str, mark_path: str) -> tuple[list[ListedInput], Watermark]:
    """The inputs of ``source`` modified since the watermark at ``mark_path``, and that mark."""
    mark = await asyncio.to_thread(load_watermark, mark_path, source)
    found = await asyncio.to_thread(list_source, source)
    return [f for f in found if mark.is_new(f)], mark


@task(name="advance-watermark", cache_policy=NO_CACHE, persist_result=False)
async def advance_watermark(
    mark_path: str, mark: Watermark, done: list[ListedInput], flow_run_id: str | None
) -> Watermark:
    """Move the watermark past ``done`` (all upscaled) and save it."""
    moved = mark.advanced(done, flow_run_id)
    await asyncio.to_thread(save_watermark, mark_path, moved)
    return moved


@flow(name="upscale-new-assets", log_prints=False)
async def upscale_new_assets(
    source: str,
    target: str = DEFAULTS.target,
    upscales: list[UpscaleSpec] | None = DEFAULTS.upscales,
    credentials_block: str = DEFAULTS.credentials_block,
    max_creative_units: float | None = DEFAULTS.max_creative_units,
    max_concurrency: int = DEFAULTS.max_concurrency,
    concurrency_limit: str | None = DEFAULTS.concurrency_limit,
    fail_on_any_error: bool = DEFAULTS.fail_on_any_error,
) -> NewAssetsResult:
    """Upscale the images and videos added to ``source`` since the last successful run.

    Made for a schedule (a nightly cron): each run lists the source, keeps what was modified
    after the watermark, and runs ``upscale-batch`` on just those. The watermark moves only
    when every new input was upscaled, so a failed input is tried again by the next run (the
    ones that succeeded are not paid for twice: the batch journal skips them). A run with
    nothing new starts no batch and submits no job.

    Args:
        source: A folder, a glob (``incoming/**/*.png``) or an fsspec URL (``s3://bucket/in/``).
        target: Output folder, a local path or an fsspec URL. The watermark is kept in it, so
            a new target starts from scratch.
        upscales: Models and parameters for every input (default: Upscale V3 at 2x). Another
            setting has its own watermark.
        credentials_block: Name of the saved ScenarioCredentials block.
        max_creative_units: Do not start if the new inputs would cost more than this.
        max_concurrency: Jobs in flight at once for this run.
        concurrency_limit: The team's global concurrency limit (see ``upscale-batch``).
        fail_on_any_error: End the run Failed if any input fails.

    Returns:
        The new inputs, the watermark after the run, and the batch report (None if nothing new).

    Example:
        >>> result = await upscale_new_assets("s3://assets/incoming/", "s3://assets/upscaled/")
        >>> result.new_inputs, result.outputs
        (['s3://assets/incoming/hero.png'], ['s3://assets/upscaled/hero@upscale-v3x2.png'])
    """
    logger = get_run_logger()
    options = UpscaleOptions.checked(
        "upscale-new-assets",
        target=target,
        upscales=upscales or [UpscaleSpec()],
        credentials_block=credentials_block,
        max_creative_units=max_creative_units,
        max_concurrency=max_concurrency,
        concurrency_limit=concurrency_limit,
        fail_on_any_error=fail_on_any_error,
    )
    # The watermark lives in the target: check it before reading it, and before paying.
    await asyncio.to_thread(check_target, target)
    mark_path = watermark_path(target, source, options.specs)
    new, mark = await find_new_assets(source, mark_path)
    since = mark.modified_at.isoformat() if mark.modified_at else "the beginning"
    if not new:
        logger.info("Nothing new in %s since %s", source, since)
        run = FlowRunContext.get()
        await report_nothing_new(
            source, target, since, run.flow_run.id if run and run.flow_run else None
        )
        return NewAssetsResult(source=source, target=target, watermark=mark)
    logger.info("%d new input(s) in %s since %s", len(new), source, since)
    batch = await upscale_batch(
        inputs=[f.location for f in new], **options.given(), return_state=True
    )
    report = await result_of(batch)  # a batch that failed as a whole fails this run too
    if report.ok:
        mark = await advance_watermark(mark_path, mark, new, _flow_run_id())
    else:
        logger.warning("Some inputs failed: the watermark stays, the next run tries them again")
    result = NewAssetsResult(
        source=source,
        target=target,
        new_inputs=[f.location for f in new],
        watermark=mark,
        report=report,
    )
    return _ended_as(batch, result)  # type: ignore[return-value]


# -- publish-upscaled ---------------------------------------------------------------------------


def thumbnail_name(output: str, max_size: int) -> str:
    """``<stem>.thumb<max_size>.png`` for an output location.

    Example:
        >>> thumbnail_name("file:///out/hero@upscale-v3x2.png", 256)
        'hero@upscale-v3x2.thumb256.png'
    """
    return f"{PurePosixPath(output).stem}.thumb{max_size}.png"


def _publish_one(output: str, destination: str, max_size: int) -> str | None:
    if PurePosixPath(output).suffix.lower() in sources.VIDEO_SUFFIXES:
        return None
    with fsspec.open(output, "rb") as handle:
        data = handle.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((max_size, max_size))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except (UnidentifiedImageError, OSError):
        return None
    published = f"{destination.rstrip('/')}/{thumbnail_name(output, max_size)}"
    # Whole or not at all: a reader of the publish folder never sees half a thumbnail.
    write_whole(published, buffer.getvalue())
    return published


@task(name="make-thumbnails", cache_policy=NO_CACHE, persist_result=False, retries=2)
async def make_thumbnails(outputs: list[str], destination: str, max_size: int) -> list[str]:
    """One PNG thumbnail per image output (videos are left out), written to ``destination``."""
    published = [await asyncio.to_thread(_publish_one, o, destination, max_size) for o in outputs]
    return [p for p in published if p is not None]


GALLERY_ARTIFACT_KEY = "scenario-upscale-published"
GALLERY_PICTURES = 48
"""Thumbnails shown in the gallery artifact; the rest are listed by name."""


def gallery_markdown(outputs: list[str], published: list[str], destination: str) -> str:
    """The gallery of a publish run: an inline picture of each thumbnail it wrote (within
    ``flows.pictures``' budget), then the names of the rest."""
    if not published:
        return (
            f"## Nothing published\n\nNone of the {len(outputs)} output(s) given is an image "
            f"to publish into {code(destination)}."
        )
    pictures = PictureBudget()
    lines = [f"## Published {len(published)} thumbnail(s) into {code(destination)}", ""]
    shown = 0
    for location in published[:GALLERY_PICTURES]:
        name = PurePosixPath(location).name
        picture = pictures.picture(location, name)
        if not picture:
            break
        lines.append(f"{picture} {code(name)}  ")
        shown += 1
    rest = published[shown:]
    if rest:
        lines += ["", f"And {len(rest)} more:", ""] + [f"* {code(p)}" for p in rest]
    skipped = len(outputs) - len(published)
    if skipped:
        lines += ["", f"{skipped} output(s) were not images (videos or unreadable): skipped."]
    return "\n".join(lines)


@flow(name="publish-upscaled", log_prints=False)
async def publish_upscaled(
    outputs: list[str], destination: str = "published", max_size: int = 256
) -> list[str]:
    """Publish upscaled images: a thumbnail of each into ``destination``.

    The downstream step of an asset pipeline. Its ``on-batch-completed`` deployment is started by
    ``scenario.upscale.batch.completed`` events with ``outputs`` templated from the event's
    ``payload.outputs``: it works on exactly the files that batch wrote.

    Args:
        outputs: Output locations (paths, ``file://`` or fsspec URLs), as a batch reports them.
        destination: Publish folder, a local path or an fsspec URL.
        max_size: Longest side of a thumbnail, in pixels.

    Returns:
        The thumbnails written (videos and unreadable files are skipped). A gallery artifact
        shows them; a run given no outputs (a batch that wrote nothing new) publishes nothing.

    Example:
        >>> await publish_upscaled(["upscaled/hero@upscale-v3x2.png"], "published")
        ['published/hero@upscale-v3x2.thumb256.png']
    """
    logger = get_run_logger()
    published = await make_thumbnails(outputs, destination, max_size) if outputs else []
    logger.info(
        "Published %d thumbnail(s) of %d output(s) to %s", len(published), len(outputs), destination
    )
    await acreate_markdown_artifact(
        markdown=await asyncio.to_thread(gallery_markdown, outputs, published, destination),
        key=GALLERY_ARTIFACT_KEY,
        description=f"{len(published)} thumbnail(s) published into {code(destination)}",
    )
    return published


# -- asset-pipeline -----------------------------------------------------------------------------


class PipelineResult(BaseModel):
    """What each step of ``asset-pipeline`` handed to the next."""

    ingested: list[str]
    report: BatchReport
    published: list[str]
    upscale_flow_run_id: str | None = None


@task(name="ingest-assets", cache_policy=NO_CACHE, persist_result=False, retries=2)
async def ingest_assets(source: str, staging: str) -> list[str]:
    """Copy the images and videos of ``source`` into ``staging``; their new locations.

    Stands for whatever brings assets in (a download, an export from a DCC tool, a scan).
    """
    return await asyncio.to_thread(_copy_all, source, staging)


def _copy_all(source: str, staging: str) -> list[str]:
    copied = []
    for location in sources.expand(source):
        name = PurePosixPath(location).name
        destination = f"{absolute(staging).rstrip('/')}/{name}"
        fs, path = fsspec.core.url_to_fs(destination)
        fs.makedirs(os.path.dirname(path), exist_ok=True)
        with fsspec.open(location, "rb") as src, fs.open(path, "wb") as dst:
            dst.write(src.read())
        copied.append(destination)
    return copied


async def _upscale_on_deployment(
    deployment: str, parameters: dict[str, Any], timeout_s: float
) -> tuple[BatchReport, str]:
    run = await run_deployment(  # type: ignore[misc]
        deployment, parameters=parameters, timeout=timeout_s, poll_interval=1
    )
    if run.state is None or not (run.state.is_completed() or run.state.name == PARTIALLY_COMPLETED):
        state = run.state.name if run.state else "unknown"
        raise RuntimeError(
            f"{deployment} run {run.id} ended {state}, not Completed or {PARTIALLY_COMPLETED}"
        )
    # Deployment runs persist their results (PREFECT_RESULTS_PERSIST_BY_DEFAULT, set by
    # deployments.serve and prefect.yaml): this is the run's own BatchReport, not a guess.
    return cast(BatchReport, await result_of(run.state)), str(run.id)


@flow(name="asset-pipeline", log_prints=False)
async def asset_pipeline(
    source: str,
    staging: str = "staging",
    target: str = DEFAULTS.target,
    published: str = "published",
    upscales: list[UpscaleSpec] | None = DEFAULTS.upscales,
    credentials_block: str = DEFAULTS.credentials_block,
    max_creative_units: float | None = DEFAULTS.max_creative_units,
    upscale_deployment: str | None = None,
    upscale_timeout_s: float = 3600.0,
) -> PipelineResult:
    """Ingest -> upscale -> publish, each step's result handed to the next.

    The upscale step runs as a subflow of this run by default. Name a deployment of
    ``upscale-batch`` in ``upscale_deployment`` (e.g. ``"upscale-batch/upscale-folder"``) to run it
    there instead, on that deployment's infrastructure, with ``run_deployment``: its persisted
    BatchReport comes back as this flow's input to the publish step.

    Args:
        source: Where the assets come from: folder, glob or fsspec URL.
        staging: Where ingest puts them.
        target: Output folder of the upscales.
        published: Publish folder of the thumbnails.
        upscales: Models and parameters (default: Upscale V3 at 2x).
        credentials_block: Name of the saved ScenarioCredentials block.
        max_creative_units: Do not upscale if it would cost more than this.
        upscale_deployment: Run the upscale on this deployment rather than as a subflow.
        upscale_timeout_s: How long to wait for that deployment's run.

    Returns:
        The ingested files, the batch report and the published thumbnails.

    Example:
        >>> result = await asset_pipeline("s3://drop/today/", upscale_deployment=None)
        >>> result.published
        ['published/hero@upscale-v3x2.thumb256.png']
    """
    logger = get_run_logger()
    options = UpscaleOptions.checked(
        "asset-pipeline",
        target=target,
        upscales=upscales or [UpscaleSpec()],
        credentials_block=credentials_block,
        max_creative_units=max_creative_units,
    )
    ingested = await ingest_assets(source, staging)
    logger.info("Ingested %d asset(s) into %s", len(ingested), staging)
    run_id: str | None = None
    if upscale_deployment:
        # Only what this run was given: the deployment's own defaults stand for the rest.
        parameters = {
            "inputs": ingested,
            **options.model_dump(mode="json", include=options.model_fields_set),
            "target": absolute(target),
        }
        report, run_id = await _upscale_on_deployment(
            upscale_deployment, parameters, upscale_timeout_s
        )
    else:
        batch = await upscale_batch(inputs=ingested, **options.given(), return_state=True)
        report = await result_of(batch)
    # What the batch did upscale is published, even when some inputs failed.
    thumbnails = await publish_upscaled(outputs_of(report), published)
    result = PipelineResult(
        ingested=ingested, report=report, published=thumbnails, upscale_flow_run_id=run_id
    )
    if not report.ok:
        message = f"{report.summary()}; published what succeeded"
        return partially_completed(result, message)  # type: ignore[return-value]
    return result
