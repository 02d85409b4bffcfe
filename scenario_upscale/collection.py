"""Wait for submitted jobs and bring their outputs home, named predictably, whole or not at all.

Every API error becomes that item's result: one bad job never stops the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from scenario_upscale import storage
from scenario_upscale.api import ScenarioClient
from scenario_upscale.errors import JobFailed, JobTimedOut, ScenarioError
from scenario_upscale.items import ItemResult, SubmittedItem, failure
from scenario_upscale.journal import Journal
from scenario_upscale.models import Asset, Job
from scenario_upscale.params import effective_parameters
from scenario_upscale.polling import JobWatcher
from scenario_upscale.progress import ProgressCounter


class Collector:
    """Waits for jobs (through the shared watcher) and downloads their outputs into ``target``."""

    def __init__(
        self,
        client: ScenarioClient,
        journal: Journal,
        watcher: JobWatcher,
        progress: ProgressCounter,
        target: str,
        watching: dict[str, asyncio.Future[Job]],
        *,
        download_budget_s: float = 120.0,
    ) -> None:
        self.client = client
        self.download_budget_s = download_budget_s
        self.journal = journal
        self.watcher = watcher
        self.progress = progress
        self.target = target
        self._watching = watching
        self._left_parts = storage.LeftParts()

    async def wait(self, submitted: SubmittedItem) -> SubmittedItem | ItemResult:
        """Wait until the job is terminal; a success comes back with its final job."""
        item = submitted.item
        future = self._watching.get(submitted.job.job_id)
        try:
            # A wait step retried (or run in a later process) re-tracks the job.
            job = await (future if future is not None else self.watcher.track(submitted.job))
        except JobTimedOut as error:
            return self.progress.failed(failure(item, "timed_out", error, submitted))
        except ScenarioError as error:
            return self.progress.failed(failure(item, "failure", error, submitted))
        self.progress.finished()
        if job.outcome != "success":
            failed = JobFailed(job.job_id, job.status, job.error, job.hint)
            return self.progress.failed(failure(item, job.outcome or "failure", failed, submitted))
        if not job.asset_ids:
            empty = ScenarioError(f"job {job.job_id} succeeded without outputs")
            return self.progress.failed(failure(item, "failure", empty, submitted))
        self.progress.moved_on()
        return submitted.model_copy(update={"job": job})

    async def collect(self, finished: Sequence[SubmittedItem]) -> list[ItemResult]:
        """Download every output of the finished jobs (one bulk asset read for all of them)."""
        ids = [a for s in finished for a in s.job.asset_ids]
        try:
            assets = {a.id: a for a in await self.client.get_assets(ids)}
        except ScenarioError as error:
            return [self.progress.failed(failure(s.item, "failure", error, s)) for s in finished]
        return list(await asyncio.gather(*(self._collect_one(s, assets) for s in finished)))

    async def _collect_one(self, s: SubmittedItem, assets: dict[str, Asset]) -> ItemResult:
        outputs: list[storage.StoredOutput] = []
        try:
            model = await self.client.get_model(s.item.model_id)  # fetched once per client
            for index, asset_id in enumerate(s.job.asset_ids):
                asset = assets.get(asset_id) or await self.client.get_asset(asset_id)
                outputs.append(await self._download(s, index, asset))
        except ScenarioError as error:
            return self.progress.failed(failure(s.item, "failure", error, s))
        locations = [o.location for o in outputs]
        self.journal.write(
            "collected",
            key=s.item.key,
            job_id=s.job.job_id,
            outputs=locations,
            sha256=s.item.source.sha256,
            model_id=s.item.model_id,
            parameters=effective_parameters(model, s.item.parameters),
        )
        return self.progress.collected(
            ItemResult(
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
        )

    async def _download(self, s: SubmittedItem, index: int, asset: Asset) -> storage.StoredOutput:
        item = s.item
        # The output's own type names its extension; the input's when the output's is unknown.
        mime = asset.mime_type if storage.extension_for(asset.mime_type) else item.source.mime_type

        def name(variant: str | None = None) -> str:
            return storage.join(
                self.target,
                storage.output_name(
                    item.source.name, item.model_id, item.scale, mime, index, variant=variant
                ),
            )

        return await storage.download(
            self.client.cdn,
            asset,
            name(),
            # Where it goes if a different result already sits under the name.
            alternative=name(item.key[:8]),
            refresh_url=self.client.fresh_download_url,
            # The client's backoff: a paid output is worth outlasting a flaky CDN for.
            policy=self.client.retry,
            budget_s=self.download_budget_s,
            left_parts=self._left_parts,
        )
