"""The fake CDN and S3: signed-URL routes outside ``/v1`` that need (and ignore) no auth."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..deps import get_runtime
from ..errors import error_response
from ..render import cdn_path, transform_path
from .uploads import s3_path

router = APIRouter()


@router.api_route("/_cdn/{assetId}", methods=["GET", "HEAD"])
async def download(assetId: str, request: Request) -> Response:
    return await _serve(request, assetId, transformed=False)


@router.api_route("/_cdn-transform/{assetId}", methods=["GET", "HEAD"])
async def download_transformed(assetId: str, request: Request) -> Response:
    """Profile ``transformed-urls``: a rendition whose length differs from ``properties.size``."""
    return await _serve(request, assetId, transformed=True)


async def _serve(request: Request, asset_id: str, *, transformed: bool) -> Response:
    runtime = get_runtime(request)
    query = request.query_params
    path = transform_path(asset_id) if transformed else cdn_path(asset_id)
    problem = runtime.signer.check(path, query.get("expires"), query.get("sig"))
    if problem is not None:
        # CloudFront/S3 answer 403 for both bad and expired signatures.
        return error_response(403, f"Access denied: {problem}", key="message")
    asset = runtime.store.assets.get(asset_id)
    data = runtime.store.blobs.get(asset_id)
    if asset is None or data is None:
        return error_response(404, "Not Found", key="message")
    if runtime.take("fail_next_n_downloads"):
        runtime.stats.faults["download_5xx"] += 1
        return error_response(503, "Service Unavailable", key="message")
    digest = asset.sha256
    if transformed:
        data = await runtime.rendition(asset)
        digest = hashlib.sha256(data).hexdigest()
    if request.method == "GET" and runtime.take("truncate_next_n_downloads"):
        # The middleware sends half the body then resets the connection (the CDN has been
        # seen closing large transfers mid-stream).
        request.scope["emulator.truncate"] = True
        runtime.stats.faults["download_truncated"] += 1
    runtime.stats.cdn_downloads += 1
    return Response(
        content=b"" if request.method == "HEAD" else data,
        media_type=asset.mime_type,
        headers={
            # The length of what is sent: the rendition's under transformed-urls.
            "content-length": str(len(data)),
            "etag": f'"{digest[:32]}"',
            "cache-control": "private, max-age=0",
        },
    )


@router.put("/_s3/{uploadId}/{partNumber}")
async def put_part(uploadId: str, partNumber: int, request: Request) -> Response:
    runtime = get_runtime(request)
    query = request.query_params
    problem = runtime.signer.check(
        s3_path(uploadId, partNumber), query.get("expires"), query.get("sig")
    )
    if problem is not None:
        return error_response(403, f"Access denied: {problem}", key="message")
    upload = runtime.store.uploads.get(uploadId)
    parts = runtime.store.upload_parts.get(uploadId)
    if upload is None or parts is None:
        return error_response(404, "NoSuchUpload", key="message")
    if upload.status != "pending":
        return error_response(400, f"Upload is already {upload.status}", key="message")
    if not 1 <= partNumber <= upload.parts_count:
        return error_response(400, f"Invalid part number {partNumber}", key="message")
    data = await request.body()
    parts[partNumber] = data
    return Response(status_code=200, headers={"etag": f'"{hashlib.md5(data).hexdigest()}"'})
