"""A batch of upscales, step by step: prepare, price, submit, wait, collect.

Each step is a method of ``BatchSession`` that works on many items at once, so that the Prefect
layer can make one task of each step (per shard) instead of one task per job, and a plain asyncio
program (``run_batch``) can compose the very same steps.

Slots: at most ``max_concurrency`` jobs are in flight, fewer once a 429 names the team's
concurrency ceiling (``slots.JobSlots``). A slot is taken just before a submit and given back when
the job reaches a terminal status, whichever step is running then, so submitting the next shard
overlaps with waiting for the previous one. A submit refused by the ceiling never fails its item:
it waits for one of our jobs to end and is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from scenario_upscale import sources, storage
from scenario_upscale.api import ScenarioClient
from scenario_upscale.errors import (
    BudgetExceeded,
    InvalidInput,
    JobFailed,
    JobTimedOut,
    ScenarioBadRequest,
    ScenarioError,
    ScenarioNotFound,
)
from scenario_upscale.journal import Journal, default_journal_path, request_key
from scenario_upscale.models import Job, ModelSpec, Price
from scenario_upscale.params import (
    build_body,
    effective_parameters,
    media_kind,
    same_value,
    scale_label,
)
from scenario_upscale.polling import JobWatcher, PollPolicy
from scenario_upscale.retry import CeilingWait, retry
from scenario_upscale.slots import JobSlots
from scenario_upscale.sources import SourceFile

log = logging.getLogger("scenario_upscale.batch")

ItemStatus = Literal["success", "failure", "canceled", "timed_out", "invalid", "skipped"]


def journal_key(journal: Journal, sha256: str, model: ModelSpec, parameters: dict[str, Any]) -> str:
    """The journal key of one input with one model: on the parameters the model runs with,
    so ``{}`` and ``{"upscaleFactor": 2}`` (its default) are one job, paid once.

    Journals written when keys hashed the parameters as given stay readable: when only such a
    key has records, it is the one used. Tried: the parameters as given, without the values that
    are defaults, and with one default spelled out (a deployment's explicit scale, say).

    Example:
        >>> from pathlib import Path
        >>> from scenario_upscale.models import ModelInput
        >>> model = ModelSpec(id="model_x", inputs=[
        ...     ModelInput(name="image", type="file"),
        ...     ModelInput(name="upscaleFactor", type="number", default=2)])
        >>> journal = Journal(Path("/nonexistent/journal.jsonl"), "ns")
        >>> journal_key(journal, "ab", model, {}) == journal_key(
        ...     journal, "ab", model, {"upscaleFactor": 2.0})
        True
    """
    key = request_key(sha256, model.id, effective_parameters(model, parameters))
    if _known(journal, key):
        return key
    defaults = {i.name: i.default for i in model.inputs if i.default is not None}
    bare = {
        k: v for k, v in parameters.items() if not (k in defaults and same_value(v, defaults[k]))
    }
    forms = [parameters, bare] + [{**bare, k: v} for k, v in defaults.items()]
    legacy = (request_key(sha256, model.id, form) for form in forms)
    return next((k for k in legacy if _known(journal, k)), key)


def _known(journal: Journal, key: str) -> bool:
    return key in journal.jobs or key in journal.collected or key in journal.submitting


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
    destination: str
    """Output location of the first output; further outputs get ``-2``, ``-3``… suffixes."""


class SubmittedItem(BaseModel):
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
    creative_units: float | None = None
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


class BatchReport(BaseModel):
    """The result of a batch, one entry per input and model."""

    results: list[ItemResult]
    creative_units: float = Field(description="Creative units charged by the jobs of this batch.")
    started_at: datetime
    finished_at: datetime

    def count(self, *statuses: ItemStatus) -> int:
        return sum(1 for r in self.results if r.status in statuses)

    @property
    def ok(self) -> bool:
        """True when every input has its output (new or from an earlier run)."""
        return all(r.status in ("success", "skipped") for r in self.results)

    def summary(self) -> str:
        done = self.count("success")
        skipped = self.count("skipped")
        failed = len(self.results) - done - skipped
        return (
            f"{done} upscaled, {skipped} already done, {failed} failed; "
            f"{self.creative_units:g} creative units"
        )


class Plan(BaseModel):
    """The outcome of ``prepare``: items to run, and inputs already settled (done or invalid)."""

    items: list[BatchItem]
    settled: list[ItemResult]


class Progress(BaseModel):
    """Counts reported to a progress callback after every change."""

    total: int = 0
    submitted: int = 0
    finished: int = Field(default=0, description="Jobs that reached a terminal status.")
    done: int = Field(default=0, description="Items settled: collected or failed.")
    failed: int = 0
    creative_units: float = 0.0


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
        self._stack = contextlib.AsyncExitStack()
        self.slots = JobSlots(max_concurrency)
        self._watching: dict[str, asyncio.Future[Job]] = {}
        self._uploading: dict[str, asyncio.Future[str]] = {}
        self._submitting: dict[str, asyncio.Future[SubmittedItem | ItemResult]] = {}
        self._claimed: set[str] = set()
        # Bytes read but not yet uploaded, by content hash; dropped once uploaded.
        self._unsent: dict[str, bytes] = {}
        self.progress = Progress()
        self._on_progress = on_progress

    async def __aenter__(self) -> Self:
        await self._stack.enter_async_context(self.journal.exclusive())
        await self._stack.enter_async_context(self.watcher)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress.model_copy())

    # -- prepare --------------------------------------------------------------------------------

    async def load_models(self, specs: Sequence[UpscaleSpec]) -> dict[str, ModelSpec]:
        """Fetch each model's schema and check every spec's parameters against it.

        Raises:
            InvalidUpscaleParameters: before any input is read, uploaded or paid for.
        """
        models = {s.model_id: await self.client.get_model(s.model_id) for s in specs}
        for spec in specs:
            build_body(models[spec.model_id], "asset_placeholder", spec.parameters)
        return models

    async def prepare(
        self, locations: str | Iterable[str], specs: Sequence[UpscaleSpec], *, uploads: int = 4
    ) -> Plan:
        """Resolve, read, check and upload the inputs; settle those already done or invalid.

        A bad parameter fails the whole batch (it is the same for every input); a bad input file
        fails that input alone. Uploads are shared by content hash within and across runs.
        """
        models = await self.load_models(specs)
        found = sources.expand(locations)
        gate = asyncio.Semaphore(uploads)

        async def one(location: str) -> list[BatchItem | ItemResult]:
            async with gate:
                return await self._prepare_one(location, specs, models)

        plans = await asyncio.gather(*(one(location) for location in found))
        items = [p for group in plans for p in group if isinstance(p, BatchItem)]
        settled = [p for group in plans for p in group if isinstance(p, ItemResult)]
        self.progress.total += len(items)
        self._report()
        return Plan(items=items, settled=settled)

    async def _prepare_one(
        self, location: str, specs: Sequence[UpscaleSpec], models: dict[str, ModelSpec]
    ) -> list[BatchItem | ItemResult]:
        # Only this input is unusable when it is unreadable, not an image, or refused at upload.
        try:
            source, asset_id = await self._load_source(location)
        except (InvalidInput, ScenarioBadRequest, ScenarioNotFound) as error:
            return self._invalid(location, specs, error)
        try:
            return await self._plan_source(location, source, asset_id, specs, models)
        except (InvalidInput, ScenarioBadRequest, ScenarioNotFound) as error:
            return self._invalid(location, specs, error)
        finally:
            # Every upload of these bytes is over (or was never needed): drop them from memory.
            self._unsent.pop(source.sha256, None)

    @staticmethod
    def _invalid(
        location: str, specs: Sequence[UpscaleSpec], error: Exception
    ) -> list[BatchItem | ItemResult]:
        return [
            ItemResult(source=location, model_id=s.model_id, status="invalid", error=str(error))
            for s in specs
        ]

    async def _plan_source(
        self,
        location: str,
        source: SourceFile,
        asset_id: str | None,
        specs: Sequence[UpscaleSpec],
        models: dict[str, ModelSpec],
    ) -> list[BatchItem | ItemResult]:
        out: list[BatchItem | ItemResult] = []
        for spec in specs:
            model = models[spec.model_id]
            if media_kind(model) != source.kind:
                out.append(
                    ItemResult(
                        source=location,
                        model_id=spec.model_id,
                        status="invalid",
                        error=f"{spec.model_id} upscales {media_kind(model)}s; "
                        f"{source.name} is a {source.kind}",
                    )
                )
                continue
            key = journal_key(self.journal, source.sha256, model, spec.parameters)
            name = storage.output_name(
                source.name, spec.model_id, scale_label(model, spec.parameters), source.mime_type
            )
            destination = storage.join(self.target, name)
            done = self._already_collected(key)
            if done is not None:
                out.append(
                    done.model_copy(
                        update={
                            "source": location,
                            "model_id": spec.model_id,
                            "input_width": source.width,
                            "input_height": source.height,
                        }
                    )
                )
                continue
            body = build_body(model, asset_id or await self._upload(source), spec.parameters)
            out.append(
                BatchItem(
                    key=key,
                    source=source,
                    model_id=spec.model_id,
                    parameters=spec.parameters,
                    body=body,
                    destination=destination,
                )
            )
        return out

    async def _load_source(self, location: str) -> tuple[SourceFile, str | None]:
        if sources.is_asset_id(location):
            asset = await self.client.get_asset(location)
            kind = "video" if asset.kind == "video" else "image"
            # An asset is identified by its id: there are no bytes here to hash.
            source = SourceFile(
                location=location,
                name=f"{location}.{asset.mime_type.split('/')[-1]}",
                kind=kind,
                mime_type=asset.mime_type,
                sha256=location,
                size=asset.size or 0,
                width=asset.width,
                height=asset.height,
            )
            return source, asset.id
        source, data = await sources.read(location, self.client.cdn)
        self._unsent[source.sha256] = data
        return source, None

    async def _upload(self, source: SourceFile) -> str:
        cached = self.journal.uploads.get(source.sha256)
        if cached is not None:
            self._unsent.pop(source.sha256, None)
            return cached
        # Identical files in one batch share one upload, even while it is in flight.
        if source.sha256 not in self._uploading:
            self._uploading[source.sha256] = asyncio.ensure_future(self._send(source))
        return await self._uploading[source.sha256]

    async def _send(self, source: SourceFile) -> str:
        data = self._unsent.pop(source.sha256)
        asset_id = await self.client.upload(
            data, name=source.name, mime_type=source.mime_type, kind=source.kind
        )
        self.journal.write("uploaded", sha256=source.sha256, asset_id=asset_id)
        return asset_id

    def _already_collected(self, key: str) -> ItemResult | None:
        outputs = self.journal.collected.get(key)
        if not outputs:
            return None
        if not all(storage.exists(o) for o in outputs):
            return None  # an output went missing: collect it again (the job is paid already)
        job_id, cost = self.journal.jobs.get(key, (None, None))
        width, height = storage.image_size(outputs[0])
        return ItemResult(
            source="",
            model_id="",
            status="skipped",
            job_id=job_id,
            creative_units=cost,
            outputs=outputs,
            output_width=width,
            output_height=height,
        )

    # -- price ----------------------------------------------------------------------------------

    async def price(self, items: Sequence[BatchItem], *, concurrency: int = 8) -> dict[str, Price]:
        """Dry-run price of every item not paid for yet (HTTP 269 or 200; nothing is charged)."""
        gate = asyncio.Semaphore(concurrency)

        async def one(item: BatchItem) -> tuple[str, Price]:
            async with gate:
                return item.key, await self.client.price(item.model_id, item.body)

        todo = [i for i in items if i.key not in self.journal.jobs]
        return dict(await asyncio.gather(*(one(i) for i in todo)))

    @staticmethod
    def check_budget(prices: dict[str, Price], budget: float | None) -> float:
        """The total of ``prices``; raises BudgetExceeded when it is above ``budget``."""
        total = round(sum(p.creative_units for p in prices.values()), 6)
        if budget is not None and total > budget:
            raise BudgetExceeded(total, budget, len(prices))
        return total

    # -- submit ---------------------------------------------------------------------------------

    async def submit(self, items: Sequence[BatchItem]) -> list[SubmittedItem | ItemResult]:
        """Submit every item, or take over its job from an earlier run; never pay twice.

        Waits for a free slot before each submit. A failed submit becomes that item's result.
        """
        return list(await asyncio.gather(*(self._submit_one(i) for i in items)))

    async def _submit_one(self, item: BatchItem) -> SubmittedItem | ItemResult:
        twin = self._submitting.get(item.key)
        if twin is not None:
            # The same bytes with the same model and parameters: one paid job serves both.
            first = await twin
            if isinstance(first, ItemResult):
                return self._failed(item, first.status, ScenarioError(first.error or "failed"))
            return first.model_copy(update={"item": item, "resumed": True})
        self._submitting[item.key] = future = asyncio.get_running_loop().create_future()
        try:
            result = await self._submit_unique(item)
        except BaseException:
            future.cancel()
            raise
        future.set_result(result)
        return result

    async def _submit_unique(self, item: BatchItem) -> SubmittedItem | ItemResult:
        tries = 0

        async def once() -> SubmittedItem:
            nonlocal tries
            tries += 1
            await self.slots.acquire()
            try:
                # A 429 created nothing: after one, there is no earlier job to look for.
                earlier = await self._find_earlier(item) if tries == 1 else None
                return earlier or await self._submit_new(item)
            except BaseException:
                self.slots.release()
                raise

        try:
            submitted = await retry(
                once, CeilingWait(self.slots, self.client.retry, item.source.name)
            )
        except ScenarioError as error:
            return self._failed(item, "failure", error)
        job_id = submitted.job.job_id
        self._claimed.add(job_id)
        self.progress.submitted += 1
        if not submitted.resumed:
            self.progress.creative_units += submitted.creative_units or 0.0
        self._report()
        log.info("%s → job %s (%s)", item.source.name, job_id, item.model_id)
        # Watched from now on, whichever step runs: the slot comes back the moment the job ends,
        # even while this shard is still submitting.
        future = self.watcher.track(submitted.job)
        future.add_done_callback(lambda _: self.slots.release(ended=True))
        self._watching[job_id] = future
        return submitted

    async def _find_earlier(self, item: BatchItem) -> SubmittedItem | None:
        known = self.journal.jobs.get(item.key)
        if known is not None:
            job_id, cost = known
            job = await self.client.get_job(job_id)
            if job.outcome in ("failure", "canceled"):
                # Rerunning is how a user retries a failed input; Scenario refunded that job.
                log.info(
                    "job %s for %s ended %s: submitting again", job_id, item.source.name, job.status
                )
                return None
            return SubmittedItem(item=item, job=job, creative_units=cost, resumed=True)
        started = self.journal.submitting.get(item.key)
        if started is None:
            return None
        # An earlier run crashed between sending the submit and recording its answer.
        found = await self.client.find_job(
            item.model_id,
            item.body,
            created_after=started - timedelta(minutes=2),
            exclude=self._claimed,
        )
        if found is None:
            return None
        job = found
        self.journal.write(
            "submitted", key=item.key, job_id=job.job_id, creative_units=job.creative_units
        )
        return SubmittedItem(
            item=item, job=job, creative_units=job.creative_units, reconciled=True, resumed=True
        )

    async def _submit_new(self, item: BatchItem) -> SubmittedItem:
        self.journal.write("submitting", key=item.key)
        result = await self.client.submit(item.model_id, item.body, exclude_job_ids=self._claimed)
        self.journal.write(
            "submitted",
            key=item.key,
            job_id=result.job.job_id,
            creative_units=result.creative_units,
        )
        return SubmittedItem(
            item=item,
            job=result.job,
            creative_units=result.creative_units,
            reconciled=result.reconciled,
        )

    # -- wait -----------------------------------------------------------------------------------

    async def wait(self, submitted: Sequence[SubmittedItem]) -> list[SubmittedItem | ItemResult]:
        """Wait until each job is terminal; successes come back with their final job."""
        return list(await asyncio.gather(*(self._wait_one(s) for s in submitted)))

    async def _wait_one(self, submitted: SubmittedItem) -> SubmittedItem | ItemResult:
        item = submitted.item
        future = self._watching.get(submitted.job.job_id)
        try:
            # A wait step retried (or run in a later process) re-tracks the job.
            job = await (future if future is not None else self.watcher.track(submitted.job))
        except JobTimedOut as error:
            return self._failed(item, "timed_out", error, submitted)
        except ScenarioError as error:
            return self._failed(item, "failure", error, submitted)
        self.progress.finished += 1
        if job.outcome != "success":
            failed = JobFailed(job.job_id, job.status, job.error, job.hint)
            return self._failed(item, job.outcome or "failure", failed, submitted)
        if not job.asset_ids:
            return self._failed(
                item,
                "failure",
                ScenarioError(f"job {job.job_id} succeeded without outputs"),
                submitted,
            )
        self._report()
        return submitted.model_copy(update={"job": job})

    # -- collect --------------------------------------------------------------------------------

    async def collect(self, finished: Sequence[SubmittedItem]) -> list[ItemResult]:
        """Download every output of the finished jobs (one bulk asset read for all of them)."""
        ids = [a for s in finished for a in s.job.asset_ids]
        try:
            assets = {a.id: a for a in await self.client.get_assets(ids)}
        except ScenarioError as error:
            return [self._failed(s.item, "failure", error, s) for s in finished]
        return list(await asyncio.gather(*(self._collect_one(s, assets) for s in finished)))

    async def _collect_one(self, s: SubmittedItem, assets: dict[str, Any]) -> ItemResult:
        outputs: list[storage.StoredOutput] = []
        try:
            for index, asset_id in enumerate(s.job.asset_ids):
                asset = assets.get(asset_id) or await self.client.get_asset(asset_id)
                destination, alternative = self._destination(s.item, index, asset.mime_type)
                outputs.append(
                    await storage.download(
                        self.client.cdn,
                        asset,
                        destination,
                        alternative=alternative,
                        refresh_url=self.client.fresh_download_url,
                    )
                )
        except ScenarioError as error:
            return self._failed(s.item, "failure", error, s)
        locations = [o.location for o in outputs]
        self.journal.write("collected", key=s.item.key, job_id=s.job.job_id, outputs=locations)
        self.progress.done += 1
        self._report()
        return ItemResult(
            source=s.item.source.location,
            model_id=s.item.model_id,
            status="success",
            job_id=s.job.job_id,
            creative_units=s.creative_units,
            outputs=locations,
            input_width=s.item.source.width,
            input_height=s.item.source.height,
            output_width=outputs[0].width,
            output_height=outputs[0].height,
            reconciled=s.reconciled,
            resumed=s.resumed,
        )

    def _destination(self, item: BatchItem, index: int, mime_type: str) -> tuple[str, str]:
        """Where output ``index`` goes, and where it goes if a different file is already there."""
        stem, _, extension = item.destination.rpartition(".")
        extension = storage.extension_for(mime_type) or extension
        if index:
            stem = f"{stem}-{index + 1}"
        return f"{stem}.{extension}", f"{stem}.{item.key[:8]}.{extension}"

    def _failed(
        self,
        item: BatchItem,
        status: ItemStatus,
        error: Exception,
        submitted: SubmittedItem | None = None,
    ) -> ItemResult:
        self.progress.failed += 1
        self.progress.done += 1
        self._report()
        return ItemResult(
            source=item.source.location,
            model_id=item.model_id,
            status=status,
            job_id=submitted.job.job_id if submitted else None,
            creative_units=submitted.creative_units if submitted else None,
            input_width=item.source.width,
            input_height=item.source.height,
            error=str(error),
            reconciled=bool(submitted and submitted.reconciled),
            resumed=bool(submitted and submitted.resumed),
        )

    async def run_shard(self, items: Sequence[BatchItem]) -> list[ItemResult]:
        """Submit, wait and collect one shard: the plain-asyncio composition of the steps."""
        submitted = await self.submit(items)
        waiting = [s for s in submitted if isinstance(s, SubmittedItem)]
        done = [s for s in submitted if isinstance(s, ItemResult)]
        finished = await self.wait(waiting)
        done += [f for f in finished if isinstance(f, ItemResult)]
        done += await self.collect([f for f in finished if isinstance(f, SubmittedItem)])
        return done


def shards(items: Sequence[BatchItem], size: int) -> list[list[BatchItem]]:
    """Split ``items`` into consecutive shards of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), max(1, size))]


