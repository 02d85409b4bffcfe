"""Assets: base64 upload, read, bulk read, fresh download link (contract 3.1, 3.9, 3.10)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..deps import API_DEPENDENCIES, get_runtime, read_model, root_url
from ..errors import bad_request, not_found
from ..imaging import InvalidMedia, inspect_image
from ..render import asset_json, signed_asset_url
from ..runtime import Runtime
from ..store import AssetRecord

router = APIRouter(prefix="/v1", dependencies=API_DEPENDENCIES)

_MB = 1024 * 1024
# What targetFormat values mean for a stored image of a given MIME type (no conversion here).
_SAME_FORMAT = {
    "image/png": {"png"},
    "image/jpeg": {"jpeg", "jpg"},
    "image/webp": {"webp"},
    "image/gif": {"gif"},
    "image/tiff": {"tif", "tiff"},
    "image/avif": {"avif"},
    "video/mp4": {"mp4"},
    "video/quicktime": {"mov"},
    "video/webm": {"webm"},
}


class AssetUploadBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(min_length=1)
    image: str | None = None
    canvas: str | None = None
    thumbnail: str | None = None
    hide: bool = False
    parent_id: str | None = Field(default=None, alias="parentId")
    collection_ids: list[str] = Field(default_factory=list, alias="collectionIds")


class GetBulkBody(BaseModel):
    asset_ids: list[str] = Field(alias="assetIds")


class DownloadBody(BaseModel):
    target_format: str | None = Field(default=None, alias="targetFormat")


def decode_image_field(value: str) -> bytes:
    """Raw base64 (the docs) or a ``data:`` URL (Scenario's Blender plugin)."""
    payload = value.strip()
    if payload.startswith("data:"):
        header, sep, payload = payload.partition(",")
        if not sep or ";base64" not in header:
            raise bad_request("Field 'image' is a data URL without ';base64' encoded data")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request("Field 'image' is not valid base64") from exc


def _asset_json(request: Request, asset: AssetRecord, original_assets: bool) -> dict[str, Any]:
    runtime = get_runtime(request)
    return asset_json(
        asset, runtime.config, runtime.signer, root_url(request), original_assets=original_assets
    )


def find_asset(runtime: Runtime, asset_id: str) -> AssetRecord:
    asset = runtime.store.assets.get(asset_id)
    if asset is None:
        raise not_found(f"Asset {asset_id} not found")
    return asset


# ``?originalAssets=true``: the url serves the stored original even under ``transformed-urls``.
OriginalAssets = Annotated[bool, Query(alias="originalAssets")]


@router.post("/assets")
async def upload_asset(request: Request, original_assets: OriginalAssets = False) -> dict[str, Any]:
    runtime = get_runtime(request)
    body = await read_model(request, AssetUploadBody)
    if body.image is None:
        raise bad_request(
            "Field 'image' is required: the emulator accepts image uploads only (no canvas)"
        )
    data = decode_image_field(body.image)
    limit = runtime.config.max_base64_image_bytes
    if len(data) >= limit:
        raise bad_request(
            f"Image is {len(data) / _MB:.1f} MB; base64 uploads must be under {limit / _MB:g} MB."
            " Use the multipart upload (POST /v1/uploads) for larger files"
        )
    if not data:
        raise bad_request("Field 'image' is empty")
    try:
        info = await runtime.in_thread(inspect_image, data)
    except InvalidMedia as exc:
        raise bad_request(f"Field 'image' is not a valid image: {exc}") from exc
    if body.parent_id is not None and body.parent_id not in runtime.store.assets:
        raise bad_request(f"Field 'parentId': asset {body.parent_id} does not exist")
    asset = runtime.add_asset(
        data,
        info,
        name=body.name,
        source="uploaded",
        meta_type="uploaded",
        parent_id=body.parent_id,
        collection_ids=body.collection_ids,
        hidden=body.hide,
    )
    return {"asset": _asset_json(request, asset, original_assets)}


@router.post("/assets/get-bulk")
async def get_bulk(request: Request, original_assets: OriginalAssets = False) -> dict[str, Any]:
    runtime = get_runtime(request)
    body = await read_model(request, GetBulkBody)
    found = [runtime.store.assets[i] for i in body.asset_ids if i in runtime.store.assets]
    return {"assets": [_asset_json(request, asset, original_assets) for asset in found]}


@router.get("/assets/{assetId}")
async def get_asset(
    assetId: str, request: Request, original_assets: OriginalAssets = False
) -> dict[str, Any]:
    asset = find_asset(get_runtime(request), assetId)
    return {"asset": _asset_json(request, asset, original_assets)}


@router.post("/assets/{assetId}/download")
async def download_link(assetId: str, request: Request) -> dict[str, Any]:
    runtime = get_runtime(request)
    asset = find_asset(runtime, assetId)
    body = await read_model(request, DownloadBody)
    if body.target_format is not None:
        wanted = body.target_format.lower()
        if wanted not in _SAME_FORMAT.get(asset.mime_type, set()):
            # Real conversion is out of scope; the original is what clients should fetch.
            raise bad_request(
                f"Invalid target format '{body.target_format}': the emulator only serves the"
                f" original ({asset.mime_type}); omit targetFormat"
            )
    url = signed_asset_url(runtime.signer, root_url(request), asset.id, runtime.config.url_ttl_s)
    return {"url": url, "mimeType": asset.mime_type}
