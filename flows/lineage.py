"""Prefect asset lineage for the outputs: each upscaled file is a materialized Prefect asset.

Prefect 3.9 records a materialization as an event (``prefect.asset.materialization.succeeded``)
whose asset key is the output's URI, with our metadata (source, model, job, size) attached, so
downstream automations and the UI's event feed see where every output came from. The open-source
3.9.1 UI has no asset pages: there a materialization is only an event, and the source is
metadata, not an upstream asset.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect.assets import Asset, AssetProperties, add_asset_metadata, materialize
from prefect.types.names import MAX_ASSET_KEY_LENGTH, RESTRICTED_ASSET_CHARACTERS

from flows.reporting import resource_id_for
from scenario_upscale.batch import ItemResult


def asset_key(location: str) -> str | None:
    """The asset key of an output, or ``None`` if Prefect cannot name it (a space, ``#``, ``%``…).

    Example:
        >>> asset_key("s3://bucket/hero@upscale-v3x4.png")
        's3://bucket/hero@upscale-v3x4.png'
        >>> asset_key("/tmp/my file.png") is None
        True
    """
    key = resource_id_for(location)
    if len(key) > MAX_ASSET_KEY_LENGTH or any(c in key for c in RESTRICTED_ASSET_CHARACTERS):
        return None
    return key


async def record_outputs(results: Sequence[ItemResult]) -> int:
    """Materialize the outputs of ``results`` as Prefect assets; returns how many were recorded."""
    outputs = {
        key: (result, location)
        for result in results
        for location in result.outputs
        if (key := asset_key(location)) is not None
    }
    if not outputs:
        return 0
    assets = [
        Asset(key=key, properties=AssetProperties(name=location.rsplit("/", 1)[-1]))
        for key, (_, location) in outputs.items()
    ]

    # The asset list differs per shard, so the materializing task is made per call.
    @materialize(*assets, by="scenario", name="record-outputs")
    async def upscaled_outputs() -> None:
        for key, (result, _) in outputs.items():
            add_asset_metadata(
                key,
                {
                    "source": result.source,
                    "model": result.model_id,
                    "job_id": result.job_id,
                    "width": result.output_width,
                    "height": result.output_height,
                    "creative_units": result.creative_units,
                },
            )

    await upscaled_outputs()
    return len(assets)
