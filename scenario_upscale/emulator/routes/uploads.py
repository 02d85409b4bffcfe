"""Multipart uploads: create with presigned part URLs, complete, poll (contract 3.2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..deps import API_DEPENDENCIES, get_runtime, read_model, root_url
from ..errors import bad_request, not_found
from ..ids import new_id
from ..profiles import is_dry_run
from ..render import upload_json
from ..runner import import_upload
from ..store import UploadPart, UploadRecord
from ..timeutil import now_iso, to_iso

router = APIRouter(prefix="/v1", dependencies=API_DEPENDENCIES)

UploadKind = Literal["3d", "asset", "audio", "avatar", "image", "model", "text", "video"]


class AssetOptions(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    collection_ids: list[str] | None = Field(default=None, alias="collectionIds")
    hide: bool | None = None
    parent_id: str | None = Field(default=None, alias="parentId")


class UploadCreateBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    file_name: str | None = Field(default=None, alias="fileName")
    content_type: str | None = Field(default=None, alias="contentType")
    kind: UploadKind | None = None
    parts: int | None = Field(default=None, ge=1, le=10000)
    file_size: int | None = Field(default=None, alias="fileSize", ge=0)
    asset_options: AssetOptions | None = Field(default=None, alias="assetOptions")
    url: str | None = None


class UploadActionBody(BaseModel):
    action: str


def s3_path(upload_id: str, part_number: int) -> str:
    return f"/_s3/{upload_id}/{part_number}"


@router.post("/uploads", response_model=None)
async def create_upload(
    request: Request, dry_run: str | None = Query(None, alias="dryRun")
) -> dict[str, Any] | JSONResponse:
    runtime = get_runtime(request)
    body = await read_model(request, UploadCreateBody)
    for field, value in (
        ("fileName", body.file_name),
        ("contentType", body.content_type),
        ("kind", body.kind),
        ("parts", body.parts),
    ):
        if value is None:
            raise bad_request(f"Field '{field}' is required for a multipart upload")
    assert body.file_name and body.content_type and body.kind and body.parts
    if is_dry_run(dry_run):
        return JSONResponse(
            {"creativeUnitsCost": 0, "creativeUnitsDiscount": 0},
            status_code=runtime.config.behaviour.dry_run_status,
        )
    stamp = now_iso()
    upload = UploadRecord(
        id=new_id("upload"),
        file_name=body.file_name,
        content_type=body.content_type,
        kind=body.kind,
        parts_count=body.parts,
        file_size=body.file_size,
        asset_options=(
            body.asset_options.model_dump(by_alias=True, exclude_none=True)
            if body.asset_options
            else {}
        ),
        created_at=stamp,
        updated_at=stamp,
    )
    root = root_url(request)
    for number in range(1, body.parts + 1):
        url, expires_ms = runtime.signer.sign(
            root, s3_path(upload.id, number), runtime.config.url_ttl_s
        )
        expires = to_iso(datetime.fromtimestamp(expires_ms / 1000, tz=UTC))
        upload.parts.append(UploadPart(number=number, url=url, expires=expires))
    runtime.store.uploads[upload.id] = upload
    runtime.store.upload_parts[upload.id] = {}
    runtime.stats.uploads_created += 1
    return {"upload": upload_json(upload, runtime.config)}


def find_upload(request: Request, upload_id: str) -> UploadRecord:
    upload = get_runtime(request).store.uploads.get(upload_id)
    if upload is None:
        raise not_found(f"Upload {upload_id} not found")
    return upload


@router.get("/uploads/{uploadId}")
async def get_upload(uploadId: str, request: Request) -> dict[str, Any]:
    upload = find_upload(request, uploadId)
    return {"upload": upload_json(upload, get_runtime(request).config)}


@router.post("/uploads/{uploadId}/action")
async def upload_action(uploadId: str, request: Request) -> dict[str, Any]:
    runtime = get_runtime(request)
    upload = find_upload(request, uploadId)
    body = await read_model(request, UploadActionBody)
    if body.action != "complete":
        raise bad_request(f"Invalid action '{body.action}': the only action is 'complete'")
    if upload.status != "pending":
        raise bad_request(f"Upload {upload.id} is already {upload.status}")
    upload.status = "validating"
    upload.updated_at = now_iso()
    runtime.spawn(import_upload(runtime, upload))
    return {"upload": upload_json(upload, runtime.config)}
