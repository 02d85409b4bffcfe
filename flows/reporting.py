"""What a batch run shows and tells: a live progress artifact, the results (before/after
pictures next to the figures, and the full table), and Prefect events.

Every run ends with its artifacts and its ``scenario.upscale.batch.completed`` event, however it
ends (``flows.states`` names the outcomes): finished, stopped on its budget, or with nothing new.
Events are the hand-off to the next step of an asset pipeline: each names the output locations as
related resources, so a deployment trigger can match them and template them into its parameters.

Creative units are reported as Scenario bills them: charged at submit, refunded when a job fails,
so the net figure (what the run cost) comes first and the refunded amount beside it.
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
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.events import emit_event

from flows.pictures import PictureBudget, code
from flows.states import Outcome, outcome_of
from scenario_upscale.batch import BatchReport, ItemResult, Progress
from scenario_upscale.errors import BudgetExceeded

JOB_COMPLETED = "scenario.upscale.job.completed"
JOB_FAILED = "scenario.upscale.job.failed"
BATCH_COMPLETED = "scenario.upscale.batch.completed"
RESULTS_ARTIFACT_KEY = "scenario-upscale-results"
"""The Markdown results: the figures, and a before/after pair per output of the first inputs."""
RESULTS_TABLE_KEY = "scenario-upscale-results-table"
"""Every input's row, however large the batch."""
PRICE_ARTIFACT_KEY = "scenario-upscale-price"
"""The dry-run price per model of a batch stopped by its budget."""
PICTURED_RESULTS = 24
"""Results shown with pictures in the results artifact; the table has them all."""
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
    return {
        "prefect.resource.id": resource_id_for(location),
        "prefect.resource.role": role,
        "prefect.resource.name": os.path.basename(location.rstrip("/")) or location,
    }


def _units(value: float) -> str:
    return f"{value:g}"


