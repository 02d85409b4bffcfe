"""Submit items without ever paying twice, within the team's concurrency ceiling.

* De-duplication: identical items (same bytes, model and parameters) in one batch share one
  submit and one paid job; an item whose job an earlier run submitted takes that job over
  (from the journal, or found again through ``GET /v1/jobs`` after a crash mid-submit).
* The journal records "submitting" before the POST and "submitted" after it.
* Uploads: an input is uploaded just before its submit (``uploads.Uploads.ready``), at most
  ``upload_window`` items ahead of the submits, so the first jobs start while later inputs are
  still uploading and the uploads never run far ahead of the team's ceiling.
* Slots (``slots.JobSlots``): at most ``max_concurrency`` jobs in flight, fewer once a 429 names
  the team's ceiling. A slot is taken just before a submit and given back when the job reaches a
  terminal status, whichever step is running then. A submit refused by the ceiling never fails
  its item: it waits for one of our jobs to end and is sent again (``retry.CeilingWait``), within
  a budget of time that is its own: the lost answers (5xx, timeouts) of the same input are
  counted apart (``retry.LostSubmitRetry``), and a ceiling wait is never one of them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from scenario_upscale.api import ScenarioClient
from scenario_upscale.errors import ScenarioError
from scenario_upscale.items import BatchItem, ItemResult, SubmittedItem, failure
from scenario_upscale.journal import Journal
from scenario_upscale.models import Job
from scenario_upscale.polling import JobWatcher
from scenario_upscale.progress import ProgressCounter
from scenario_upscale.retry import CeilingWait, LostSubmitRetry, retry
from scenario_upscale.slots import JobSlots
from scenario_upscale.uploads import UNUSABLE, Uploads

log = logging.getLogger("scenario_upscale.submission")


class Submitter:
    """Submits items one by one; each submitted job is watched from that moment on."""

    def __init__(
        self,
        client: ScenarioClient,
        journal: Journal,
        watcher: JobWatcher,
        progress: ProgressCounter,
        max_concurrency: int,
        uploads: Uploads,
        *,
        upload_window: int | None = None,
        lost_attempts: int = 6,
        ceiling_budget_s: float = 3600.0,
    ) -> None:
        self.client = client
        self.lost_attempts = lost_attempts
        self.ceiling_budget_s = ceiling_budget_s
        self.journal = journal
        self.watcher = watcher
        self.progress = progress
        self.slots = JobSlots(max_concurrency)
        self.uploads = uploads
        # Items uploaded (or uploading) and not yet submitted: enough to refill every slot twice.
        self._ahead = asyncio.Semaphore(upload_window or max(8, 2 * self.slots.limit))
        self._submitting: dict[str, asyncio.Future[SubmittedItem | ItemResult]] = {}
        self._claimed: set[str] = set()
        self.watching: dict[str, asyncio.Future[Job]] = {}
        """The job watcher's future of each job submitted or taken over by this run."""

    async def submit(self, item: BatchItem) -> SubmittedItem | ItemResult:
        """Submit ``item``, or take over its job; a failed submit becomes the item's result."""
        twin = self._submitting.get(item.key)
        if twin is not None:
            # The same bytes with the same model and parameters: one paid job serves both.
            first = await twin
            if isinstance(first, ItemResult):
                error = ScenarioError(first.error or "failed")
                return self.progress.failed(failure(item, first.status, error))
            return first.model_copy(update={"item": item, "resumed": True})
        self._submitting[item.key] = future = asyncio.get_running_loop().create_future()
        try:
            async with self._ahead:
                result = await self._upload_and_submit(item)
        except BaseException:
            future.cancel()
            raise
        future.set_result(result)
        return result

    async def _upload_and_submit(self, item: BatchItem) -> SubmittedItem | ItemResult:
        try:
            item = await self.uploads.ready(item)
        except UNUSABLE as error:
            return self.progress.failed(failure(item, "invalid", error))
        except ScenarioError as error:
            return self.progress.failed(failure(item, "failure", error))
        return await self._submit_unique(item)

    async def _submit_unique(self, item: BatchItem) -> SubmittedItem | ItemResult:
        # One count of lost answers for the whole submit of this input, which a ceiling wait
        # resets and never adds to: the two kinds of failure have budgets of their own.
        lost = LostSubmitRetry(self.client.retry, self.lost_attempts)

        async def once() -> SubmittedItem:
            await self.slots.acquire()
            try:
                # Claimed against the other runs on this target. Looked up again after a 429
                # too: ours created nothing, but another run may have submitted it meanwhile.
                async with self.journal.claim(item.key):
                    earlier = await self._find_earlier(item)
                    return earlier or await self._submit_new(item, lost)
            except BaseException:
                self.slots.release()
                raise

        try:
            ceiling = CeilingWait(
                self.slots,
                self.client.retry,
                item.source.name,
                lost=lost,
                budget_s=self.ceiling_budget_s,
            )
            submitted = await retry(once, ceiling)
        except ScenarioError as error:
            return self.progress.failed(failure(item, "failure", error))
        job_id = submitted.job.job_id
        self._claimed.add(job_id)
        self.progress.submitted(0.0 if submitted.resumed else submitted.creative_units or 0.0)
        log.info("%s → job %s (%s)", item.source.name, job_id, item.model_id)
        # Watched from now on, whichever step runs: the slot comes back the moment the job ends,
        # even while this shard is still submitting.
        future = self.watcher.track(submitted.job)
        future.add_done_callback(lambda _: self.slots.release(ended=True))
        self.watching[job_id] = future
        return submitted

    async def _find_earlier(self, item: BatchItem) -> SubmittedItem | None:
        known = self.journal.jobs.get(item.key)
        if known is not None:
            job_id, cost = known
            job = await self.client.get_job(job_id)
            if job.outcome in ("failure", "canceled"):
                # Rerunning is how a user retries a failed input; Scenario refunded that job.
                # Claimed, so that a lost answer to the new submit is never matched to it.
                self._claimed.add(job_id)
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

    async def _submit_new(self, item: BatchItem, lost: LostSubmitRetry) -> SubmittedItem:
        self.journal.write("submitting", key=item.key)
        await self.journal.flushed()  # on disk before the POST: a rerun then looks for its job
        result = await self.client.submit(
            item.model_id, item.body, exclude_job_ids=self._claimed, lost=lost
        )
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
