"""Request-level helpers shared by the routers: runtime access, auth, JSON bodies, cursors."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from .errors import ApiError, bad_request
from .runtime import Runtime

M = TypeVar("M", bound=BaseModel)


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


def root_url(request: Request) -> str:
    """Scheme://host:port the client used, so signed URLs point back at this server."""
    return str(request.base_url).rstrip("/")


async def require_auth(request: Request) -> None:
    """HTTP Basic with the configured key/secret; the gateway answers 401 ``{"message"}``."""
    config = get_runtime(request).config
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise ApiError(401, "Unauthorized", key="message")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(401, "Unauthorized", key="message") from exc
    key, sep, secret = decoded.partition(":")
    # compare_digest on both parts so timing does not reveal which one was wrong.
    key_ok = secrets.compare_digest(key.encode(), config.api_key.encode())
    secret_ok = secrets.compare_digest(secret.encode(), config.secret_value().encode())
    if not (sep and key_ok and secret_ok):
        raise ApiError(401, "Unauthorized", key="message")


async def require_project(request: Request) -> None:
    """Profile ``strict-project``: ``?projectId=`` must name the emulator's project."""
    config = get_runtime(request).config
    if not config.behaviour.require_project_id:
        return
    project_id = request.query_params.get("projectId")
    if not project_id:
        raise ApiError(400, "projectId is required", key="error", bare=True)
    if project_id != config.project_id:
        raise ApiError(
            403,
            f"Project {project_id} not found or not accessible by this API key",
            key="error",
            bare=True,
        )


# What every /v1 router runs before its routes: the credentials, then the project.
API_DEPENDENCIES = [Depends(require_auth), Depends(require_project)]


async def read_json(request: Request) -> Any:
    raw = await request.body()
    limit = get_runtime(request).config.max_request_body_bytes
    if len(raw) > limit:
        raise ApiError(413, "Request Entity Too Large", key="message")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"Request body is not valid JSON: {exc}") from exc


async def read_model(request: Request, model: type[M]) -> M:
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise bad_request(f"Invalid field '{field}': {first['msg']}") from exc


def encode_cursor(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def decode_cursor(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError) as exc:
        raise bad_request("Invalid paginationToken") from exc
    if not isinstance(state, dict):
        raise bad_request("Invalid paginationToken")
    return state


def split_csv(*values: str | None) -> list[str]:
    items: list[str] = []
    for value in values:
        if value:
            items.extend(part.strip() for part in value.split(",") if part.strip())
    return items
