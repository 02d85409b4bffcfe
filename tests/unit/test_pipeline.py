"""The one composition of a batch: every step through the runner, items streaming in a shard."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import ParamSpec, TypeVar, cast

import pytest

from scenario_upscale import pipeline
from scenario_upscale.errors import BudgetExceeded
from scenario_upscale.items import BatchItem, ItemResult, Plan, SubmittedItem, UpscaleSpec
from scenario_upscale.models import Job, Price
from scenario_upscale.pipeline import BatchOptions, PlainSteps, Stream, run_pipeline
from scenario_upscale.progress import Progress, ProgressCounter
from scenario_upscale.session import BatchSession
from scenario_upscale.sources import SourceFile

P = ParamSpec("P")
R = TypeVar("R")


def _item(name: str) -> BatchItem:
    source = SourceFile(
        location=f"in/{name}", name=name, kind="image", mime_type="image/png", sha256=name, size=1
    )
    return BatchItem(
        key=name, source=source, model_id="model_x", parameters={}, body={}, scale="x2"
    )


class _Submitter:
    def __init__(self) -> None:
        self.release_last = asyncio.Event()

        class _Slots:
            limit = 8

        self.slots = _Slots()

    async def submit(self, item: BatchItem) -> SubmittedItem:
        if item.key == "last":
            await self.release_last.wait()
        return SubmittedItem(item=item, job=Job(job_id=f"job_{item.key}", status="success"))


class _Collector:
    def __init__(self, submitter: _Submitter) -> None:
        self.submitter = submitter
        self.collected_while_last_unsent: list[str] = []

    async def wait(self, submitted: SubmittedItem) -> SubmittedItem:
        return submitted

    async def collect(self, finished: Sequence[SubmittedItem]) -> list[ItemResult]:
        if not self.submitter.release_last.is_set():
            self.collected_while_last_unsent += [s.item.key for s in finished]
            self.submitter.release_last.set()
        return [
            ItemResult(source=s.item.source.location, model_id=s.item.model_id, status="success")
            for s in finished
        ]


class _Session:
    """What the composition uses of a BatchSession."""

    def __init__(self, items: list[BatchItem], prices: dict[str, Price] | None = None) -> None:
        self.items = items
        self.prices = prices or {}
        self.submitter = _Submitter()
        self.collector = _Collector(self.submitter)
        self.progress = Progress()
        self.counter = ProgressCounter()

    async def prepare(self, inputs: str | Iterable[str], specs: Sequence[UpscaleSpec]) -> Plan:
        return Plan(items=self.items, settled=[])

    async def price(self, items: Sequence[BatchItem]) -> dict[str, Price]:
        return self.prices


class _RecordingSteps(PlainSteps):
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.settled_batches: list[list[str]] = []

    async def run(self, step: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        self.steps.append(step.__name__)
        return await step(*args, **kwargs)

    async def settled(self, results: Sequence[ItemResult]) -> None:
        self.settled_batches.append([r.source for r in results])


async def _run(
    session: _Session, runner: PlainSteps, options: BatchOptions | None = None
) -> list[str]:
    async with asyncio.timeout(10):
        report = await run_pipeline(
            cast(BatchSession, session), "in/", [UpscaleSpec()], options or BatchOptions(), runner
        )
    return [r.source for r in report.results]


async def test_an_item_is_collected_while_another_of_its_shard_is_still_being_submitted() -> None:
    session = _Session([_item("first"), _item("last")])
    sources = await _run(session, PlainSteps())
    assert session.collector.collected_while_last_unsent == ["first"]
    assert sources == ["in/first", "in/last"]  # the report keeps the order of the inputs


async def test_every_step_goes_through_the_runner_and_each_shard_settles_once() -> None:
    session = _Session([_item("first"), _item("last"), _item("third")])
    session.submitter.release_last.set()
    runner = _RecordingSteps()
    await _run(session, runner, BatchOptions(shard_size=2))
    assert runner.steps[:2] == ["prepare", "price"]
    assert sorted(runner.steps[2:]) == sorted(["submit", "wait", "collect"] * 2)
    assert runner.settled_batches == [[], ["in/first", "in/last"], ["in/third"]]


class _SlowToStartSteps(PlainSteps):
    """Steps that take a few turns of the event loop to start, as a Prefect task run does."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def run(self, step: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        if step.__name__ == "submit":
            self.log.append(f"start submit of {args[1][0].key}")  # type: ignore[index]
        for _ in range(5):
            await asyncio.sleep(0)
        return await step(*args, **kwargs)


async def test_the_first_shard_submits_before_the_last_shards_steps_are_started() -> None:
    log: list[str] = []
    session = _Session([_item(str(i)) for i in range(4)])
    submit = session.submitter.submit

    async def logged(item: BatchItem) -> SubmittedItem:
        log.append(f"submit {item.key}")
        return await submit(item)

    session.submitter.submit = logged  # type: ignore[method-assign]
    sources = await _run(session, _SlowToStartSteps(log), BatchOptions(shard_size=1))
    assert log.index("submit 0") < log.index("start submit of 3")
    assert sorted(sources) == [f"in/{i}" for i in range(4)]


async def test_a_batch_above_the_budget_stops_before_any_submit() -> None:
    prices = {"a": Price(creative_units=3), "b": Price(creative_units=4)}
    session = _Session([_item("a"), _item("b")], prices)
    runner = _RecordingSteps()
    with pytest.raises(BudgetExceeded):
        await _run(session, runner, BatchOptions(max_creative_units=5))
    assert runner.steps == ["prepare", "price"]


async def test_a_stream_hands_over_what_has_arrived_in_one_batch() -> None:
    stream: Stream[int] = Stream()
    for i in range(3):
        stream.put(i)
    batches = stream.batches()
    assert await anext(batches) == [0, 1, 2]
    stream.put(3)
    stream.close()
    assert [b async for b in batches] == [[3]]


def test_shards_are_consecutive_and_at_most_the_size() -> None:
    items = [_item(str(i)) for i in range(5)]
    assert [[i.key for i in s] for s in pipeline.shards(items, 2)] == [
        ["0", "1"],
        ["2", "3"],
        ["4"],
    ]
    assert pipeline.shards(items, 0) == [[i] for i in items]


async def test_an_unexpected_error_in_a_step_reaches_the_caller_as_itself() -> None:
    session = _Session([_item("first"), _item("last")])
    session.submitter.release_last.set()

    async def broken(submitted: SubmittedItem) -> SubmittedItem:
        raise RuntimeError("a bug in wait")

    session.collector.wait = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="a bug in wait"):
        await _run(session, PlainSteps())
