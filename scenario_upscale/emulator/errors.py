"""Error responses in the shapes seen from the real API.

400/404/429 carry ``{"reason": ...}`` (third-party captures), 401/403/5xx from the gateway carry
``{"message": ...}``. Every error body has a ``traceId`` so clients can test that they surface it,
except the ``bare`` ones some profiles specify as exactly ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .ids import new_id


class ApiError(Exception):
    """Raised by handlers; rendered as a JSON error body."""

    def __init__(
        self,
        status_code: int,
        text: str,
        *,
        key: str = "reason",
        extra: dict[str, Any] | None = None,
        bare: bool = False,
    ) -> None:
        super().__init__(text)
        self.status_code = status_code
        self.text = text
        self.key = key
        self.extra = extra or {}
        self.bare = bare


def bad_request(text: str) -> ApiError:
    return ApiError(400, text)


def not_found(text: str) -> ApiError:
    return ApiError(404, text)


def error_body(key: str, text: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {key: text}
    body.update(extra or {})
    body["traceId"] = new_id("trace", 16)
    return body


def error_response(
    status_code: int,
    text: str,
    *,
    key: str = "reason",
    extra: dict[str, Any] | None = None,
    bare: bool = False,
) -> JSONResponse:
    """The JSON error; ``bare`` keeps the body to ``{key: text}`` (trace id in the header only)."""
    body = error_body(key, text, extra)
    trace_id = body["traceId"]
    if bare:
        body = {key: text}
    return JSONResponse(body, status_code=status_code, headers={"x-trace-id": trace_id})


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(
            exc.status_code, exc.text, key=exc.key, extra=exc.extra, bare=exc.bare
        )

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        # Unknown routes look like API Gateway's answer, not FastAPI's {"detail": ...}.
        return error_response(exc.status_code, str(exc.detail), key="message")

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(
            str(part) for part in first.get("loc", ()) if part not in ("query", "body")
        )
        return error_response(400, f"Invalid parameter '{field}': {first.get('msg')}")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
