"""One place that turns domain errors into HTTP responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tts_service.errors import (
    Overloaded,
    ServiceError,
    ShuttingDown,
    TooManyClientRequests,
    ValidationFailed,
)

log = logging.getLogger(__name__)


def error_headers(error: ServiceError) -> dict[str, str]:
    if isinstance(error, Overloaded | ShuttingDown | TooManyClientRequests):
        return {"Retry-After": str(error.retry_after)}
    return {}


def native_error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(
        {"error": error.to_dict()}, status_code=error.status, headers=error_headers(error)
    )


def validation_message(errors: list[Any]) -> tuple[str, str | None]:
    """A readable sentence and the offending field from pydantic's error list."""
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    message = str(first.get("msg", "invalid request"))
    return (f"{param}: {message}" if param else message), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, error: ServiceError) -> JSONResponse:
        return native_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(error.errors()))
        return native_error_response(ValidationFailed(message, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(
            {"error": {"code": code, "message": str(error.detail)}},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": {"code": "internal_error", "message": "internal server error"}},
            status_code=500,
        )
