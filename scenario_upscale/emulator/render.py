"""Turn internal records into the JSON shapes of the real API (SDK response models)."""

from __future__ import annotations

from typing import Any

from .config import EmulatorConfig
from .signing import UrlSigner
from .store import AssetRecord, JobRecord, UploadRecord
from .timeutil import to_iso

_IMAGE_EDIT_CAPABILITIES = [
    "DETECTION",
    "GENERATIVE_FILL",
    "PIXELATE",
    "PROMPT_EDITING",
    "REFINE",
    "REFRAME",
    "REMOVE_BACKGROUND",
    "SEGMENTATION",
    "UPSCALE",
    "UPSCALE_360",
    "VECTORIZATION",
]


def cdn_path(asset_id: str) -> str:
    return f"/_cdn/{asset_id}"


def transform_path(asset_id: str) -> str:
    """Where the transformed rendition is served (profile ``transformed-urls``)."""
    return f"/_cdn-transform/{asset_id}"


def signed_asset_url(signer: UrlSigner, root_url: str, asset_id: str, ttl_s: float) -> str:
    url, _ = signer.sign(root_url, cdn_path(asset_id), ttl_s)
    return url


def asset_json(
    asset: AssetRecord,
    config: EmulatorConfig,
    signer: UrlSigner,
    root_url: str,
    *,
    original_assets: bool = False,
) -> dict[str, Any]:
    """The API's asset; ``url`` serves a transformed rendition when the profile says so and
    ``?originalAssets=true`` was not asked for (``properties.size`` is always the original's)."""
    transformed = config.behaviour.transformed_urls and not original_assets
    path = transform_path(asset.id) if transformed else cdn_path(asset.id)
    url, _ = signer.sign(root_url, path, config.url_ttl_s)
    properties: dict[str, Any] = {"size": asset.size}
    metadata: dict[str, Any] = {
        "kind": asset.kind,
        "type": asset.meta_type,
        "name": asset.name,
        "size": asset.size,
    }
    if asset.width is not None and asset.height is not None:
        properties.update(width=asset.width, height=asset.height)
        metadata.update(width=asset.width, height=asset.height)
    video = {
        "duration": asset.duration,
        "frameRate": asset.frame_rate,
        "nbFrames": asset.nb_frames,
        "codecName": asset.codec_name,
        "bitrate": asset.bitrate,
    }
    properties.update({key: value for key, value in video.items() if value is not None})
    provenance = {
        "modelId": asset.model_id,
        "parentId": asset.parent_id,
        "rootParentId": asset.root_parent_id,
        "parentJobId": asset.parent_job_id,
    }
    metadata.update({key: value for key, value in provenance.items() if value is not None})
    body: dict[str, Any] = {
        "id": asset.id,
        "url": url,
        "mimeType": asset.mime_type,
        "kind": asset.kind,
        "source": asset.source,
        "status": "success",
        "metadata": metadata,
        "properties": properties,
        "ownerId": config.project_id,
        "authorId": config.author_id,
        "privacy": "private",
        "tags": [],
        "collectionIds": list(asset.collection_ids),
        "editCapabilities": _IMAGE_EDIT_CAPABILITIES if asset.kind == "image" else [],
        "isHidden": asset.hidden,
        "createdAt": asset.created_at,
        "updatedAt": asset.updated_at,
    }
    if asset.output_index is not None:
        body["outputIndex"] = asset.output_index
        metadata["outputIndex"] = asset.output_index
    return body


def job_json(job: JobRecord, config: EmulatorConfig) -> dict[str, Any]:
    metadata: dict[str, Any] = {"input": job.input, "assetIds": list(job.asset_ids)}
    if job.error is not None:
        metadata["error"] = job.error
    if job.hint is not None:
        metadata["hint"] = job.hint
    return {
        "jobId": job.job_id,
        "jobType": job.job_type,
        "status": job.status,
        "progress": round(job.progress, 4),
        "metadata": metadata,
        "statusHistory": [entry.model_dump() for entry in job.status_history],
        "ownerId": config.project_id,
        "authorId": config.author_id,
        "billing": {"cuCost": job.cu_cost, "cuDiscount": 0, "disableRefund": False},
        "createdAt": to_iso(job.created),
        "updatedAt": to_iso(job.updated),
    }


def upload_json(upload: UploadRecord, config: EmulatorConfig) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": upload.id,
        "status": upload.status,
        "source": "multipart",
        "kind": upload.kind,
        "fileName": upload.file_name,
        "originalFileName": upload.file_name,
        "contentType": upload.content_type,
        "partsCount": upload.parts_count,
        "parts": [part.model_dump() for part in upload.parts],
        "ownerId": config.project_id,
        "authorId": config.author_id,
        "createdAt": upload.created_at,
        "updatedAt": upload.updated_at,
    }
    if upload.file_size is not None:
        body["fileSize"] = upload.file_size
    if upload.asset_options:
        body["assetOptions"] = upload.asset_options
    if upload.entity_id is not None:
        body["entityId"] = upload.entity_id
    if upload.error_message is not None:
        body["errorMessage"] = upload.error_message
    return body


def cost_json(creative_units: float) -> dict[str, Any]:
    return {
        "creativeUnitsCost": creative_units,
        "creativeUnitsDiscount": 0,
        "costDetails": {"custom-generation": creative_units},
    }
