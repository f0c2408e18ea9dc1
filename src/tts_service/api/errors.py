"""One place that turns domain errors into HTTP responses, and documents them (the shapes
themselves are `tts_service.error_dialect`'s)."""

from __future__ import annotations

import logging
from typing import Any, Final, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from tts_service.api.connection import CLIENT_CLOSED, ClientGone
from tts_service.error_dialect import (
    error_body,
    error_headers,
    native_error_body,
    openai_error_body,
    openai_status,
)
from tts_service.errors import ServiceError, ValidationFailed

log = logging.getLogger(__name__)


class ServiceErrorDetail(BaseModel):
    """What went wrong, in the native API's words."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable and machine-readable: voice_not_found, overloaded, ...")
    message: str = Field(description="One readable sentence.")
    param: str | None = Field(None, description="The request field at fault, where there is one.")


class ServiceErrorBody(BaseModel):
    """Every error of the native API: `{"error": {"code", "message", ...}}`."""

    error: ServiceErrorDetail


class OpenAIErrorDetail(BaseModel):
    message: str
    type: Literal["invalid_request_error", "authentication_error", "server_error"]
    param: str | None = Field(description="The request field at fault, by its OpenAI name.")
    code: str


class OpenAIErrorBody(BaseModel):
    """Every error under /v1/, in OpenAI's shape (its SDKs read `type` and `code`)."""

    error: OpenAIErrorDetail


RETRY_AFTER_HEADER: Final[dict[str, Any]] = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def documented_errors(
    model: type[BaseModel], descriptions: dict[int, str]
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with its error body, and Retry-After where the
    server sends one (429 and 503)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status, description in descriptions.items():
        responses[status] = {"model": model, "description": description}
        if status in (429, 503):
            responses[status]["headers"] = RETRY_AFTER_HEADER
    return responses


def native_error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(
        native_error_body(error), status_code=error.status, headers=error_headers(error)
    )


def openai_error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(
        openai_error_body(error), status_code=openai_status(error), headers=error_headers(error)
    )


def validation_message(errors: list[Any]) -> tuple[str, str | None]:
    """A readable sentence and the offending field from pydantic's error list."""
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    message = str(first.get("msg", "invalid request"))
    if (
        param
        and first.get("type") == "string_too_short"
        and first.get("ctx", {}).get("min_length") == 1
    ):
        return f"{param} must not be empty", param  # the service's words for blank text
    return (f"{param}: {message}" if param else message), param


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path: Starlette's 405 names only the first
    route's, and `/` has two (the page's GET, Piper's POST) from two routers."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, error: ServiceError) -> JSONResponse:
        return native_error_response(error)

    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, error: ClientGone) -> Response:
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(error.errors()))
        return native_error_response(ValidationFailed(message, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(
            {"error": {"code": code, "message": str(error.detail)}},
            status_code=error.status_code,
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        internal = ServiceError("internal server error")
        return JSONResponse(error_body(request.url.path, internal), status_code=500)
