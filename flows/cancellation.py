"""Cancelling an upscale run: it stops within seconds wherever it was started, and says what
was paid.

Where a run is cancelled from, and who stops it:

* **A deployment's run** (``scenario-upscale serve``, a worker): Prefect's runner sees the
  run's CANCELLING state, kills the flow's process and sets it Cancelled. The flow body is
  cancelled on the way out (``asyncio.CancelledError``), which is when the spend is recorded.
* **A run started in-process** (``scenario-upscale upscale``, a script awaiting the flow):
  nobody watches its state. Prefect 3.9.1 observes CANCELLING only in runners and workers
  (``prefect._internal.observers.FlowRunCancellingObserver``: private, and it does not look at
  the state it finds when it connects), so ``stops_when_cancelled`` watches the run itself: it
  reads the run's state every ``CANCEL_POLL_INTERVAL_S`` (one small API read, cheap beside the
  run's own task runs), and on CANCELLING cancels the flow body and ends the run Cancelled.
* **Ctrl-C** in the command line: ``cancel_switch`` gives the command a switch that does the
  same as a cancel from the UI, in this process.

In every case an artifact (``CANCELLED_ARTIFACT_KEY``) and an event (``BATCH_CANCELLED``) state
the jobs the run submitted, the creative units they committed, and how a rerun collects them:
Scenario cannot cancel an upscale job, so the submitted jobs finish and stay paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, cast
from uuid import UUID

from prefect.artifacts import acreate_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.logging import get_run_logger
from prefect.states import Cancelled
from pydantic import BaseModel, Field

from flows.reporting import resource_id_for, watching_progress
from scenario_upscale.progress import Progress

BATCH_CANCELLED = "scenario.upscale.batch.cancelled"
CANCELLED_ARTIFACT_KEY = "scenario-upscale-cancelled"
CANCEL_POLL_INTERVAL_S = 0.5
"""How often an in-process run reads its own state: a cancel stops it within about this, plus
one API read and the unwinding of its tasks (the promise is 2 s)."""

P = ParamSpec("P")
R = TypeVar("R")


class CommittedSpend(BaseModel):
    """What a cancelled run leaves paid for on Scenario, and what to do about it.

    Example:
        >>> CommittedSpend(target="out", jobs_submitted=2, creative_units=2.0).headline()
        'Cancelled: 2 job(s) submitted, 2 creative units committed'
    """

    target: str = Field(description="Where the run was writing its outputs.")
    jobs_submitted: int = Field(ge=0, description="Jobs this run submitted to Scenario.")
    creative_units: float = Field(ge=0, description="Creative units those jobs cost.")

    def headline(self) -> str:
        return (
            f"Cancelled: {self.jobs_submitted} job(s) submitted, "
            f"{self.creative_units:g} creative units committed"
        )

    def consequence(self) -> str:
        return (
            "Scenario cannot cancel upscale jobs: the jobs already submitted finish and stay "
            "paid for. Rerun with the same inputs, target and models (the same command, or "
            "the same parameters) to collect their outputs without paying again: the rerun "
            "takes over the submitted jobs instead of submitting them again (and looks up a "
            "submit the cancel cut short in Scenario's job list before anything is resent)."
        )

    def message(self) -> str:
        """The run's state message: the figures and what to do, in one paragraph."""
        return f"{self.headline()}. {self.consequence()}"

    def markdown(self) -> str:
        return (
            f"## {self.headline()}\n\n"
            f"| jobs submitted | creative units committed | target |\n|---|---|---|\n"
            f"| {self.jobs_submitted} | {self.creative_units:g} | `{self.target}` |\n\n"
            f"{self.consequence()}\n"
        )


async def record_committed_spend(spend: CommittedSpend, flow_run_id: UUID | None) -> None:
    """The artifact and the ``scenario.upscale.batch.cancelled`` event of a cancelled run.

    Called once the cancellation reached the body (and was caught), so its awaits complete.
    """
    await acreate_markdown_artifact(
        markdown=spend.markdown(), key=CANCELLED_ARTIFACT_KEY, description=spend.headline()
    )
    emit_event(
        event=BATCH_CANCELLED,
        resource={
            # The same resource as scenario.upscale.batch.completed: one id per run.
            "prefect.resource.id": f"scenario.upscale.batch.{flow_run_id or 'local'}",
            "scenario.target": resource_id_for(spend.target),
        },
        related=[
            {
                "prefect.resource.id": resource_id_for(spend.target),
                "prefect.resource.role": "target",
            }
        ],
        payload={**spend.model_dump(mode="json"), "message": spend.message()},
    )


# -- a cancel asked for in this process (Ctrl-C) --------------------------------------------------


