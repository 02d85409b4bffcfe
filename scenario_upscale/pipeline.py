"""The batch pipeline, composed once: prepare → price → per shard (submit → wait → collect) →
report.

How a step runs is a hook, ``StepRunner``: ``run_batch`` awaits each step as a plain coroutine
(``PlainSteps``); the Prefect flow runs each step of each shard as its task
(``flows.tasks.PrefectSteps``), so a batch of thousands stays within a few hundred task runs.
The runner also says what happens when results settle (events, lineage) and what is held while
jobs run (a global concurrency limit). Everything else, the order of the steps, the budget
check, the shards and the report, is written here and nowhere else.

Streaming: within a shard, submit, wait and collect run at the same time, linked by ``Stream``s.
An item goes to the watcher as soon as its own submit returns and is collected as soon as its
own job ends, while the rest of the shard is still being submitted or waited for; no step waits
for the whole shard. Shards run concurrently too, each started once the previous one's submit
step has begun (``_run_shards``).

Streaming from the upload on: prepare reads and checks every input but uploads nothing; price
uploads one input per *price class* (model, parameters it runs with, input size) and dry-runs it,
so the budget is checked on the total before the first submit at the cost of a few dry runs;
each other input is uploaded by its own submit, just before it (``uploads.Uploads.ready``), at
most a bounded window of items ahead of the submits (``submission.Submitter``). So the first
jobs start while later inputs are still uploading. Prepare still covers the whole batch before
the first submit: the budget needs every input's key (its content hash) to leave out the jobs an
earlier run already paid for, and reading is cheap next to uploading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, Protocol, Self, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import ErrorDetails

from scenario_upscale.errors import BudgetExceeded, InvalidOption
from scenario_upscale.items import (
    BatchItem,
    BatchReport,
    ItemResult,
    Plan,
    SubmittedItem,
    UpscaleSpec,
)
from scenario_upscale.models import Price
from scenario_upscale.session import BatchSession
from scenario_upscale.slots import JobSlots

log = logging.getLogger("scenario_upscale.pipeline")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class BatchOptions(BaseModel):
    """How a batch runs, whoever runs it (``run_batch`` or a flow)."""

    max_creative_units: float | None = Field(
        default=None,
        ge=0,
        description="Stop before anything is submitted if the dry-run total is above.",
    )
    dry_run_pricing: bool = Field(default=True, description="Price every job first (free).")
    max_concurrency: int = Field(default=8, ge=1, description="Jobs in flight at once.")
    shard_size: int = Field(default=25, ge=1, description="Inputs per submit/wait/collect step.")

    @classmethod
    def checked(cls, where: str, **values: Any) -> Self:
        """The options, or ``InvalidOption`` naming the first bad one, its value and what is
        allowed, in words (never pydantic's own report).

        Example:
            >>> BatchOptions.checked("run_batch", max_concurrency=0)
            Traceback (most recent call last):
            ...
            scenario_upscale.errors.InvalidOption: run_batch: invalid parameter 'max_concurrency': \
got 0; allowed: a number >= 1 (jobs in flight at once)
        """
        try:
            return cls(**values)
        except ValidationError as error:
            first = error.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "options"
            raise InvalidOption(
                where, name, first.get("input"), _allowed(cls, name, first)
            ) from None


def _allowed(options: type[BaseModel], name: str, error: ErrorDetails) -> str:
    """What ``name`` accepts, from the rule it broke and the field's description."""
    bounds = error.get("ctx", {})
    if "ge" in bounds:
        rule = f"a number >= {bounds['ge']:g}"
    elif "gt" in bounds:
        rule = f"a number > {bounds['gt']:g}"
    else:
        rule = error["msg"][0].lower() + error["msg"][1:]
    field = options.model_fields.get(name)
    about = (field.description or "").rstrip(".") if field else ""
    return f"{rule} ({about[0].lower()}{about[1:]})" if about else rule


class Stream(Generic[T]):
    """Items handed from one step to the next as they come; the producer closes it.

    Example:
        >>> async def pipe():
        ...     stream: Stream[int] = Stream()
        ...     stream.put(1)
        ...     stream.close()
        ...     return [i async for i in stream]
        >>> asyncio.run(pipe())
        [1]
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[bool, T | None]] = asyncio.Queue()
        self.opened = asyncio.Event()
        """Set once the producer's step has begun (``open``)."""

    def open(self) -> None:
        self.opened.set()

    def put(self, item: T) -> None:
        self._queue.put_nowait((False, item))

    def close(self) -> None:
        self._queue.put_nowait((True, None))

    async def batches(self) -> AsyncIterator[list[T]]:
        """Everything that has arrived, as it arrives: at least one item per batch."""
        closed = False
        while not closed:
            batch: list[T] = []
            end, item = await self._queue.get()
            while True:
                if end:
                    closed = True
                    break
                batch.append(item)  # type: ignore[arg-type]
                if self._queue.empty():
                    break
                end, item = self._queue.get_nowait()
            if batch:
                yield batch

    async def __aiter__(self) -> AsyncIterator[T]:
        async for batch in self.batches():
            for item in batch:
                yield item


# -- the steps ----------------------------------------------------------------------------------


async def _each_as_it_comes(
    arriving: AsyncIterator[T], start: Callable[[T], Awaitable[R]]
) -> list[R]:
    """``start`` each item the moment it arrives, all of them at once; their results in order.

    ``gather`` rather than a TaskGroup: an unexpected error reaches the caller as itself, not
    wrapped in an ExceptionGroup; the others are cancelled.
    """
    running: list[asyncio.Future[R]] = []
    try:
        async for item in arriving:
            running.append(asyncio.ensure_future(start(item)))
        return list(await asyncio.gather(*running))
    finally:
        for task in running:
            task.cancel()  # nothing for those already done


def _pass_on(outcome: SubmittedItem | ItemResult, out: Stream[SubmittedItem]) -> ItemResult | None:
    """An item still on its way goes to the next step; a settled one comes back as a result."""
    if isinstance(outcome, ItemResult):
        return outcome
    out.put(outcome)
    return None


async def prepare(
    session: BatchSession, inputs: str | Iterable[str], specs: Sequence[UpscaleSpec]
) -> Plan:
    """Resolve and read the inputs, check the parameters against each model; settle the inputs
    already done or unusable. Nothing is uploaded here (see the module's docstring)."""
    return await session.prepare(inputs, specs)


async def price(session: BatchSession, items: Sequence[BatchItem]) -> dict[str, Price]:
    """Dry-run price of each item not yet paid for (HTTP 269 or 200: nothing is charged): one
    dry run per price class, its input uploaded for it."""
    return await session.price(items)


async def submit(
    session: BatchSession, items: Sequence[BatchItem], out: Stream[SubmittedItem]
) -> list[ItemResult]:
    """Submit a shard (or take over jobs an earlier run submitted); never pays twice.

    Each submitted item goes into ``out`` the moment its submit returns; the items whose submit
    failed come back as results.
    """

    async def one(item: BatchItem) -> ItemResult | None:
        return _pass_on(await session.submitter.submit(item), out)

    out.open()  # the next shard may start now (see ``_run_shards``)
    try:
        results = await asyncio.gather(*(one(item) for item in items))
    finally:
        out.close()
    return [r for r in results if r is not None]


async def wait(
    session: BatchSession, inbox: Stream[SubmittedItem], out: Stream[SubmittedItem]
) -> list[ItemResult]:
    """Wait for each job of a shard as it arrives; each success goes into ``out`` as it ends."""

    async def one(submitted: SubmittedItem) -> ItemResult | None:
        return _pass_on(await session.collector.wait(submitted), out)

    try:
        results = await _each_as_it_comes(aiter(inbox), one)
    finally:
        out.close()
    return [r for r in results if r is not None]


async def collect(session: BatchSession, inbox: Stream[SubmittedItem]) -> list[ItemResult]:
    """Download the outputs of a shard's jobs as they end, atomically, into the target.

    The jobs that ended together share one bulk asset read.
    """
    groups = await _each_as_it_comes(inbox.batches(), session.collector.collect)
    return [r for group in groups for r in group]


# -- how a step runs ----------------------------------------------------------------------------


class StepRunner(Protocol):
    """How the steps of a batch run, and what the runner does around them."""

    @property
    def logger(self) -> logging.Logger | logging.LoggerAdapter[Any]: ...

    async def run(self, step: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one step (``prepare``, ``price``, ``submit``, ``wait`` or ``collect``)."""
        ...

    async def settled(self, results: Sequence[ItemResult]) -> None:
        """``results`` are final: the inputs settled by prepare, then each shard's."""
        ...

    def holding(
        self, slots: JobSlots, waiting: Callable[[str | None], None], jobs: int
    ) -> AbstractAsyncContextManager[None]:
        """Held while this run's ``jobs`` are submitted and run: where ``slots`` also takes each
        job's slot from a ceiling shared with other runs (``JobSlots.sharing``); ``waiting`` is
        told what the run waits for while it has no slot at all (and None once it has one)."""
        ...


class PlainSteps:
    """Each step awaited as it is: the runner of ``run_batch``."""

    logger = log

    async def run(self, step: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        return await step(*args, **kwargs)

    async def settled(self, results: Sequence[ItemResult]) -> None:
        return None

    def holding(
        self, slots: JobSlots, waiting: Callable[[str | None], None], jobs: int
    ) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


# -- the composition ----------------------------------------------------------------------------


def shards(items: Sequence[BatchItem], size: int) -> list[list[BatchItem]]:
    """Split ``items`` into consecutive shards of at most ``size`` (at least one item each)."""
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def check_budget(
    prices: dict[str, Price], budget: float | None, items: Sequence[BatchItem] = ()
) -> float:
    """The total of ``prices``; raises BudgetExceeded when it is above ``budget``, with each
    priced job's model (from ``items``) so the stop can be explained model by model."""
    total = round(sum(p.creative_units for p in prices.values()), 6)
    if budget is not None and total > budget:
        model_of = {i.key: i.model_id for i in items}
        priced = [(model_of.get(key, "unknown"), p.creative_units) for key, p in prices.items()]
        raise BudgetExceeded(total, budget, len(prices), priced)
    return total


async def run_pipeline(
    session: BatchSession,
    inputs: str | Iterable[str],
    specs: Sequence[UpscaleSpec],
    options: BatchOptions,
    runner: StepRunner,
) -> BatchReport:
    """Every input with every spec through every step; the batch's report."""
    started = datetime.now(UTC)
    plan = await runner.run(prepare, session, inputs, specs)
    runner.logger.info(
        "%d job(s) to run; %d input(s) already done, %d invalid",
        len(plan.items),
        sum(1 for r in plan.settled if r.status == "skipped"),
        sum(1 for r in plan.settled if r.status == "invalid"),
    )
    await runner.settled(plan.settled)  # invalid inputs fail here, without a job
    if plan.items and (options.dry_run_pricing or options.max_creative_units is not None):
        prices = await runner.run(price, session, plan.items)
        total = check_budget(prices, options.max_creative_units, plan.items)
        runner.logger.info("Dry run: %g creative units for %d new job(s)", total, len(prices))
    try:
        slots = session.submitter.slots
        async with runner.holding(slots, session.counter.waiting, len(plan.items)):
            groups = await _run_shards(session, shards(plan.items, options.shard_size), runner)
    except asyncio.CancelledError:
        runner.logger.warning(
            "Cancelled after submitting %d job(s), %g creative units committed. Scenario "
            "cannot cancel upscale jobs: they finish and stay paid for. Rerun this batch "
            "with the same parameters to collect them without paying again.",
            session.progress.submitted,
            session.progress.creative_units,
        )
        raise
    return BatchReport(
        results=plan.settled + [r for group in groups for r in group],
        creative_units=session.progress.creative_units,
        started_at=started,
        finished_at=datetime.now(UTC),
    )


async def _run_shards(
    session: BatchSession, parts: list[list[BatchItem]], runner: StepRunner
) -> list[list[ItemResult]]:
    """All shards at once, each started once the previous one's submit step has begun.

    A runner whose steps are slow to start delays the first job by every step it starts before
    it: the flow's 40 shards of a 1000-input batch are 120 task runs, and the first submit went
    out only once all of them had started, ~3 s of the event loop (py-spy, loaded 2-core
    machine). In turn, the first shard submits while the later shards' steps are being started.
    A shard waits for no more than the start of the previous one's submit step, never for its
    jobs or slots.
    """
    submits: list[Stream[SubmittedItem]] = [Stream() for _ in parts]

    async def in_turn(n: int, shard: list[BatchItem]) -> list[ItemResult]:
        if n:
            await submits[n - 1].opened.wait()
        try:
            return await _run_shard(session, shard, runner, submits[n])
        finally:
            submits[n].open()  # ended before its submit step began (it failed): the next goes on

    return list(await asyncio.gather(*(in_turn(n, s) for n, s in enumerate(parts))))


async def _run_shard(
    session: BatchSession,
    shard: list[BatchItem],
    runner: StepRunner,
    submitted: Stream[SubmittedItem],
) -> list[ItemResult]:
    finished: Stream[SubmittedItem] = Stream()
    groups = await asyncio.gather(
        runner.run(submit, session, shard, submitted),
        runner.run(wait, session, submitted, finished),
        runner.run(collect, session, finished),
    )
    # Results come in the order jobs end; the report lists them in the order of the inputs.
    order = {(i.source.location, i.model_id): n for n, i in enumerate(shard)}
    results = sorted(
        (r for group in groups for r in group), key=lambda r: order.get((r.source, r.model_id), 0)
    )
    await runner.settled(results)
    return results
