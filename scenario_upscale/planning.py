"""Prepare a batch: resolve the inputs, check them against each model, upload what is new, and
settle the inputs already done (in the journal, outputs in place) or unusable.

A bad parameter fails the whole batch (it is the same for every input); a bad input file fails
that input alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from scenario_upscale import sources, storage
from scenario_upscale.api import ScenarioClient
from scenario_upscale.errors import InvalidInput, ScenarioBadRequest, ScenarioNotFound
from scenario_upscale.items import BatchItem, ItemResult, Plan, UpscaleSpec
from scenario_upscale.journal import Journal, request_key
from scenario_upscale.models import ModelSpec
from scenario_upscale.params import (
    build_body,
    effective_parameters,
    media_kind,
    same_value,
    scale_label,
)
from scenario_upscale.sources import SourceFile
from scenario_upscale.uploads import Uploads

_UNUSABLE = (InvalidInput, ScenarioBadRequest, ScenarioNotFound)
"""What makes one input unusable (unreadable, not an image, refused at upload), not the batch."""


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


def _invalid(location: str, specs: Sequence[UpscaleSpec], error: Exception) -> list[ItemResult]:
    return [
        ItemResult(source=location, model_id=s.model_id, status="invalid", error=str(error))
        for s in specs
    ]


class Planner:
    """Turns locations and specs into items to run and results already settled."""

    def __init__(
        self, client: ScenarioClient, journal: Journal, uploads: Uploads, target: str
    ) -> None:
        self.client = client
        self.journal = journal
        self.uploads = uploads
        self.target = target

    async def load_models(self, specs: Sequence[UpscaleSpec]) -> dict[str, ModelSpec]:
        """Fetch each model's schema and check every spec's parameters against it.

        Raises:
            InvalidUpscaleParameters: before any input is read, uploaded or paid for.
        """
        models = {s.model_id: await self.client.get_model(s.model_id) for s in specs}
        for spec in specs:
            build_body(models[spec.model_id], "asset_placeholder", spec.parameters)
        return models

    async def plan(
        self, locations: str | Iterable[str], specs: Sequence[UpscaleSpec], *, uploads: int = 4
    ) -> Plan:
        """Resolve, read, check and upload the inputs, ``uploads`` at a time."""
        models = await self.load_models(specs)
        gate = asyncio.Semaphore(uploads)

        async def one(location: str) -> list[BatchItem | ItemResult]:
            async with gate:
                return await self.plan_one(location, specs, models)

        plans = await asyncio.gather(*(one(location) for location in sources.expand(locations)))
        return Plan(
            items=[p for group in plans for p in group if isinstance(p, BatchItem)],
            settled=[p for group in plans for p in group if isinstance(p, ItemResult)],
        )

    async def plan_one(
        self, location: str, specs: Sequence[UpscaleSpec], models: dict[str, ModelSpec]
    ) -> list[BatchItem | ItemResult]:
        """One input with every spec: an item to run, or its result when already settled."""
        try:
            source, asset_id = await self.uploads.read(location)
        except _UNUSABLE as error:
            return list(_invalid(location, specs, error))
        try:
            return [
                await self._plan_spec(location, source, asset_id, spec, models[spec.model_id])
                for spec in specs
            ]
        except _UNUSABLE as error:
            return list(_invalid(location, specs, error))
        finally:
            self.uploads.forget(source)

    async def _plan_spec(
        self,
        location: str,
        source: SourceFile,
        asset_id: str | None,
        spec: UpscaleSpec,
        model: ModelSpec,
    ) -> BatchItem | ItemResult:
        if media_kind(model) != source.kind:
            return ItemResult(
                source=location,
                model_id=spec.model_id,
                status="invalid",
                error=f"{spec.model_id} upscales {media_kind(model)}s; "
                f"{source.name} is a {source.kind}",
            )
        key = journal_key(self.journal, source.sha256, model, spec.parameters)
        done = self._already_collected(key)
        if done is not None:
            return done.model_copy(
                update={
                    "source": location,
                    "model_id": spec.model_id,
                    "input_width": source.width,
                    "input_height": source.height,
                }
            )
        body = build_body(model, asset_id or await self.uploads.asset_id(source), spec.parameters)
        return BatchItem(
            key=key,
            source=source,
            model_id=spec.model_id,
            parameters=spec.parameters,
            body=body,
            scale=scale_label(model, spec.parameters),
        )

    def _already_collected(self, key: str) -> ItemResult | None:
        outputs = self.journal.collected.get(key)
        if not outputs:
            return None
        if not all(storage.exists(o) for o in outputs):
            return None  # an output went missing: collect it again (the job is paid already)
        # Collected under another spelling of the endpoint: its job, not what it cost here.
        job_id, cost = self.journal.jobs.get(key, (self.journal.collected_jobs.get(key), None))
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
