"""The flows users run: ``upscale-batch`` (many inputs) and ``upscale-image`` (one).

Thin orchestration: the engine composes and does the work (``scenario_upscale.pipeline``, the
same composition ``run_batch`` runs), ``flows.tasks.PrefectSteps`` runs each of its steps as a
task, ``flows.options`` holds the parameters the flows share, and ``flows.reporting`` shows
progress, results and events.
"""

from __future__ import annotations

from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound

from blocks.credentials import ScenarioCredentials
from flows.cancellation import stops_when_cancelled
from flows.options import (
    DEFAULT_CONCURRENCY_LIMIT,
    DEFAULT_CREDENTIALS_BLOCK,
    DEFAULTS,
    UpscaleOptions,
)
from flows.reporting import RunReporter, emit_batch_event, publish_results, report_budget_stop
from flows.states import final_state, over_budget_state
from flows.tasks import PrefectSteps
from scenario_upscale.batch import BatchReport, BatchSession, ItemResult, UpscaleSpec
from scenario_upscale.errors import BudgetExceeded
from scenario_upscale.pipeline import run_pipeline
from scenario_upscale.polling import PollPolicy

__all__ = [
    "DEFAULT_CONCURRENCY_LIMIT",
    "DEFAULT_CREDENTIALS_BLOCK",
    "team_ceiling",
    "upscale_batch",
    "upscale_image",
]


async def team_ceiling(name: str | None, default: int) -> int:
    """The team's concurrency ceiling: the global concurrency limit ``name``, created on first use.

    Every flow run of every deployment takes its slots from this one limit, so concurrent runs
    together never exceed what Scenario allows the team (a 429 there would only slow them down).
    """
    if not name:
        return default
    async with get_client() as client:
        try:
            limit = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=default)
            )
            return default
    return max(1, limit.limit)


@flow(name="upscale-batch", log_prints=False)
@stops_when_cancelled
async def upscale_batch(
    inputs: list[str] | str,
    target: str = DEFAULTS.target,
    upscales: list[UpscaleSpec] | None = DEFAULTS.upscales,
    credentials_block: str = DEFAULTS.credentials_block,
    max_creative_units: float | None = DEFAULTS.max_creative_units,
    dry_run_pricing: bool = DEFAULTS.dry_run_pricing,
    max_concurrency: int = DEFAULTS.max_concurrency,
    concurrency_limit: str | None = DEFAULTS.concurrency_limit,
    shard_size: int = DEFAULTS.shard_size,
    job_deadline_minutes: float = DEFAULTS.job_deadline_minutes,
    fail_on_any_error: bool = DEFAULTS.fail_on_any_error,
    announce: bool = True,
) -> BatchReport:
    """Upscale many images with one or more Scenario models into a target folder.

    Each input is paid for once: reruns skip collected outputs and take over jobs already
    submitted. One failing input does not stop the others; the run then ends "Partially
    completed" (or "Failed" with ``fail_on_any_error``), both FAILED-type states (see
    ``flows.states``), raising ``BatchIncomplete`` with the report to a Python caller; the
    results say why.

    Args:
        inputs: Files, folders, globs (``art/**/*.png``), fsspec URLs (``s3://bucket/in/``),
            http URLs or existing Scenario asset ids.
        target: Output folder: a local path or an fsspec URL.
        upscales: Models and their parameters, each applied to every input. Default: Scenario
            Upscale V3 at 2x.
        credentials_block: Name of the saved ScenarioCredentials block.
        max_creative_units: Stop before anything is submitted if the dry-run total is above this.
        dry_run_pricing: Price every job first (free), and log the total.
        max_concurrency: Jobs in flight at once for this run.
        concurrency_limit: Global concurrency limit shared by all runs (the team's ceiling);
            created with ``max_concurrency`` slots if missing. Empty to run without one.
        shard_size: Inputs per submit/poll/collect task.
        job_deadline_minutes: Give up waiting for a job after this long (it stays paid for).
        fail_on_any_error: End the run Failed if any input fails.
        announce: Publish the results table and the batch event. A shard of
            ``upscale-sharded`` leaves both to its parent, which announces the whole batch once.

    Returns:
        A BatchReport: per input and model, the status, job id, cost, outputs and error.

    Example:
        >>> spec = UpscaleSpec(model_id="model_upscale-v3", parameters={"upscaleFactor": 4})
        >>> report = await upscale_batch("art/", "s3://assets/upscaled/", upscales=[spec])
    """
    logger = get_run_logger()
    # Checked before anything is touched: a bad value must not reach the team's limit.
    options = UpscaleOptions.checked(
        "upscale-batch",
        target=target,
        upscales=upscales,
        max_creative_units=max_creative_units,
        dry_run_pricing=dry_run_pricing,
        max_concurrency=max_concurrency,
        shard_size=shard_size,
        job_deadline_minutes=job_deadline_minutes,
    )
    credentials = cast(ScenarioCredentials, await ScenarioCredentials.aload(credentials_block))
    ceiling = min(max_concurrency, await team_ceiling(concurrency_limit, max_concurrency))
    options = options.model_copy(update={"max_concurrency": ceiling})
    reporter = RunReporter(f"Upscaling into `{target}`")
    await reporter.start()
    run = FlowRunContext.get()
    run_id = run.flow_run.id if run and run.flow_run else None
    try:
        async with (
            credentials.get_client() as client,
            BatchSession(
                client,
                target,
                max_concurrency=ceiling,
                poll=PollPolicy(deadline_s=job_deadline_minutes * 60),
                on_progress=reporter.on_progress,
            ) as session,
        ):
            steps = PrefectSteps(concurrency_limit)
            report = await run_pipeline(session, inputs, options.specs, options, steps)
    except BudgetExceeded as stop:
        await report_budget_stop(stop, target, run_id, reporter)
        return over_budget_state(stop)  # type: ignore[return-value]
    state = final_state(report, fail_on_any_error)
    await reporter.finish(f"{state.name}: {report.summary()}")
    if announce:
        await publish_results(report, target)
        emit_batch_event(report, target, run_id, fail_on_any_error=fail_on_any_error)
    logger.info("%s", report.summary())
    return state  # type: ignore[return-value]


@flow(name="upscale-image", log_prints=False)
async def upscale_image(
    source: str,
    target: str = DEFAULTS.target,
    model_id: str = "model_upscale-v3",
    parameters: dict[str, Any] | None = None,
    credentials_block: str = DEFAULTS.credentials_block,
    max_creative_units: float | None = DEFAULTS.max_creative_units,
) -> ItemResult:
    """Upscale one image (a path, URL or asset id) into ``target``; fails if it fails.

    Args:
        source: The image: a local path, fsspec or http URL, or a Scenario asset id.
        target: Output folder: a local path or an fsspec URL.
        model_id: A Scenario upscale model id.
        parameters: The model's inputs by their API names, e.g. ``{"upscaleFactor": 4}``.
        credentials_block: Name of the saved ScenarioCredentials block.
        max_creative_units: Refuse to submit if the dry-run price is above this.

    Example:
        >>> result = await upscale_image("hero.png", parameters={"upscaleFactor": 4})
        >>> result.outputs
        ['upscaled/hero@upscale-v3x4.png']
    """
    report = await upscale_batch(
        inputs=[source],
        target=target,
        upscales=[UpscaleSpec(model_id=model_id, parameters=parameters or {})],
        credentials_block=credentials_block,
        max_creative_units=max_creative_units,
        fail_on_any_error=True,
    )
    return report.results[0]
