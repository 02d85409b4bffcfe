"""A batch's counts, reported to a callback after every change (a progress bar, an artifact)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from scenario_upscale.items import ItemResult


class Progress(BaseModel):
    """Counts reported to a progress callback after every change."""

    total: int = 0
    submitted: int = 0
    finished: int = Field(default=0, description="Jobs that reached a terminal status.")
    done: int = Field(default=0, description="Items settled: collected or failed.")
    failed: int = 0
    creative_units: float = Field(default=0.0, description="Charged at submit, before refunds.")
    creative_units_refunded: float = Field(
        default=0.0, description="Given back for this run's jobs that failed."
    )
    waiting_for: str | None = Field(
        default=None, description="What the run waits for before it can go on, if anything."
    )


class ProgressCounter:
    """Keeps the counts of one batch and hands a copy to ``on_progress`` after each change."""

    def __init__(self, on_progress: Callable[[Progress], None] | None = None) -> None:
        self.counts = Progress()
        self._on_progress = on_progress

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.counts.model_copy())

    def waiting(self, reason: str | None) -> None:
        """The run waits for ``reason`` (the team's concurrency slots), or no longer (None)."""
        self.counts.waiting_for = reason
        self._report()

    def planned(self, items: int) -> None:
        self.counts.total += items
        self._report()

    def submitted(self, creative_units: float) -> None:
        self.counts.submitted += 1
        self.counts.creative_units += creative_units
        self._report()

    def finished(self) -> None:
        """A job reached a terminal status (reported once its item is settled or moves on)."""
        self.counts.finished += 1

    def moved_on(self) -> None:
        self._report()

    def collected(self, result: ItemResult) -> ItemResult:
        self.counts.done += 1
        self._report()
        return result

    def failed(self, result: ItemResult) -> ItemResult:
        if result.creative_units_refunded and not result.resumed:
            self.counts.creative_units_refunded += result.creative_units_refunded
        self.counts.failed += 1
        self.counts.done += 1
        self._report()
        return result
