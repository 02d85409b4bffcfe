"""A batch of upscales without Prefect: ``run_batch``, and the names a batch is described with.

The steps and their order are ``pipeline.run_pipeline`` (shared with the Prefect flow); the
parts that do the work are assembled by ``session.BatchSession``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from scenario_upscale.api import ScenarioClient
from scenario_upscale.items import (
    BatchItem,
    BatchReport,
    ItemResult,
    ItemStatus,
    Plan,
    SubmittedItem,
    UpscaleSpec,
)
from scenario_upscale.pipeline import BatchOptions, PlainSteps, run_pipeline, shards
from scenario_upscale.planning import journal_key
from scenario_upscale.polling import PollPolicy
from scenario_upscale.progress import Progress
from scenario_upscale.session import BatchSession

__all__ = [
    "BatchItem",
    "BatchOptions",
    "BatchReport",
    "BatchSession",
    "ItemResult",
    "ItemStatus",
    "Plan",
    "Progress",
    "SubmittedItem",
    "UpscaleSpec",
    "journal_key",
    "run_batch",
    "shards",
]


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
    options = BatchOptions.checked(
        "run_batch",
        max_creative_units=max_creative_units,
        dry_run_pricing=dry_run_pricing,
        max_concurrency=max_concurrency,
        shard_size=shard_size,
    )
    async with BatchSession(
        client, target, max_concurrency=options.max_concurrency, poll=poll, on_progress=on_progress
    ) as session:
        return await run_pipeline(session, inputs, specs, options, PlainSteps())
