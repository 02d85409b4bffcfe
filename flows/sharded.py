"""``upscale-sharded``: one large batch as shards, each a flow run of the ``upscale-batch``
deployment, so the shards run on whichever workers of its pool are free.

* Shards are cut deterministically: the inputs expanded (folders, globs), sorted, then cut into
  consecutive runs of ``shard_inputs``. A rerun of the parent makes the same shards, and every
  shard resumes from the target's journal, so nothing is paid for twice.
* All shards share the team's ceiling (the global concurrency limit; each job takes a slot of
  it while in flight) and the target's per-input claims (``Journal.claim``): two shards, or two
  batches, on one input never both pay for it.
* A shard whose worker died is run again: a shard run that is not finished while the worker
  that took it stopped sending heartbeats (for three of its heartbeat intervals) is marked
  Crashed and started anew, as is a run that ended Crashed. The new run takes over the jobs the
  dead one submitted (from the journal, or through ``GET /v1/jobs`` for a submit whose answer
  the dead run never recorded) and collects their outputs. That needs the journal shared by the
  workers: a target on their shared file system (a remote target's journal is per machine; see
  README, "Scaling out").
* The parent alone reports: one BatchReport, one results table, one
  ``scenario.upscale.batch.completed`` event for the whole batch (the shards run with
  ``announce=False``).

Shard results come back through Prefect's result storage (``state.aresult()``): deployment
runs persist theirs (``PREFECT_RESULTS_PERSIST_BY_DEFAULT``, set by ``prefect.yaml`` and the
stack); across machines, point ``PREFECT_DEFAULT_RESULT_STORAGE_BLOCK`` at storage every worker
and the parent can read.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.states import Crashed

from flows.options import DEFAULTS
from flows.reporting import emit_batch_event, publish_results
from flows.states import BatchIncomplete, final_state
from flows.upscale import team_ceiling
from scenario_upscale import sources
from scenario_upscale.batch import BatchReport, ItemResult, UpscaleSpec

SHARD_DEPLOYMENT = "upscale-batch/upscale-folder"
WORKER_SILENCE_HEARTBEATS = 3
"""A worker silent for this many of its heartbeat intervals is taken for dead (Prefect's foreman
marks it offline after the same count)."""


def cut_shards(inputs: str | list[str], shard_inputs: int) -> list[list[str]]:
    """The inputs, expanded and sorted, in consecutive shards of at most ``shard_inputs``.

    Example:
        >>> cut_shards(["c.png", "a.png", "b.png"], 2)
        [['a.png', 'b.png'], ['c.png']]
    """
    locations = sorted(set(sources.expand(inputs)))
    size = max(1, shard_inputs)
    return [locations[i : i + size] for i in range(0, len(locations), size)]


class ShardFailed(RuntimeError):
    """A shard did not finish within its attempts."""

    def __init__(self, index: int, attempts: int, why: str) -> None:
        super().__init__(f"shard {index} did not finish after {attempts} attempt(s): {why}")


async def _dead_workers(client: PrefectClient, pool: str) -> set[str]:
    now = datetime.now(UTC)
    dead = set()
    for worker in await client.read_workers_for_work_pool(pool):
        interval = worker.heartbeat_interval_seconds or 30
        silence = timedelta(seconds=WORKER_SILENCE_HEARTBEATS * interval)
        if worker.last_heartbeat_time is None or now - worker.last_heartbeat_time > silence:
            dead.add(worker.name)
    return dead


class _Shard:
    def __init__(self, index: int, inputs: list[str]) -> None:
        self.index = index
        self.inputs = inputs
        self.attempts = 0
        self.run: FlowRun | None = None
        self.report: BatchReport | None = None


async def _start(
    shard: _Shard, deployment: str, parameters: dict[str, Any], parent: UUID | None
) -> None:
    shard.attempts += 1
    shard.run = await run_deployment(  # type: ignore[misc]
        deployment,
        parameters={**parameters, "inputs": shard.inputs},
        timeout=0,
        idempotency_key=f"{parent}-shard-{shard.index}-attempt-{shard.attempts}",
    )


@flow(name="upscale-sharded", log_prints=False)
async def upscale_sharded(
    inputs: list[str] | str,
    target: str = DEFAULTS.target,
    upscales: list[UpscaleSpec] | None = DEFAULTS.upscales,
    credentials_block: str = DEFAULTS.credentials_block,
    max_concurrency: int = DEFAULTS.max_concurrency,
    concurrency_limit: str | None = DEFAULTS.concurrency_limit,
    job_deadline_minutes: float = DEFAULTS.job_deadline_minutes,
    fail_on_any_error: bool = DEFAULTS.fail_on_any_error,
    shard_inputs: int = 100,
    shard_deployment: str = SHARD_DEPLOYMENT,
    shard_attempts: int = 3,
    poll_s: float = 2.0,
) -> BatchReport:
    """Upscale a large batch as shards run by the workers of ``shard_deployment``'s pool.

    Args:
        inputs: Files, folders, globs or fsspec URLs (expanded here to cut the shards).
        target: Output folder: a local path or an fsspec URL every worker reaches.
        upscales: Models and their parameters. Default: Scenario Upscale V3 at 2x.
        credentials_block: Name of the saved ScenarioCredentials block.
        max_concurrency: Jobs in flight at once for each shard.
        concurrency_limit: The team's global concurrency limit, shared by all shards.
        job_deadline_minutes: Give up waiting for a job after this long.
        fail_on_any_error: End the run Failed if any input fails.
        shard_inputs: Inputs per shard.
        shard_deployment: The ``upscale-batch`` deployment that runs each shard.
        shard_attempts: Runs of one shard at most (a crashed one is run again).
        poll_s: How often the shards' runs and their workers are checked.

    Returns:
        One BatchReport for the whole batch.

    Example:
        >>> report = await upscale_sharded("art/", "s3://assets/upscaled/", shard_inputs=200)
    """
    logger = get_run_logger()
    started = datetime.now(UTC)
    shards = [_Shard(i, s) for i, s in enumerate(cut_shards(inputs, shard_inputs))]
    total = sum(len(s.inputs) for s in shards)
    logger.info("%d input(s) in %d shard(s) of at most %d", total, len(shards), shard_inputs)
    context = FlowRunContext.get()
    parent = context.flow_run.id if context and context.flow_run else None
    parameters: dict[str, Any] = {
        "target": target,
        "upscales": [u.model_dump() for u in upscales] if upscales else None,
        "credentials_block": credentials_block,
        "advanced": {
            "max_concurrency": max_concurrency,
            "concurrency_limit": concurrency_limit or "",
            "job_deadline_minutes": job_deadline_minutes,
        },
        "announce": False,
    }
    # Created here, once, if missing: shards starting together would race to create it.
    await team_ceiling(concurrency_limit, max_concurrency)
    await asyncio.gather(*(_start(s, shard_deployment, parameters, parent) for s in shards))
    async with get_client() as client:
        while pending := [s for s in shards if s.report is None]:
            await asyncio.sleep(poll_s)
            for shard in pending:
                await _check(client, shard, shard_deployment, parameters, parent, shard_attempts)
    reports = [cast(BatchReport, s.report) for s in shards]
    report = BatchReport(
        results=[_of_this_batch(r, started) for part in reports for r in part.results],
        creative_units=round(sum(part.creative_units for part in reports), 6),
        started_at=started,
        finished_at=datetime.now(UTC),
    )
    await publish_results(report, target)
    emit_batch_event(report, target, parent, fail_on_any_error=fail_on_any_error)
    logger.info("%s", report.summary())
    return final_state(report, fail_on_any_error)  # type: ignore[return-value]


def _of_this_batch(result: ItemResult, started: datetime) -> ItemResult:
    """A shard rerun after its run died finds what that run collected already done ("skipped");
    for the batch it is an output of its own, announced (and published) by it, not an older one."""
    if result.status == "skipped" and result.collected_at and result.collected_at >= started:
        return result.model_copy(update={"status": "success", "resumed": True})
    return result


async def _check(
    client: PrefectClient,
    shard: _Shard,
    deployment: str,
    parameters: dict[str, Any],
    parent: UUID | None,
    attempts: int,
) -> None:
    """Take a finished shard's report, or start it again if its run or its worker died."""
    assert shard.run is not None
    run = await client.read_flow_run(shard.run.id)
    state = run.state
    why: str | None = None
    if state is not None and state.is_final():
        result = await state.aresult(raise_on_failure=False)
        if isinstance(result, BatchReport):
            shard.report = result
            return
        if isinstance(result, BatchIncomplete):  # some of its inputs failed: not a crash
            shard.report = result.report
            return
        why = f"run {run.name} ended {state.name}: {state.message}"
        if state.is_cancelled():  # someone stopped it on purpose: not a crash to retry
            raise ShardFailed(shard.index, shard.attempts, why)
    else:
        worker = run.labels.get("prefect.worker.name")
        pool = run.work_pool_name
        if worker and pool and worker in await _dead_workers(client, pool):
            why = f"run {run.name}'s worker {worker} stopped sending heartbeats"
            await client.set_flow_run_state(run.id, Crashed(message=why), force=True)
    if why is None:
        return
    if shard.attempts >= attempts:
        raise ShardFailed(shard.index, shard.attempts, why)
    get_run_logger().warning("Shard %d: %s; running it again", shard.index, why)
    await _start(shard, deployment, parameters, parent)
