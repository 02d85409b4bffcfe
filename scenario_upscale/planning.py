"""Prepare a batch: resolve the inputs, read and check them against each model, and settle the
inputs already done (in the journal, outputs in place) or unusable. Nothing is uploaded here:
each input is uploaded just before it is priced or submitted (``uploads.Uploads.ready``).

Each item also gets its *price class*: what its dry-run price depends on (the model, the
parameters it runs with, and the input's size, from which the output size follows), so one dry
run prices every item of a class.

A bad parameter fails the whole batch (it is the same for every input); a bad input file fails
that input alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any

from scenario_upscale import sources, storage
from scenario_upscale.api import ScenarioClient
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
from scenario_upscale.uploads import UNUSABLE, Uploads, pending_asset


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


def price_class(source: SourceFile, model: ModelSpec, parameters: dict[str, Any]) -> str:
    """What an item's price depends on: the model, the parameters it runs with and the input's
    size (the output size follows from them; Scenario's cost follows output pixels).

    A video's price also follows its length, which is not read here: each video content is a
    class of its own, and so is an image whose size is unknown.

    Example:
        >>> from scenario_upscale.models import ModelInput
        >>> model = ModelSpec(id="model_x", inputs=[
        ...     ModelInput(name="image", type="file"),
        ...     ModelInput(name="upscaleFactor", type="number", default=2)])
        >>> def png(sha, side):
        ...     return SourceFile(location=sha, name=sha, kind="image", mime_type="image/png",
        ...                       sha256=sha, size=1, width=side, height=side)
        >>> price_class(png("a", 64), model, {}) == price_class(
        ...     png("b", 64), model, {"upscaleFactor": 2})
        True
        >>> price_class(png("a", 64), model, {}) == price_class(png("a", 65), model, {})
        False
    """
    known = source.kind == "image" and source.width is not None and source.height is not None
    size: object = [source.width, source.height] if known else source.sha256
    effective = effective_parameters(model, parameters)
    return json.dumps([model.id, effective, source.kind, size], sort_keys=True, default=str)


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
        self.price_classes: dict[str, str] = {}
        """The price class of each planned item, by its key (``price_class``)."""

    async def load_models(self, specs: Sequence[UpscaleSpec]) -> dict[str, ModelSpec]:
        """Fetch each model's schema and check every spec's parameters against it.

        Raises:
            InvalidUpscaleParameters: before any input is read, uploaded or paid for.
        """
        models = {s.model_id: await self.client.get_model(s.model_id) for s in specs}
        for spec in specs:
            build_body(models[spec.model_id], "asset_placeholder", spec.parameters)
        return models

    async def plan(self, locations: str | Iterable[str], specs: Sequence[UpscaleSpec]) -> Plan:
        """Resolve, read and check the inputs (reads are bounded by ``Uploads``)."""
        models = await self.load_models(specs)
        plans = await asyncio.gather(
            *(self.plan_one(location, specs, models) for location in sources.expand(locations))
        )
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
        except UNUSABLE as error:
            return list(_invalid(location, specs, error))
        try:
            return [
                await self._plan_spec(location, source, asset_id, spec, models[spec.model_id])
                for spec in specs
            ]
        except UNUSABLE as error:
            return list(_invalid(location, specs, error))

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
        body = build_body(model, asset_id or pending_asset(source), spec.parameters)
        self.price_classes[key] = price_class(source, model, spec.parameters)
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
            collected_at=self.journal.collected_at.get(key),
        )
