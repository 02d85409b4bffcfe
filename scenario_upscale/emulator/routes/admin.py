"""Emulator control routes (no auth: local tooling): stats, config patching, reset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from ..deps import get_runtime, read_json
from ..errors import bad_request

router = APIRouter(prefix="/_emulator")


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    return get_runtime(request).snapshot_stats().model_dump(mode="json")


@router.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    return get_runtime(request).config.public_dump()


@router.put("/config")
async def put_config(request: Request) -> dict[str, Any]:
    changes = await read_json(request)
    if not isinstance(changes, dict):
        raise bad_request("Body must be a JSON object of config fields to change")
    try:
        config = get_runtime(request).configure(changes)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise bad_request(f"Invalid config field '{field}': {first['msg']}") from exc
    return config.public_dump()


@router.post("/reset")
async def reset(request: Request) -> dict[str, str]:
    get_runtime(request).reset()
    return {"status": "reset"}
