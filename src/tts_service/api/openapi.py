"""The document at `/openapi.json`: what the routes declare, plus what the middlewares in
front of every route answer on their own (400 for a Host not served, 401 without a key when
keys are configured, 403 for a foreign browser origin, 413 for a body over the limit), so
each operation lists every status it can return, with its error body.

Every `$ref` resolves inside the document, as client generators need: the request bodies the
routes parse by hand (see `api.body.openapi_body`) are moved into `components/schemas`
together with the models they nest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from tts_service.api.auth import is_public
from tts_service.api.body import COMPONENT_REF
from tts_service.api.errors import OpenAIErrorBody, ServiceErrorBody
from tts_service.api.origin import SAFE_METHODS
from tts_service.api.speech_events import EVENT_MODELS

HTTP_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})
SECURITY_SCHEME: Final = "apiKey"
HOST_REFUSED: Final = "The Host header names a host this server does not answer for."
KEY_REFUSED: Final = "An API key is configured and the request has none, or a wrong one."
ORIGIN_REFUSED: Final = "A browser page from an origin that is not allowed sent the request."
BODY_REFUSED: Final = "The request body is over max_body_bytes."
VALIDATION_FAILED: Final = "A parameter has the wrong type or value."
DESCRIPTION: Final = (
    'Text to speech on Piper. Errors are JSON: `{"error": {"code", "message"}}` on the '
    'native routes, OpenAI\'s `{"error": {"message", "type", "param", "code"}}` under '
    "`/v1/`. Browsers may only make the server do work from its own page or an allowed origin."
)


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def ref(name: str) -> dict[str, str]:
    return {"$ref": COMPONENT_REF.format(model=name)}


def _put(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    if schemas.setdefault(name, schema) != schema:
        raise ValueError(f"two different schemas are named {name!r}")


def _add_model(schemas: dict[str, Any], model: type[BaseModel]) -> str:
    """Put a model (and what it nests) into the components unless FastAPI already did."""
    schema = model.model_json_schema(ref_template=COMPONENT_REF)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)
    return model.__name__


def hoist_request_bodies(spec: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Replace each inline body schema by a reference to a component of its title."""
    for _, _, operation in operations(spec):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            schema = media.get("schema", {})
            name = schema.get("title")
            if "$ref" in schema or not name:
                continue
            for nested, definition in schema.pop("$defs", {}).items():
                _put(schemas, nested, definition)
            _put(schemas, name, schema)
            media["schema"] = ref(name)


def add_response(operation: dict[str, Any], status: int, description: str, schema: str) -> None:
    """Document one more reason for `status`, or the status itself."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    entry = responses.get(str(status))
    if entry is None:
        responses[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": ref(schema)}},
        }
    elif description not in entry.get("description", ""):
        entry["description"] = f"{entry.get('description', '')} {description}".strip()


def add_gate_responses(path: str, method: str, operation: dict[str, Any]) -> None:
    """What the middlewares answer before the route runs (see `api/__init__.py`)."""
    shape = OpenAIErrorBody.__name__ if path.startswith("/v1/") else ServiceErrorBody.__name__
    add_response(operation, 400, HOST_REFUSED, shape)
    if not is_public(path, method.upper()):
        operation["security"] = [{}, {SECURITY_SCHEME: []}]  # {}: no key when none is set
        add_response(operation, 401, KEY_REFUSED, shape)
    if method.upper() not in SAFE_METHODS:
        add_response(operation, 403, ORIGIN_REFUSED, shape)
    if "requestBody" in operation:
        add_response(operation, 413, BODY_REFUSED, shape)


def replace_validation_response(path: str, operation: dict[str, Any]) -> None:
    """FastAPI documents its own 422 body; our handler answers the native error body. Under
    /v1/ none is possible: bodies are parsed by hand (a 400) and path parameters are text."""
    entry = operation.get("responses", {}).get("422")
    if entry is None or "HTTPValidationError" not in json.dumps(entry):
        return
    if path.startswith("/v1/"):
        del operation["responses"]["422"]
    else:
        operation["responses"]["422"] = {
            "description": VALIDATION_FAILED,
            "content": {"application/json": {"schema": ref(ServiceErrorBody.__name__)}},
        }


def drop_unreferenced(spec: dict[str, Any], names: tuple[str, ...]) -> None:
    schemas = spec["components"]["schemas"]
    for name in names:
        if name in schemas and json.dumps(COMPONENT_REF.format(model=name)) not in json.dumps(spec):
            del schemas[name]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes
    )
    components: dict[str, Any] = spec.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    hoist_request_bodies(spec, schemas)
    for model in (ServiceErrorBody, OpenAIErrorBody, *EVENT_MODELS):
        _add_model(schemas, model)
    for path, method, operation in operations(spec):
        add_gate_responses(path, method, operation)
        replace_validation_response(path, operation)
    drop_unreferenced(spec, ("HTTPValidationError", "ValidationError"))
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "Needed only where the server has keys (--api-key, TTS_API_KEY).",
        }
    }
    return spec


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi`'s document, built once, at `app.openapi_url`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    replace: Callable[[], dict[str, Any]] = openapi
    app.openapi = replace  # type: ignore[method-assign]
