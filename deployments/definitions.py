"""The deployments, declared once: ``scenario-upscale serve`` serves them, and
``python -m deployments.generate`` writes them into ``prefect.yaml`` for ``prefect deploy --all``
onto a work pool (a test fails while that file and these definitions differ).

Locations are stored as given: a relative path is relative to the folder the runs work in, the
working directory of ``scenario-upscale serve`` or, on a worker, the project folder that
``prefect.yaml``'s pull step enters. So both mean the same folders when served from the project.

Event contracts:

``asset.uploaded`` (emitted by whatever receives assets; starts ``upscale-batch/on-asset-uploaded``)
    resource: ``{"prefect.resource.id": "asset.<anything>"}`` (e.g. ``asset.landing.hero.png``);
    payload: ``{"location": "<file, folder, glob or fsspec URL>"}`` (a list of them works too).
    The location becomes the run's ``inputs``; target and upscales are the deployment's.

``scenario.upscale.batch.completed`` (emitted by every ``upscale-batch`` run; starts
``publish-upscaled/on-batch-completed``)
    resource: ``scenario.upscale.batch.<flow run id>``; payload
    ``{target, outputs, succeeded, skipped, failed, creative_units}``. ``payload.outputs``
    becomes the publish run's ``outputs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Interval, Schedule

from flows.pipeline import asset_pipeline, publish_upscaled, upscale_new_assets
from flows.reporting import BATCH_COMPLETED
from flows.sharded import upscale_sharded
from flows.upscale import DEFAULT_CREDENTIALS_BLOCK, upscale_batch, upscale_image
from flows.upscale_models import choice_for
from scenario_upscale.batch import UpscaleSpec

ASSET_UPLOADED = "asset.uploaded"
"""The event that announces new assets (see the module docstring for its contract)."""

UPSCALE_ON_DEMAND = "upscale-batch/upscale-folder"
IMAGE_ON_DEMAND = "upscale-image/upscale-one-image"
UPSCALE_ON_ASSET_UPLOADED = "upscale-batch/on-asset-uploaded"
NEW_ASSETS_NIGHTLY = "upscale-new-assets/nightly"
PUBLISH_ON_BATCH_COMPLETED = "publish-upscaled/on-batch-completed"
PIPELINE_ON_DEMAND = "asset-pipeline/ingest-upscale-publish"
SHARDED_ON_DEMAND = "upscale-sharded/upscale-across-workers"

ALL_DEPLOYMENTS = (
    UPSCALE_ON_DEMAND,
    IMAGE_ON_DEMAND,
    UPSCALE_ON_ASSET_UPLOADED,
    NEW_ASSETS_NIGHTLY,
    PUBLISH_ON_BATCH_COMPLETED,
    PIPELINE_ON_DEMAND,
    SHARDED_ON_DEMAND,
)
"""Every deployment, as ``<flow name>/<deployment name>`` (what ``run_deployment`` takes)."""

TAGS = ["scenario-upscale"]


@dataclass(frozen=True)
class DeploymentSettings:
    """What differs between installations: locations, schedule, model, credentials.

    Attributes:
        source: What the nightly run watches: folder, glob or fsspec URL.
        target: Where every deployment writes outputs (folder or fsspec URL).
        published: Where ``publish-upscaled`` writes thumbnails.
        staging: Where ``asset-pipeline`` ingests to.
        credentials_block: Name of the saved ScenarioCredentials block.
        cron: The nightly schedule (cron syntax) in ``timezone``.
        timezone: Time zone of ``cron``.
        interval_s: A fixed interval instead of ``cron`` (demos, tests).
        upscales: Models and parameters applied to every input (Upscale V3 at 2x, spelled
            out so that a deployment's form shows what a run gets).
    """

    source: str = "incoming"
    target: str = "upscaled"
    published: str = "published"
    staging: str = "staging"
    credentials_block: str = DEFAULT_CREDENTIALS_BLOCK
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    interval_s: float | None = None
    upscales: Sequence[UpscaleSpec] = field(
        default_factory=lambda: (UpscaleSpec(parameters={"upscaleFactor": 2}),)
    )

    def schedule(self) -> Schedule:
        if self.interval_s:
            return Interval(timedelta(seconds=self.interval_s))
        return Cron(self.cron, timezone=self.timezone)

    def upscales_parameter(self) -> list[dict[str, Any]]:
        return [s.model_dump(mode="json") for s in self.upscales]

    def model_parameter(self) -> dict[str, Any]:
        """The first upscale as the form's model choice, every input spelled out."""
        return choice_for(self.upscales[0]).model_dump(mode="json")

    def batch_model_parameters(self) -> dict[str, Any]:
        """``upscale-batch``'s model: the form's choice for one model, the list for several."""
        if len(self.upscales) == 1:
            return {"model": self.model_parameter()}
        return {"upscales": self.upscales_parameter()}


def asset_uploaded_trigger() -> DeploymentEventTrigger:
    """Start ``upscale-batch`` on every ``asset.uploaded`` event, on the location it names.

    A single ``{{ ... }}`` expression keeps the value's JSON type, so a payload location that is
    a list of files arrives as a list.
    """
    return DeploymentEventTrigger(
        name="upscale-on-asset-uploaded",
        description="Upscale the location named by an asset.uploaded event (payload.location).",
        expect={ASSET_UPLOADED},
        match={"prefect.resource.id": "asset.*"},
        parameters={"inputs": "{{ event.payload.location }}"},
    )


def batch_completed_trigger() -> DeploymentEventTrigger:
    """Start ``publish-upscaled`` on every finished batch, with the outputs the event names."""
    return DeploymentEventTrigger(
        name="publish-on-batch-completed",
        description="Publish the outputs named by a scenario.upscale.batch.completed event.",
        expect={BATCH_COMPLETED},
        match={"prefect.resource.id": "scenario.upscale.batch.*"},
        parameters={"outputs": "{{ event.payload.outputs }}"},
    )


def _deploy(flow: Flow[..., Any], **options: Any) -> RunnerDeployment:
    # to_deployment dispatches on its caller: from async code it would return a coroutine.
    options["_sync"] = True
    return cast(RunnerDeployment, flow.to_deployment(**options))


def build_deployments(settings: DeploymentSettings | None = None) -> list[RunnerDeployment]:
    """Every deployment of the project, configured by ``settings``, ready for ``serve``.

    Serve them with ``PREFECT_RESULTS_PERSIST_BY_DEFAULT=true`` (``deployments.serve`` sets it)
    so that ``run_deployment(...).state.aresult()`` hands a run's BatchReport to its caller
    (``asset-pipeline`` with ``upscale_deployment``).

    Example:
        >>> from prefect import serve
        >>> serve(*build_deployments(DeploymentSettings(source="s3://drop/", target="out/")))
    """
    s = settings or DeploymentSettings()
    target, upscales = s.target, s.upscales_parameter()
    common: dict[str, Any] = {"credentials_block": s.credentials_block}
    return [
        _deploy(
            upscale_batch,
            name=UPSCALE_ON_DEMAND.split("/")[1],
            description="Upscale files, folders, globs or URLs; run it from the UI.",
            parameters={"target": target, **s.batch_model_parameters(), **common},
            tags=TAGS,
        ),
        _deploy(
            upscale_image,
            name=IMAGE_ON_DEMAND.split("/")[1],
            description="Upscale one image; run it from the UI.",
            parameters={"target": target, "model": s.model_parameter(), **common},
            tags=TAGS,
        ),
        _deploy(
            upscale_batch,
            name="on-asset-uploaded",
            description="Started by asset.uploaded events: upscales payload.location.",
            parameters={"target": target, **s.batch_model_parameters(), **common},
            triggers=[asset_uploaded_trigger()],
            tags=TAGS,
        ),
        _deploy(
            upscale_new_assets,
            name="nightly",
            description="Upscale what is new in the source since the last successful run.",
            parameters={
                "source": s.source,
                "target": target,
                "upscales": upscales,
                **common,
            },
            schedules=[s.schedule()],
            # Runs do not pile up (the batch journal's lock would only make a second one wait):
            # a run that would start while the last one still works is cancelled, and the next
            # one catches up, since everything after the watermark is still new to it.
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            tags=TAGS,
        ),
        _deploy(
            publish_upscaled,
            name="on-batch-completed",
            description="Started by scenario.upscale.batch.completed: thumbnails of its outputs.",
            parameters={"destination": s.published},
            triggers=[batch_completed_trigger()],
            tags=TAGS,
        ),
        _deploy(
            asset_pipeline,
            name=PIPELINE_ON_DEMAND.split("/")[1],
            description="Ingest -> upscale -> publish, results handed from step to step.",
            parameters={
                "staging": s.staging,
                "target": target,
                "published": s.published,
                "upscales": upscales,
                **common,
            },
            tags=TAGS,
        ),
        _deploy(
            upscale_sharded,
            name=SHARDED_ON_DEMAND.split("/")[1],
            description="A large batch in shards, each a run of upscale-batch on any worker.",
            parameters={
                "target": target,
                "upscales": upscales,
                "shard_deployment": UPSCALE_ON_DEMAND,
                **common,
            },
            tags=TAGS,
        ),
    ]
