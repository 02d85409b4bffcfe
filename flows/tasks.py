"""Prefect tasks: one per step of the engine's batch pipeline, each over a shard of items, and
``PrefectSteps``, the runner that makes ``scenario_upscale.pipeline.run_pipeline`` run each step
as its task.

A task per *shard* rather than per job keeps a batch of thousands within a few hundred task runs:
the Prefect server stores ~25 task runs/s, so one task per job per step would cost more than the
jobs' own orchestration (see bench/). The three tasks of a shard (submit, poll, collect) run at
the same time, items streaming from one to the next. The engine's ``BatchSession`` holds the
client, the job watcher and the slots, and is shared by the tasks of one flow run.

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
  (Nor could the three streaming steps of a shard be retried: a retry would find its input
  stream already consumed.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar, cast

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import opaque

from flows.lineage import record_outputs
from flows.reporting import emit_item_events
from flows.team_slots import TeamSlots
from scenario_upscale import pipeline
from scenario_upscale.batch import ItemResult
from scenario_upscale.errors import (
    ScenarioConnectionError,
    ScenarioRateLimited,
    ScenarioServerError,
)
from scenario_upscale.slots import JobSlots

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
    step: Callable[P, Awaitable[R]], name: str, *, retries: int = 0
) -> Task[P, Awaitable[R]]:
    """The engine's ``step`` as a task; with ``retries``, transient failures are retried with
    backoff and jitter.

    The session argument is a live object (HTTP pool, watcher), and the streams between the
    steps of a shard too: never hashed into a cache key, results not persisted; the engine's
    journal is what resumes a batch.
    """
    return task(
        name=name,
        cache_policy=NO_CACHE,
        persist_result=False,
        retries=retries,
        retry_delay_seconds=_BACKOFF,
        retry_jitter_factor=0.5,
        retry_condition_fn=transient if retries else None,
    )(step)


prepare_inputs = step_task(pipeline.prepare, "prepare-inputs", retries=1)
price_jobs = step_task(pipeline.price, "price-jobs")
submit_jobs = step_task(pipeline.submit, "submit-jobs")
poll_jobs = step_task(pipeline.wait, "poll-jobs")
collect_outputs = step_task(pipeline.collect, "collect-outputs")
_TASKS: dict[Callable[..., Any], Task[..., Any]] = {
    pipeline.prepare: prepare_inputs,
    pipeline.price: price_jobs,
    pipeline.submit: submit_jobs,
    pipeline.wait: poll_jobs,
    pipeline.collect: collect_outputs,
}


@contextlib.asynccontextmanager
async def _slots(
    name: str | None,
    occupy: int,
    waiting: Callable[[str | None], None],
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> AsyncIterator[TeamSlots | None]:
    """This run's share of the team's limit ``name`` (None without one), with ``occupy`` slots
    taken up front in one request (or none if the limit has not that much room; see
    ``TeamSlots.reserve``); each job takes a slot and gives it back when it ends."""
    if not name:
        yield None
        return
    async with TeamSlots(name, waiting, logger) as team:
        await team.reserve(occupy)
        yield team


class PrefectSteps:
    """Runs each step of the engine's pipeline as its Prefect task, within a flow run.

    Args:
        concurrency_limit: The global concurrency limit whose slots the run's jobs hold (the
            team's ceiling, shared by every run), or None to run without one.

    Example:
        >>> report = await run_pipeline(session, inputs, specs, options, PrefectSteps(limit))
    """

    def __init__(self, concurrency_limit: str | None) -> None:
        self.concurrency_limit = concurrency_limit
        self._logger = get_run_logger()

    @property
    def logger(self) -> logging.Logger | logging.LoggerAdapter[Any]:
        return self._logger

    async def run(self, step: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        # ``opaque``: Prefect walks every argument, field by field, twice per task run to find
        # upstream futures, nearly half of a task run's start (py-spy): a shard's 25 items, the
        # batch's 1000 for price. Opaque, an argument that is a task's result (``plan.items``)
        # still links that task run upstream; what is in it is not searched.
        quiet = [opaque(a) for a in args]
        return cast(R, await _TASKS[step](*quiet, **{k: opaque(v) for k, v in kwargs.items()}))

    async def settled(self, results: Sequence[ItemResult]) -> None:
        """Lineage for new outputs, then a job event for each result."""
        collected = [r for r in results if r.status == "success"]
        if collected:
            await record_outputs(collected)
        emit_item_events(results)

    @contextlib.asynccontextmanager
    async def holding(
        self, slots: JobSlots, waiting: Callable[[str | None], None], jobs: int
    ) -> AsyncIterator[None]:
        """Each job's slot is also a slot of the team's limit, taken at its submit and given
        back when it ends: concurrent runs share the ceiling instead of queueing for it. The
        slots the first submits need are taken at once, before the shards' tasks start."""
        first = min(slots.limit, jobs)
        async with _slots(self.concurrency_limit, first, waiting, self._logger) as team:
            with slots.sharing(team) if team is not None else contextlib.nullcontext():
                yield
