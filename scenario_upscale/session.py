"""The shared state of one batch run, and its parts, each with one job.

``BatchSession`` wires them together and holds what they share (client, journal, job watcher):

* ``planner`` (``planning.Planner``): resolve, check and settle the inputs; ``uploads``
  (``uploads.Uploads``) reads them and uploads each content once;
* ``submitter`` (``submission.Submitter``): submits without paying twice, within the slots;
* ``collector`` (``collection.Collector``): waits for jobs and downloads their outputs;
* ``counter`` (``progress.ProgressCounter``): the counts, reported after every change.

The order of the steps is not here: it is ``pipeline.run_pipeline``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Self

from scenario_upscale.api import ScenarioClient
from scenario_upscale.collection import Collector
from scenario_upscale.items import BatchItem, ItemResult, Plan, SubmittedItem, UpscaleSpec
from scenario_upscale.journal import Journal, default_journal_path
from scenario_upscale.models import Price
from scenario_upscale.planning import Planner
from scenario_upscale.polling import JobWatcher, PollPolicy
from scenario_upscale.progress import Progress, ProgressCounter
from scenario_upscale.submission import Submitter
from scenario_upscale.targets import check_target
from scenario_upscale.uploads import UNUSABLE, Uploads


class BatchSession:
    """The shared state of one batch run: client, job watcher, slots, journal and progress.

    Args:
        client: A ``ScenarioClient``.
        target: Output folder, local path or fsspec URL.
        journal: Where the batch remembers its work; defaults next to the outputs.
        max_concurrency: Jobs in flight at once; lowered to the team's concurrency ceiling when
            the API names it.
        poll: Poll cadence and deadline.
        on_progress: Called with updated counts after each change.
    """

    def __init__(
        self,
        client: ScenarioClient,
        target: str,
        *,
        journal: Journal | None = None,
        max_concurrency: int = 8,
        poll: PollPolicy | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.client = client
        self.target = target.rstrip("/") or "."
        namespace = f"{client.base_url}|{client.project_id or ''}"
        self.journal = journal or Journal(default_journal_path(self.target), namespace)
        self.watcher = JobWatcher(client, poll)
        self.counter = ProgressCounter(on_progress)
        self.uploads = Uploads(client, self.journal)
        self.planner = Planner(client, self.journal, self.uploads, self.target)
        self.submitter = Submitter(
            client, self.journal, self.watcher, self.counter, max_concurrency, self.uploads
        )
        self.collector = Collector(
            client, self.journal, self.watcher, self.counter, self.target, self.submitter.watching
        )
        self._stack = contextlib.AsyncExitStack()

    @property
    def progress(self) -> Progress:
        """The counts so far."""
        return self.counter.counts

    async def __aenter__(self) -> Self:
        # Before the journal (kept in a local target) and before anything is paid for.
        await asyncio.to_thread(check_target, self.target)
        await self._stack.enter_async_context(self.watcher)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.journal.flushed()  # the last records on disk before the run ends
        finally:
            await self._stack.__aexit__(exc_type, exc, tb)

    async def prepare(self, locations: str | Iterable[str], specs: Sequence[UpscaleSpec]) -> Plan:
        """Resolve, read and check the inputs; settle those already done or invalid.

        Nothing is uploaded yet: each input is, just before its dry run or its submit."""
        plan = await self.planner.plan(locations, specs)
        self.counter.planned(len(plan.items))
        return plan

    async def price(self, items: Sequence[BatchItem], *, concurrency: int = 8) -> dict[str, Price]:
        """Dry-run price of every item not paid for yet (HTTP 269 or 200; nothing is charged).

        One dry run per price class (``planning.price_class``), on an item of the class uploaded
        for it; every item of the class gets that price. A class none of whose inputs can be
        uploaded has no price: its items fail at their own upload, before any job.
        """
        gate = asyncio.Semaphore(concurrency)
        classes: dict[str, list[BatchItem]] = {}
        for item in items:
            if item.key not in self.journal.jobs:
                classes.setdefault(self.planner.price_classes.get(item.key, item.key), []).append(
                    item
                )

        async def one(members: list[BatchItem]) -> list[tuple[str, Price]]:
            async with gate:
                for member in members:
                    try:
                        ready = await self.uploads.ready(member)
                    except UNUSABLE:
                        continue  # this input is invalid; another of its class prices it
                    found = await self.client.price(ready.model_id, ready.body)
                    return [(m.key, found) for m in members]
            return []

        priced = await asyncio.gather(*(one(members) for members in classes.values()))
        return dict(pair for pairs in priced for pair in pairs)

    async def submit(self, items: Sequence[BatchItem]) -> list[SubmittedItem | ItemResult]:
        """Submit every item, or take over its job from an earlier run; never pay twice."""
        return list(await asyncio.gather(*(self.submitter.submit(i) for i in items)))
