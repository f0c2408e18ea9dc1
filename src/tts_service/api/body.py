"""Read and validate a JSON body ourselves, so that malformed JSON is a 400 and a wrong
field is a 422, whatever the Content-Type header claims."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from tts_service.api.errors import validation_message
from tts_service.errors import MalformedJSON, ServiceError, ValidationFailed

Model = TypeVar("Model", bound=BaseModel)


def parse_json(raw: bytes | str) -> Any:
    try:
        data = json.loads(raw)
        # "\ud800" is valid JSON syntax but no character: a string holding it can't be
        # encoded again, so it would break every error message and log line that quotes it.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJSON("request body is not valid JSON: nested too deeply") from None
    return data


def validate(model: type[Model], data: Any, error: type[ServiceError] = ValidationFailed) -> Model:
    if not isinstance(data, dict):
        raise error("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param = validation_message(list(exc.errors()))
        raise error(message, param=param) from None


async def read_model(request: Request, model: type[Model]) -> Model:
    return validate(model, parse_json(await request.body()))


COMPONENT_REF = "#/components/schemas/{model}"


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """Document the body for OpenAPI although the route parses it by hand. Its references
    point into the document's components, where `api.openapi` moves its `$defs`."""
    schema = model.model_json_schema(ref_template=COMPONENT_REF)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
