"""What a batch run shows and tells: a progress artifact, a results table, and Prefect events.

Events are the hand-off to the next step of an asset pipeline: each names the output locations as
related resources, so a deployment trigger can match them and template them into its parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.events import emit_event

from scenario_upscale.batch import BatchReport, ItemResult, Progress

JOB_COMPLETED = "scenario.upscale.job.completed"
JOB_FAILED = "scenario.upscale.job.failed"
BATCH_COMPLETED = "scenario.upscale.batch.completed"
RESULTS_ARTIFACT_KEY = "scenario-upscale-results"
RELATED_OUTPUTS_LIMIT = 50
"""Prefect refuses an event with over 100 related resources (the run context adds its own), so a
batch event names at most this many outputs as resources; its payload always lists them all."""

ProgressListener = Callable[[Progress], None]
_listeners: ContextVar[tuple[ProgressListener, ...]] = ContextVar(
    "scenario_upscale_progress_listeners", default=()
)


@contextlib.contextmanager
def watching_progress(listener: ProgressListener) -> Iterator[None]:
    """Call ``listener`` with the counts of every batch run inside this block, in this process.

    The hook for a terminal's progress bar: scoped to the caller's context (a context variable,
    which the flow run and its tasks inherit), so nothing lingers once the block ends and two
    callers in one process do not see each other's listeners.

    Example:
        >>> with watching_progress(lambda p: print(p.done, "of", p.total)):
        ...     asyncio.run(upscale_batch("art/"))  # doctest: +SKIP
    """
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


def resource_id_for(location: str) -> str:
    """A stable Prefect resource id for a file location: an absolute ``file://`` URL or the URL.

    Example:
        >>> resource_id_for("s3://bucket/a.png")
        's3://bucket/a.png'
    """
    if "://" in location:
        return location
    return "file://" + os.path.abspath(location)


def _related(location: str, role: str) -> dict[str, str]:
    return {"prefect.resource.id": resource_id_for(location), "prefect.resource.role": role}


class RunReporter:
    """Keeps the progress artifact of one flow run current, at most once per ``interval_s``, and
    tells the listeners of ``watching_progress`` (those in force where it is made)."""

    def __init__(self, description: str, interval_s: float = 1.0) -> None:
        self.description = description
        self.interval_s = interval_s
        self._artifact_id: UUID | None = None
        self._latest = Progress()
        self._pending: asyncio.Task[None] | None = None
        self._listeners = _listeners.get()

    async def start(self) -> None:
        self._artifact_id = await acreate_progress_artifact(
            progress=0.0, description=self.description
        )

    def on_progress(self, progress: Progress) -> None:
        self._latest = progress
        for listener in self._listeners:
            listener(progress)
        if self._artifact_id is not None and (self._pending is None or self._pending.done()):
            self._pending = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        # Coalesce bursts: one API write per interval, however many jobs moved.
        await asyncio.sleep(self.interval_s)
        await self._write()

    async def _write(self) -> None:
        p = self._latest
        if self._artifact_id is None or p.total == 0:
            return
        # The description says what the run waits for, if anything (the team's slots), and no
        # longer once it goes on.
        description = self.description + (
            f"\n\nWaiting for {p.waiting_for}" if p.waiting_for else ""
        )
        await aupdate_progress_artifact(
            self._artifact_id, 100.0 * min(p.done, p.total) / p.total, description=description
        )

    async def finish(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
        if self._artifact_id is not None:
            await aupdate_progress_artifact(self._artifact_id, 100.0)


def results_table(results: Sequence[ItemResult]) -> list[dict[str, Any]]:
    """One row per input and model, with input and output sizes, for the table artifact."""

    def size(width: int | None, height: int | None) -> str:
        return f"{width}x{height}" if width and height else ""

    return [
        {
            "source": r.source,
            "model": r.model_id,
            "status": r.status,
            "job": r.job_id or "",
            "creative units": r.creative_units if r.creative_units is not None else "",
            "input size": size(r.input_width, r.input_height),
            "output size": size(r.output_width, r.output_height),
            "output": ", ".join(r.outputs),
            "error": r.error or "",
        }
        for r in results
    ]


async def publish_results(report: BatchReport, target: str) -> UUID:
    """The table artifact of a finished batch."""
    return await acreate_table_artifact(
        table=results_table(report.results),
        key=RESULTS_ARTIFACT_KEY,
        description=f"Scenario upscale into `{target}`: {report.summary()}",
    )


def emit_item_events(results: Sequence[ItemResult]) -> None:
    """``scenario.upscale.job.completed`` / ``.failed`` for each newly finished item."""
    for r in results:
        if r.status == "skipped":
            continue  # finished in an earlier run, which announced it
        name = JOB_COMPLETED if r.status == "success" else JOB_FAILED
        emit_event(
            event=name,
            resource={
                "prefect.resource.id": f"scenario.job.{r.job_id or 'not-submitted'}",
                "prefect.resource.name": os.path.basename(r.source),
                "scenario.model": r.model_id,
                "scenario.status": r.status,
            },
            related=[_related(o, "output") for o in r.outputs] + [_related(r.source, "input")],
            payload=r.model_dump(mode="json"),
        )


def emit_batch_event(report: BatchReport, target: str, flow_run_id: UUID | None) -> None:
    """``scenario.upscale.batch.completed``: every output location, for downstream triggers.

    The payload lists every output; the related resources name the first
    ``RELATED_OUTPUTS_LIMIT`` (label ``scenario.outputs`` gives the count).
    """
    outputs = [o for r in report.results for o in r.outputs]
    emit_event(
        event=BATCH_COMPLETED,
        resource={
            "prefect.resource.id": f"scenario.upscale.batch.{flow_run_id or 'local'}",
            "scenario.target": resource_id_for(target),
            "scenario.ok": str(report.ok).lower(),
            "scenario.outputs": str(len(outputs)),
        },
        related=[_related(o, "output") for o in outputs[:RELATED_OUTPUTS_LIMIT]],
        payload={
            "target": target,
            "outputs": outputs,
            "succeeded": report.count("success"),
            "skipped": report.count("skipped"),
            "failed": len(report.results) - report.count("success", "skipped"),
            "creative_units": report.creative_units,
        },
    )
