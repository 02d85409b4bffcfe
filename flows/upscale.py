"""The flows users run: ``upscale-batch`` (many inputs) and ``upscale-image`` (one).

Thin orchestration: the engine composes and does the work (``scenario_upscale.pipeline``, the
same composition ``run_batch`` runs), ``flows.tasks.PrefectSteps`` runs each of its steps as a
task, ``flows.options`` holds the parameters the flows share, and ``flows.reporting`` shows
progress, results and events.
"""

# No ``from __future__ import annotations``: a served run gets the flow cloudpickled, with only
# the globals its code uses, so the parameters' types must be objects, not names to look up.
from typing import cast

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
    Advanced,
    AdvancedSettings,
    Announce,
    Budget,
    Credentials,
    FailOnAnyError,
    ImageSource,
    Inputs,
    Model,
    OutputFolder,
    SeveralModels,
    UpscaleOptions,
)
from flows.reporting import RunReporter, emit_batch_event, publish_results, report_budget_stop
from flows.states import final_state, over_budget_state
from flows.tasks import PrefectSteps
from flows.upscale_models import ScenarioModels
from scenario_upscale.batch import BatchReport, BatchSession, ItemResult
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


DEFAULT_MODEL = ScenarioModels()
DEFAULT_ADVANCED = AdvancedSettings()


async def credentials_of(block: Credentials) -> ScenarioCredentials:
    """The block the form picked, or the saved block of that name."""
    if isinstance(block, ScenarioCredentials):
        return block
    return cast(ScenarioCredentials, await ScenarioCredentials.aload(block))


@flow(name="upscale-batch", log_prints=False)
@stops_when_cancelled
async def upscale_batch(
    inputs: Inputs,
    target: OutputFolder = DEFAULTS.target,
    model: Model = DEFAULT_MODEL,
    max_creative_units: Budget = 0,
    credentials_block: Credentials = DEFAULT_CREDENTIALS_BLOCK,
    fail_on_any_error: FailOnAnyError = DEFAULTS.fail_on_any_error,
    upscales: SeveralModels = DEFAULTS.upscales,
    advanced: Advanced = DEFAULT_ADVANCED,
    announce: Announce = True,
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
        model: The model and its parameters, chosen from the known upscale models (or any
            model id with raw parameters).
        max_creative_units: Stop before anything is submitted if the dry-run total is above
            this; 0 means no limit.
        credentials_block: A ScenarioCredentials block, or the name of a saved one.
        fail_on_any_error: End the run Failed if any input fails.
        upscales: Several models and their parameters, each applied to every input; replaces
            ``model`` when given.
        advanced: Pricing, concurrency, shard size and job deadline (see ``AdvancedSettings``).
        announce: Publish the results table and the batch event. A shard of
            ``upscale-sharded`` leaves both to its parent, which announces the whole batch once.

    Returns:
        A BatchReport: per input and model, the status, job id, cost, outputs and error.

    Example:
        >>> choice = ScenarioModels(scenario=UpscaleV3(upscaleFactor=4))
        >>> report = await upscale_batch("art/", "s3://assets/upscaled/", model=choice)
    """
    logger = get_run_logger()
    # Checked before anything is touched: a bad value must not reach the team's limit.
    options = UpscaleOptions.of(
        "upscale-batch",
        advanced,
        target=target,
        upscales=upscales or [model.spec()],
        max_creative_units=max_creative_units or None,
    )
    max_concurrency, concurrency_limit = options.max_concurrency, options.concurrency_limit
    job_deadline_minutes = options.job_deadline_minutes
    credentials = await credentials_of(credentials_block)
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
    source: ImageSource,
    target: OutputFolder = DEFAULTS.target,
    model: Model = DEFAULT_MODEL,
    max_creative_units: Budget = 0,
    credentials_block: Credentials = DEFAULT_CREDENTIALS_BLOCK,
) -> ItemResult:
    """Upscale one image (a path, URL or asset id) into ``target``; fails if it fails.

    Args:
        source: The image: a local path, fsspec or http URL, or a Scenario asset id.
        target: Output folder: a local path or an fsspec URL.
        model: The model and its parameters, chosen from the known upscale models.
        max_creative_units: Refuse to submit if the dry-run price is above this; 0: no limit.
        credentials_block: A ScenarioCredentials block, or the name of a saved one.

    Example:
        >>> choice = ScenarioModels(scenario=UpscaleV3(upscaleFactor=4))
        >>> result = await upscale_image("hero.png", model=choice)
        >>> result.outputs
        ['upscaled/hero@upscale-v3x4.png']
    """
    report = await upscale_batch(
        inputs=[source],
        target=target,
        model=model,
        credentials_block=credentials_block,
        max_creative_units=max_creative_units,
        fail_on_any_error=True,
    )
    return report.results[0]
