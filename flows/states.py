"""How a batch run ends: the Prefect state its report earns, told apart by type and by name.

Prefect's UI colours a run by its state *type*: a COMPLETED-type state is green in the runs list,
the chart and the run header whatever its name, so a run where 2 of 12 inputs failed looked as
clean as one where none did. Prefect 3 has no "warning" type (its types are scheduled, pending,
running, paused, completed, failed, cancelling, cancelled, crashed), so a run with a failed input
ends FAILED-type, and the *name* tells the kinds of failure apart:

* ``Completed``: every input has its output (new, or from an earlier run);
* ``Partially completed`` (FAILED): some inputs failed, the others are in the target;
* ``Failed``: every input failed, or ``fail_on_any_error`` and one did;
* ``Over budget`` (FAILED): the dry-run total was above ``max_creative_units``; nothing was
  submitted.

An automation tells them apart by the state name (Prefect names its state-change event after it:
``prefect.flow-run.Partially completed``) or by the ``scenario.outcome`` label and payload of the
``scenario.upscale.batch.completed`` event (``flows.reporting``).

A failed run's result is a ``BatchIncomplete`` exception that carries the report: a Python caller
of ``upscale_batch`` gets the error raised, with every input's result in ``error.report``; the
parent flows raise ``RunIncomplete`` with their own result. ``result_of`` reads either from a
state.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar, cast

from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from scenario_upscale.batch import BatchReport
from scenario_upscale.errors import BudgetExceeded

T = TypeVar("T")

PARTIALLY_COMPLETED = "Partially completed"
OVER_BUDGET = "Over budget"

Outcome = Literal["completed", "partially-completed", "failed", "over-budget", "nothing-new"]
"""How a run ended, as the batch event's ``scenario.outcome`` label and payload spell it."""


class RunIncomplete(Exception):
    """A run ended "Partially completed" or "Failed" with a result: ``result`` is what it did.

    The result of such a run, raised to a Python caller (``upscale-new-assets`` and
    ``asset-pipeline`` raise it with their own result when their batch was partial).
    """

    def __init__(self, message: str, result: Any) -> None:
        # Both in ``args``: the exception is the run's persisted result, and pickle rebuilds it
        # from them.
        super().__init__(message, result)
        self.message = message
        self.result = result

    def __str__(self) -> str:
        return self.message


class BatchIncomplete(RunIncomplete):
    """Some inputs of a batch failed; ``report`` has every input's result.

    Example:
        >>> try:  # doctest: +SKIP
        ...     report = await upscale_batch("art/")
        ... except BatchIncomplete as error:
        ...     report = error.report
    """

    def __init__(self, message: str, result: BatchReport) -> None:
        super().__init__(message, result)

    @property
    def report(self) -> BatchReport:
        return cast(BatchReport, self.result)


def outcome_of(report: BatchReport, fail_on_any_error: bool = False) -> Outcome:
    """``completed``, ``partially-completed`` or ``failed``, by the rules in this module's doc."""
    failed = len(report.results) - report.count("success", "skipped")
    if not failed:
        return "completed"
    if fail_on_any_error or failed == len(report.results):
        return "failed"
    return "partially-completed"


def final_state(report: BatchReport, fail_on_any_error: bool) -> State[BatchReport]:
    """The state a finished batch ends in, with the first failure named in its message."""
    outcome = outcome_of(report, fail_on_any_error)
    if outcome == "completed":
        return Completed(data=report, message=report.summary())
    failed = [r for r in report.results if r.status not in ("success", "skipped")]
    first = f"{failed[0].source} ({failed[0].model_id}): {failed[0].error}"
    message = (
        f"{len(failed)} of {len(report.results)} input(s) failed ({report.summary()}); "
        f"first: {first}"
    )
    name = PARTIALLY_COMPLETED if outcome == "partially-completed" else "Failed"
    return Failed(data=BatchIncomplete(message, report), message=message, name=name)


def over_budget_state(stop: BudgetExceeded) -> State[BatchReport]:
    """The state of a batch stopped by its budget before anything was submitted."""
    return Failed(data=stop, message=str(stop), name=OVER_BUDGET)


def partially_completed(result: T, message: str | None) -> State[T]:
    """The state of a parent run (``upscale-new-assets``, ``asset-pipeline``) whose batch was
    partial: FAILED-type and named so, its own result raised as ``RunIncomplete``."""
    message = message or PARTIALLY_COMPLETED
    return Failed(data=RunIncomplete(message, result), message=message, name=PARTIALLY_COMPLETED)


async def result_of(state: State[T]) -> T:
    """The result of a finished run, whole or partial; raises the run's error otherwise.

    For a caller that goes on with what a run did: ``upscale_batch(..., return_state=True)``
    then ``await result_of(state)`` gives its ``BatchReport`` also when some inputs failed.
    """
    result = await state.aresult(raise_on_failure=False)
    if isinstance(result, RunIncomplete) and state.name == PARTIALLY_COMPLETED:
        return cast(T, result.result)
    if isinstance(result, BaseException):
        raise result
    return result