class RunReporter:
    """Keeps the progress artifact of one flow run current, at most once per ``interval_s``, and
    tells the listeners of ``watching_progress`` (those in force where it is made).

    The artifact's bar is the share of inputs settled; its description says it in words, with the
    jobs submitted and the creative units committed so far, so a cancelled or stopped run still
    shows what it has paid for.
    """

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

    async def _write(self, ending: str | None = None) -> None:
        p = self._latest
        if self._artifact_id is None or (p.total == 0 and ending is None):
            return
        percent = 100.0 * min(p.done, p.total) / p.total if p.total else 0.0
        lines = [self.description, "", progress_line(p, percent)]
        # What the run waits for, if anything (the team's slots), and no longer once it goes on.
        if p.waiting_for and ending is None:
            lines += ["", f"Waiting for {p.waiting_for}"]
        if ending:
            lines += ["", ending]
        await aupdate_progress_artifact(self._artifact_id, percent, description="\n".join(lines))

    async def _settle_pending(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending

    async def finish(self, ending: str | None = None) -> None:
        """The last write: the final counts, and ``ending`` (how the run ended) below them."""
        await self._settle_pending()
        await self._write(ending or "Finished.")


def progress_line(p: Progress, percent: float) -> str:
    """``**42 %**: 5 of 12 inputs settled (1 failed) · 7 jobs submitted · 70 creative units
    committed (10 refunded)``."""
    failed = f" ({p.failed} failed)" if p.failed else ""
    refunded = (
        f" ({_units(p.creative_units_refunded)} refunded)" if p.creative_units_refunded else ""
    )
    return (
        f"**{percent:.0f} %**: {min(p.done, p.total)} of {p.total} inputs settled{failed} · "
        f"{p.submitted} job(s) submitted · {_units(p.creative_units)} creative units "
        f"committed{refunded}"
    )


def _size(width: int | None, height: int | None) -> str:
    return f"{width}x{height}" if width and height else ""


def _net(r: ItemResult) -> float | str:
    if r.creative_units is None:
        return ""
    return round(r.creative_units - (r.creative_units_refunded or 0.0), 6)


def results_table(results: Sequence[ItemResult]) -> list[dict[str, Any]]:
    """One row per input and model for the table artifact: creative units net of refunds, the
    refunded amount beside them. Names are code-formatted: the UI renders cells as Markdown."""
    return [
        {
            "source": code(r.source),
            "model": code(r.model_id),
            "status": r.status,
            "job": code(r.job_id or ""),
            "creative units": _net(r),
            "refunded": r.creative_units_refunded or "",
            "input size": _size(r.input_width, r.input_height),
            "output size": _size(r.output_width, r.output_height),
            "output": ", ".join(code(o) for o in r.outputs),
            "error": code(r.error or ""),
        }
        for r in results
    ]


def results_markdown(report: BatchReport, target: str, pictured: int = PICTURED_RESULTS) -> str:
    """The results artifact: the figures, then a before/after pair and the figures of the first
    ``pictured`` results (the thumbnails within ``flows.pictures``' budget)."""
    pictures = PictureBudget()
    shown = report.results[:pictured]
    lines = [
        f"## {report.summary()}",
        "",
        f"Into {code(target)}. {_costs(report)}",
        "",
        "| before | after | input | model | status | size | creative units | output |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in shown:
        name = os.path.basename(r.source.rstrip("/")) or r.source
        before = pictures.picture(r.source, f"before: {name}")
        after = pictures.picture(r.outputs[0], f"after: {name}") if r.outputs else ""
        size = _size(r.input_width, r.input_height)
        if r.output_width:
            size += f" → {_size(r.output_width, r.output_height)}"
        units = _units(float(_net(r))) if r.creative_units is not None else ""
        if r.creative_units_refunded:
            units += f" ({_units(r.creative_units_refunded)} refunded)"
        # Errors name files too (``a@b.png is not an image``): code, never a mail link.
        status = r.status if not r.error else f"{r.status}: {code(r.error)}"
        outputs = "<br>".join(code(os.path.basename(o)) for o in r.outputs)
        lines.append(
            f"| {before} | {after} | {code(name)} | {code(r.model_id)} | {status} | {size} | "
            f"{units} | {outputs} |"
        )
    if len(report.results) > len(shown):
        lines += [
            "",
            f"Pictures of the first {len(shown)} of {len(report.results)} results; every "
            f"result is in the table artifact {code(RESULTS_TABLE_KEY)}.",
        ]
    return "\n".join(lines)


def _costs(report: BatchReport) -> str:
    refunded = report.creative_units_refunded
    text = f"Creative units: {_units(report.creative_units_net)} net"
    if refunded:
        text += (
            f" ({_units(report.creative_units)} charged, {_units(refunded)} refunded for "
            "failed jobs)"
        )
    return text + "."


async def publish_results(report: BatchReport, target: str) -> UUID:
    """The results artifacts of a finished batch: the pictures and figures (Markdown), and the
    full table. Returns the Markdown artifact's id."""
    await acreate_table_artifact(
        table=results_table(report.results),
        key=RESULTS_TABLE_KEY,
        description=f"Scenario upscale into {code(target)}: {report.summary()}",
    )
    return await acreate_markdown_artifact(
        markdown=await asyncio.to_thread(results_markdown, report, target),
        key=RESULTS_ARTIFACT_KEY,
        description=f"Before and after: {report.summary()}",
    )


def job_resource_id(result: ItemResult) -> str:
    """The resource id of a job event: ``scenario.<job id>``, or the input's own id for an input
    that never became a job (refused before any submit).

    Example:
        >>> job_resource_id(ItemResult(source="a.png", model_id="m", status="success",
        ...                            job_id="job_123"))
        'scenario.job_123'
    """
    return f"scenario.{result.job_id}" if result.job_id else resource_id_for(result.source)


def emit_item_events(results: Sequence[ItemResult]) -> None:
    """``scenario.upscale.job.completed`` / ``.failed`` for each newly finished item, with its
    input and outputs as related resources (roles ``input`` and ``output``)."""
    for r in results:
        if r.status == "skipped":
            continue  # finished in an earlier run, which announced it
        name = JOB_COMPLETED if r.status == "success" else JOB_FAILED
        emit_event(
            event=name,
            resource={
                "prefect.resource.id": job_resource_id(r),
                "prefect.resource.name": f"{os.path.basename(r.source)} ({r.model_id})",
                "scenario.model": r.model_id,
                "scenario.status": r.status,
                "scenario.job-id": r.job_id or "",
            },
            related=[_related(r.source, "input")] + [_related(o, "output") for o in r.outputs],
            payload=r.model_dump(mode="json"),
        )


def _batch_resource(
    flow_run_id: UUID | None, target: str, outcome: Outcome, outputs: int
) -> dict[str, str]:
    return {
        "prefect.resource.id": f"scenario.upscale.batch.{flow_run_id or 'local'}",
        "scenario.target": resource_id_for(target),
        "scenario.ok": str(outcome in ("completed", "nothing-new")).lower(),
        "scenario.outcome": outcome,
        "scenario.outputs": str(outputs),
    }


def emit_batch_event(
    report: BatchReport,
    target: str,
    flow_run_id: UUID | None,
    *,
    fail_on_any_error: bool = False,
) -> None:
    """``scenario.upscale.batch.completed``: the outputs this run wrote, for downstream triggers.

    ``outputs`` lists only what this run wrote (an output already there from an earlier run is in
    ``skipped_outputs``), so a rerun that finds everything done does not make the next step redo
    it. The related resources name the first ``RELATED_OUTPUTS_LIMIT`` outputs (the label
    ``scenario.outputs`` gives the count). ``outcome`` (also the label ``scenario.outcome``) tells
    ``completed`` from ``partially-completed`` and ``failed`` for an automation.
    """
    outputs = [o for r in report.results if r.status == "success" for o in r.outputs]
    skipped = [o for r in report.results if r.status == "skipped" for o in r.outputs]
    outcome = outcome_of(report, fail_on_any_error)
    emit_event(
        event=BATCH_COMPLETED,
        resource=_batch_resource(flow_run_id, target, outcome, len(outputs)),
        related=[_related(o, "output") for o in outputs[:RELATED_OUTPUTS_LIMIT]],
        payload={
            "outcome": outcome,
            "target": target,
            "outputs": outputs,
            "skipped_outputs": skipped,
            "succeeded": report.count("success"),
            "skipped": report.count("skipped"),
            "failed": len(report.results) - report.count("success", "skipped"),
            "creative_units": report.creative_units_net,
            "creative_units_refunded": report.creative_units_refunded,
        },
    )


def price_by_model(priced: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    """One row per model: its jobs, their dry-run price and the total, the dearest first."""
    totals: dict[str, list[float]] = {}
    for model, units in priced:
        totals.setdefault(model, []).append(units)
    rows = [
        {
            "model": code(model),
            "jobs": len(prices),
            "creative units per job": " to ".join(
                dict.fromkeys(_units(p) for p in (min(prices), max(prices)))
            ),
            "creative units": round(sum(prices), 6),
        }
        for model, prices in totals.items()
    ]
    return sorted(rows, key=lambda row: -float(row["creative units"]))


async def report_budget_stop(
    stop: BudgetExceeded, target: str, flow_run_id: UUID | None, reporter: RunReporter
) -> None:
    """A batch stopped by its budget before any submit: the final progress, the price per model,
    and the batch event saying so (``outcome`` ``over-budget``, nothing submitted)."""
    await reporter.finish(f"Stopped on budget: {stop}.")
    await acreate_table_artifact(
        table=price_by_model(stop.priced),
        key=PRICE_ARTIFACT_KEY,
        description=(
            f"Dry-run price into {code(target)}: {_units(stop.total)} creative units for "
            f"{len(stop.priced)} job(s), above the budget of {_units(stop.budget)}. Nothing was "
            "submitted; raise `max_creative_units` or upscale fewer inputs."
        ),
    )
    _emit_batch_without_jobs(
        flow_run_id,
        target,
        "over-budget",
        priced_creative_units=stop.total,
        budget=stop.budget,
        error=str(stop),
    )


async def report_nothing_new(
    source: str, target: str, since: str, flow_run_id: UUID | None
) -> None:
    """A recurring run that found nothing new: an artifact and the batch event (no outputs, so
    nothing downstream is redone)."""
    await acreate_markdown_artifact(
        markdown=f"## Nothing new\n\nNothing in {code(source)} changed since {since}: no job "
        f"was submitted and nothing was charged. Outputs stay in {code(target)}.",
        key=RESULTS_ARTIFACT_KEY,
        description="Nothing new to upscale",
    )
    _emit_batch_without_jobs(flow_run_id, target, "nothing-new", source=source)


def _emit_batch_without_jobs(
    flow_run_id: UUID | None, target: str, outcome: Outcome, **about: Any
) -> None:
    """The batch event of a run that submitted nothing (a budget stop, a night with nothing
    new): the same payload as ``emit_batch_event``'s, all zeros, and what ``about`` adds."""
    emit_event(
        event=BATCH_COMPLETED,
        resource=_batch_resource(flow_run_id, target, outcome, 0),
        payload={
            "outcome": outcome,
            "target": target,
            "outputs": [],
            "skipped_outputs": [],
            "succeeded": 0,
            "skipped": 0,
            "failed": 0,
            "creative_units": 0,
            "creative_units_refunded": 0,
            **about,
        },
    )
