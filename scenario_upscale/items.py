"""What flows through a batch: the spec, one item per input and model, its result, the report."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from scenario_upscale.errors import JobFailed
from scenario_upscale.models import Job, terminal_outcome
from scenario_upscale.sources import SourceFile

ItemStatus = Literal["success", "failure", "canceled", "timed_out", "invalid", "skipped"]


class UpscaleSpec(BaseModel):
    """A model and its parameters, applied to every input of a batch.

    Example:
        >>> UpscaleSpec(model_id="model_upscale-v3", parameters={"upscaleFactor": 4})
        UpscaleSpec(model_id='model_upscale-v3', parameters={'upscaleFactor': 4})
    """

    model_config = ConfigDict(frozen=True)

    model_id: str = Field(default="model_upscale-v3", description="A Scenario upscale model id.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Model inputs by their API names, e.g. {'upscaleFactor': 4}.",
    )


class BatchItem(BaseModel):
    """One input with one model, ready to submit."""

    model_config = ConfigDict(frozen=True)

    key: str
    source: SourceFile
    model_id: str
    parameters: dict[str, Any]
    body: dict[str, Any]
    scale: str
    """The scale label in output names (``x4``, ``4k``)."""


class SubmittedItem(BaseModel):
    """An item with its job: submitted by this run, or taken over from an earlier one."""

    item: BatchItem
    job: Job
    creative_units: float | None = None
    reconciled: bool = False
    resumed: bool = False


class ItemResult(BaseModel):
    """What happened to one input with one model."""

    source: str
    model_id: str
    status: ItemStatus
    job_id: str | None = None
    creative_units: float | None = Field(
        default=None, description="What the job was charged when it was submitted."
    )
    creative_units_refunded: float | None = Field(
        default=None, description="Given back by Scenario because the job failed."
    )
    outputs: list[str] = Field(default_factory=list)
    input_width: int | None = None
    input_height: int | None = None
    output_width: int | None = None
    output_height: int | None = None
    error: str | None = None
    reconciled: bool = Field(
        default=False, description="The submit answer was lost and the job was found again."
    )
    resumed: bool = Field(default=False, description="Taken over from an earlier run.")
    collected_at: datetime | None = Field(
        default=None, description="When an earlier run collected the outputs of a skipped input."
    )


def failure(
    item: BatchItem,
    status: ItemStatus,
    error: Exception,
    submitted: SubmittedItem | None = None,
) -> ItemResult:
    """The result of an item that failed at some step (with its job, when it had one)."""
    return ItemResult(
        source=item.source.location,
        model_id=item.model_id,
        status=status,
        job_id=submitted.job.job_id if submitted else None,
        creative_units=submitted.creative_units if submitted else None,
        creative_units_refunded=refund_of(error, submitted),
        input_width=item.source.width,
        input_height=item.source.height,
        error=str(error),
        reconciled=bool(submitted and submitted.reconciled),
        resumed=bool(submitted and submitted.resumed),
    )


def refund_of(error: Exception, submitted: SubmittedItem | None) -> float | None:
    """What Scenario gives back for a job that failed: its charge, when the job itself ended
    ``failure`` and neither its billing nor its model disables refunds (contract §3.6). A job
    that succeeded but could not be collected, or timed out, stays paid for."""
    if submitted is None or not isinstance(error, JobFailed) or submitted.job.refund_disabled:
        return None
    if terminal_outcome(error.status) != "failure":
        return None
    return submitted.creative_units


class BatchReport(BaseModel):
    """The result of a batch, one entry per input and model."""

    results: list[ItemResult]
    creative_units: float = Field(
        description="Creative units charged by the jobs this batch submitted, before refunds."
    )
    started_at: datetime
    finished_at: datetime

    def count(self, *statuses: ItemStatus) -> int:
        return sum(1 for r in self.results if r.status in statuses)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def creative_units_refunded(self) -> float:
        """What Scenario gave back for this batch's own jobs that failed (not an earlier run's)."""
        return round(
            sum(r.creative_units_refunded or 0.0 for r in self.results if not r.resumed), 6
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def creative_units_net(self) -> float:
        """What this batch cost: charged minus refunded."""
        return round(self.creative_units - self.creative_units_refunded, 6)

    @property
    def ok(self) -> bool:
        """True when every input has its output (new or from an earlier run)."""
        return all(r.status in ("success", "skipped") for r in self.results)

    def summary(self) -> str:
        done = self.count("success")
        skipped = self.count("skipped")
        failed = len(self.results) - done - skipped
        refunded = self.creative_units_refunded
        return (
            f"{done} upscaled, {skipped} already done, {failed} failed; "
            f"{self.creative_units_net:g} creative units"
            + (f" ({refunded:g} refunded)" if refunded else "")
        )


class Plan(BaseModel):
    """The outcome of ``prepare``: items to run, and inputs already settled (done or invalid)."""

    items: list[BatchItem]
    settled: list[ItemResult]