async def run_batch(
    client: ScenarioClient,
    inputs: str | Iterable[str],
    target: str,
    specs: Sequence[UpscaleSpec] = (UpscaleSpec(),),
    *,
    max_creative_units: float | None = None,
    dry_run_pricing: bool = True,
    max_concurrency: int = 8,
    shard_size: int = 25,
    poll: PollPolicy | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> BatchReport:
    """Upscale every input with every spec into ``target``, without Prefect.

    Example:
        >>> async def main(client):
        ...     report = await run_batch(client, "art/*.png", "out/",
        ...                              [UpscaleSpec(parameters={"upscaleFactor": 2})])
        ...     print(report.summary())
    """
    started = datetime.now(UTC)
    async with BatchSession(
        client, target, max_concurrency=max_concurrency, poll=poll, on_progress=on_progress
    ) as session:
        plan = await session.prepare(inputs, specs)
        if dry_run_pricing or max_creative_units is not None:
            session.check_budget(await session.price(plan.items), max_creative_units)
        groups = await asyncio.gather(
            *(session.run_shard(shard) for shard in shards(plan.items, shard_size))
        )
    results = plan.settled + [r for group in groups for r in group]
    return BatchReport(
        results=results,
        creative_units=session.progress.creative_units,
        started_at=started,
        finished_at=datetime.now(UTC),
    )
