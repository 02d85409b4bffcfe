"""Prefect tasks: one per step of the engine's batch pipeline, each over a shard of items.

A task per *shard* rather than per job keeps a batch of thousands within a few hundred task runs:
the Prefect server stores ~25 task runs/s, so one task per job per step would cost more than the
jobs' own orchestration (see bench/). The engine's ``BatchSession`` holds the client, the job
watcher and the slots, and is shared by the tasks of one flow run.

Retries: the engine retries every failure it can tell apart, one policy per kind
(``scenario_upscale.retry``), and Prefect retries a task only where the engine cannot:

* ``prepare-inputs``: once, after a pause, for a transient failure. The engine does not retry
  listing or reading a source store (an fsspec ``OSError``), and prepare is the run's first
  contact with the API: a model read that failed all its tries fails the whole batch, so one
  more try after the read policy has given up covers a longer outage. Repeating it is free:
  uploads are journaled by content hash and nothing is paid.
* ``price-jobs``: never. Each dry run already went through the read policy; when it still
  fails the API is down, and a rerun resumes from the journal without paying twice.
* ``submit-jobs``: never. The engine reconciles a lost submit through ``GET /v1/jobs`` and
  waits out the concurrency ceiling itself; a blind retry is how integrations pay twice.
* ``poll-jobs``, ``collect-outputs``: never. The engine turns every API error into that item's
  result, so a task retry could never fire; what is left is a bug, which another try repeats.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from scenario_upscale.batch import (
    BatchItem,
    BatchSession,
    ItemResult,
    Plan,
    SubmittedItem,
    UpscaleSpec,
)
from scenario_upscale.errors import (
    ScenarioConnectionError,
    ScenarioRateLimited,
    ScenarioServerError,
)
from scenario_upscale.models import Price

_BACKOFF = exponential_backoff(backoff_factor=2)
P = ParamSpec("P")
R = TypeVar("R")


async def transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what another try can fix: a bad parameter or input fails at once."""
    try:
        # Async: in the async task engine a plain ``state.result()`` is a coroutine that never
        # raises, so no transient failure was ever retried.
        await state.aresult()
    except (ScenarioServerError, ScenarioConnectionError, ScenarioRateLimited, OSError):
        return True
    except Exception:
        return False
    return False


def step_task(
    name: str, *, retries: int = 0
) -> Callable[[Callable[P, Awaitable[R]]], Task[P, Awaitable[R]]]:
    """A step task; with ``retries``, transient failures are retried with backoff and jitter.

    The session argument is a live object (HTTP pool, watcher): it is never hashed into a cache
    key and results are not persisted; the engine's journal is what resumes a batch.
    """
    return task(
        name=name,
        cache_policy=NO_CACHE,
        persist_result=False,
        retries=retries,
        retry_delay_seconds=_BACKOFF,
        retry_jitter_factor=0.5,
        retry_condition_fn=transient if retries else None,
    )


@step_task("prepare-inputs", retries=1)
async def prepare_inputs(
    session: BatchSession, inputs: str | Iterable[str], upscales: Sequence[UpscaleSpec]
) -> Plan:
    """Resolve the inputs, check the parameters against each model, upload what is new.

    Uploads are keyed by content hash in the run's journal, so a retry re-uploads nothing.
    """
    return await session.prepare(inputs, upscales)


@step_task("price-jobs")
async def price_jobs(session: BatchSession, items: Sequence[BatchItem]) -> dict[str, Price]:
    """Dry-run price of each item not yet paid for (HTTP 269: nothing runs, nothing is charged)."""
    return await session.price(items)


@step_task("submit-jobs")
async def submit_jobs(
    session: BatchSession, items: Sequence[BatchItem]
) -> list[SubmittedItem | ItemResult]:
    """Submit a shard (or take over jobs an earlier run submitted). Never retried blindly."""
    return await session.submit(items)


@step_task("poll-jobs")
async def poll_jobs(
    session: BatchSession, submitted: Sequence[SubmittedItem]
) -> list[SubmittedItem | ItemResult]:
    """Wait for a shard's jobs to reach a terminal status (one watcher serves all shards)."""
    return await session.wait(submitted)


@step_task("collect-outputs")
async def collect_outputs(
    session: BatchSession, finished: Sequence[SubmittedItem]
) -> list[ItemResult]:
    """Download a shard's outputs atomically into the target and record them in the journal."""
    return await session.collect(finished)