class CancelSwitch:
    """Cancels the runs started in its ``cancel_switch`` block, as the UI's Cancel would."""

    def __init__(self) -> None:
        self._pulled = asyncio.Event()

    def pull(self) -> None:
        """Ask the runs to stop (idempotent); call it from the event loop's thread."""
        self._pulled.set()

    @property
    def pulled(self) -> bool:
        return self._pulled.is_set()

    async def wait(self, timeout_s: float) -> bool:
        """True once pulled, False if it was not pulled within ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pulled.wait(), timeout_s)
        return self._pulled.is_set()


_switch: ContextVar[CancelSwitch | None] = ContextVar(
    "scenario_upscale_cancel_switch", default=None
)


@contextlib.contextmanager
def cancel_switch() -> Iterator[CancelSwitch]:
    """A switch for the runs started inside this block (in this context): the command line's
    Ctrl-C. Make it inside the event loop that runs the flows.

    Example:
        >>> async def main():
        ...     with cancel_switch() as switch:
        ...         asyncio.get_running_loop().add_signal_handler(signal.SIGINT, switch.pull)
        ...         return await upscale_batch("art/")  # doctest: +SKIP
    """
    switch = CancelSwitch()
    token = _switch.set(switch)
    try:
        yield switch
    finally:
        _switch.reset(token)


# -- the wrapper ----------------------------------------------------------------------------------


async def _cancel_requested(flow_run_id: UUID, switch: CancelSwitch | None) -> None:
    """Returns once the run is CANCELLING (or Cancelled) on the server, or the switch is pulled."""
    failed_reads = 0
    async with get_client() as client:
        while switch is None or not switch.pulled:
            try:
                state = (await client.read_flow_run(flow_run_id)).state
            except Exception as error:
                # A read that failed must not stop the run: the next one tries again.
                failed_reads += 1
                if failed_reads == 1:
                    get_run_logger().warning(
                        "Could not read this run's state to see whether it was cancelled "
                        "(%s); trying again every %g s",
                        error,
                        CANCEL_POLL_INTERVAL_S,
                    )
                state = None
            if state is not None and (state.is_cancelling() or state.is_cancelled()):
                return
            if switch is None:
                await asyncio.sleep(CANCEL_POLL_INTERVAL_S)
            else:
                await switch.wait(CANCEL_POLL_INTERVAL_S)


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it is done, whatever it ended with (what is left to say
    is the cancel, or was said by the caller)."""
    task.cancel()
    await asyncio.wait({task})


def _target_of(body: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    bound = inspect.signature(body).bind_partial(*args, **kwargs)
    bound.apply_defaults()
    return str(bound.arguments.get("target", ""))


def stops_when_cancelled(
    body: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """A batch flow's body that stops when its run is cancelled, from anywhere, and records the
    spend it committed. Put it under ``@flow``; the body needs a ``target`` parameter.

    The body runs as a task of its own beside a watch of the run's state (in a flow run only).
    On CANCELLING, or the ``cancel_switch`` pulled, the body is cancelled (no new submit, no
    more polling), the spend recorded, and the run ends Cancelled. Cancelled from outside (a
    runner killing the process), the body is cancelled the same way and the spend recorded
    before the cancellation goes on.

    Example:
        >>> @flow(name="upscale-batch")
        ... @stops_when_cancelled
        ... async def upscale_batch(inputs: list[str], target: str = "upscaled") -> BatchReport:
        ...     ...
    """

    @functools.wraps(body)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return await _run_stopping_when_cancelled(body, args, kwargs)

    # Prefect validates a flow's parameters against its function's signature, resolving string
    # annotations (``from __future__ import annotations``) in that function's module: this one's,
    # for the wrapper. So the wrapper carries the body's signature with its types resolved.
    run.__signature__ = inspect.signature(body, eval_str=True)  # type: ignore[attr-defined]
    return run


async def _run_stopping_when_cancelled(
    body: Callable[..., Coroutine[Any, Any, R]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> R:
    # Module-level, not in the wrapper: a served run gets the flow cloudpickled, the wrapper by
    # value with the globals it names; this function goes by reference, so the ContextVars it
    # reads are never pickled ("cannot pickle '_contextvars.ContextVar' object").
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return await body(*args, **kwargs)
    flow_run_id = context.flow_run.id
    latest = Progress()

    def keep(progress: Progress) -> None:
        nonlocal latest
        latest = progress

    with watching_progress(keep):
        work = asyncio.ensure_future(body(*args, **kwargs))
    watch = asyncio.ensure_future(_cancel_requested(flow_run_id, _switch.get()))

    async def record() -> CommittedSpend:
        spend = CommittedSpend(
            target=_target_of(body, args, kwargs),
            jobs_submitted=latest.submitted,
            creative_units=round(latest.creative_units, 6),
        )
        await record_committed_spend(spend, flow_run_id)
        return spend

    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done() and (error := watch.exception()) is not None:
            # Only a cancel from outside can stop the run now: it goes on rather than stop.
            get_run_logger().warning(
                "This run stopped watching for a cancel from the UI or the API (%s); it goes on",
                error,
            )
            await asyncio.wait({work})
    except asyncio.CancelledError:
        # Cancelled from outside: a runner's kill (a deployment's run), or a parent's.
        await _stop(watch)
        await _stop(work)
        await record()
        raise
    if work.done():
        await _stop(watch)
        return work.result()
    await _stop(work)
    spend = await record()
    return cast(R, Cancelled(message=spend.message()))
