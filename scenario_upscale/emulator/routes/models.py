"""``GET /v1/models`` and ``GET /v1/models/{modelId}`` (contract 3.3, 3.4)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from ..catalog import MODELS, MODELS_BY_ID
from ..deps import API_DEPENDENCIES, decode_cursor, encode_cursor, split_csv
from ..errors import bad_request, not_found

router = APIRouter(prefix="/v1", dependencies=API_DEPENDENCIES)


@router.get("/models/{modelId}")
async def get_model(modelId: str) -> dict[str, Any]:
    spec = MODELS_BY_ID.get(modelId)
    if spec is None:
        raise not_found(f"Model {modelId} not found")
    return {"model": spec.to_api()}


@router.get("/models")
async def list_models(
    privacy: str = "private",
    page_size: int = Query(100, alias="pageSize"),
    pagination_token: str | None = Query(None, alias="paginationToken"),
    tags: str | None = None,
    type_: str | None = Query(None, alias="type"),
    types: str | None = None,
) -> dict[str, Any]:
    if privacy not in ("private", "public"):
        raise bad_request("Invalid parameter 'privacy': must be 'private' or 'public'")
    if not 1 <= page_size <= 500:
        raise bad_request("Invalid parameter 'pageSize': must be between 1 and 500")
    # The upscalers are public platform models; the emulated team owns no private model.
    models = list(MODELS) if privacy == "public" else []
    wanted_tags = set(split_csv(tags))
    if wanted_tags:
        models = [m for m in models if wanted_tags & set(m.tags)]
    wanted_types = set(split_csv(type_, types))
    if wanted_types and "custom" not in wanted_types:
        models = []
    offset = int(decode_cursor(pagination_token).get("offset", 0)) if pagination_token else 0
    page = models[offset : offset + page_size]
    body: dict[str, Any] = {"models": [m.to_api() for m in page]}
    if offset + page_size < len(models):
        body["nextPaginationToken"] = encode_cursor({"offset": offset + page_size})
    return body
