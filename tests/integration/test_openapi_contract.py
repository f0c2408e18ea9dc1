"""The OpenAPI document as a contract, checked against a running server.

The document is valid OpenAPI 3.1 and every `$ref` in it resolves. Each status the tests can
provoke on a route is documented for that route, and each JSON answer validates against the
schema documented for its status. Request bodies are derived from the document itself: every
schema-valid value of a field is accepted, every schema-invalid one (wrong type, out of
range, empty text, unknown field where none is allowed) refused with a documented 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from audiocheck import sentences
from conftest import ServerProcess

Spec = dict[str, Any]
# Candidate values of every JSON type: those a field's schema refuses are its wrong types.
ANY_TYPE: list[Any] = [[1], {"unexpected": 1}, True, "word", 7, 1.5, None]
# Valid, but whether the server takes them depends on what is installed: not generated.
STATEFUL_FIELDS = {"voice", "speaker"}
BASE_BODIES = {
    "/synthesize/binary": {"text": "Hi."},
    "/synthesize": {"text": "Hi."},
    "/v1/audio/speech": {"input": "Hi."},
    "/v1/audio/captioned_speech": {"input": "Hi."},
}
JSON = {"Content-Type": "application/json"}
BODY_ROUTES = {p: p for p in BASE_BODIES}


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def spec(http: httpx.Client) -> Spec:
    document: Spec = http.get("/openapi.json").json()
    return document


# ---------------------------------------------------------------------------- helpers


def pointer(spec: Spec, ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: not a reference inside the document"
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def is_valid(spec: Spec, schema: dict[str, Any], value: Any) -> bool:
    """JSON Schema 2020-12, with the document's components in reach of `#/components/...`."""
    rooted = {**schema, "components": spec["components"]}
    return jsonschema.Draft202012Validator(rooted).is_valid(value)


def check(spec: Spec, response: httpx.Response, method: str, route: str) -> None:
    """The answer's status is documented for the route, and its JSON body matches."""
    operation = spec["paths"][route][method.lower()]
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method} {route} answered {status}, not documented"
    content = documented[status].get("content", {})
    media = response.headers.get("content-type", "").split(";")[0]
    assert any(key.split(";")[0] == media for key in content), (
        f"{method} {route} {status}: {media} not documented"
    )
    if media == "application/json":
        schema = content["application/json"]["schema"]
        body = response.json()
        assert is_valid(spec, schema, body), f"{method} {route} {status}: {body} breaks {schema}"
    for header, about in documented[status].get("headers", {}).items():
        if about.get("required"):
            assert header.lower() in response.headers, f"{method} {route} {status}: no {header}"


def body_schema(spec: Spec, route: str) -> dict[str, Any]:
    media = spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]
    schema: dict[str, Any] = pointer(spec, media["schema"]["$ref"])
    return schema


def number_samples(schema: dict[str, Any], valid: bool) -> list[float]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is None or high is None:
        return [1] if valid else []
    step = (high - low) / 100
    if valid:
        return [
            low if "minimum" in schema else low + step,
            high if "maximum" in schema else high - step,
        ]
    return [
        low - step if "minimum" in schema else low,
        high + step if "maximum" in schema else high,
    ]


def valid_samples(schema: dict[str, Any]) -> list[Any]:
    """Values the schema accepts: every enum value, the ends of every range."""
    if "enum" in schema:
        return list(schema["enum"])
    if "anyOf" in schema:
        return [value for branch in schema["anyOf"] for value in valid_samples(branch)]
    kind = schema.get("type")
    if kind == "null":
        return [None]
    if kind == "boolean":
        return [True, False]
    if kind in ("number", "integer"):
        return number_samples(schema, valid=True)
    if kind == "string":
        return ["x" * max(1, schema.get("minLength", 1))]
    return []  # a nested object: left to the hand-written cases


def invalid_samples(spec: Spec, schema: dict[str, Any]) -> list[Any]:
    """Values the schema refuses: wrong types, out of range, too short."""
    values = [value for value in ANY_TYPE if not is_valid(spec, schema, value)]
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") in ("number", "integer"):
            values += number_samples(branch, valid=False)
        if branch.get("type") == "string" and branch.get("minLength", 0) > 0:
            values.append("")
    return [value for value in values if not is_valid(spec, schema, value)]


def fields(spec: Spec, route: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from body_schema(spec, route)["properties"].items()


# ---------------------------------------------------------------------- the document


def test_the_document_is_valid_openapi_and_every_ref_resolves(spec: Spec) -> None:
    validate_spec(spec)
    refs = set(references(spec))
    assert refs, "no references at all: the bodies are inline again"
    for ref in refs:
        pointer(spec, ref)
    assert "$defs" not in json.dumps(spec)


def test_body_constraints_are_in_the_schema(spec: Spec) -> None:
    native = body_schema(spec, "/synthesize")
    assert native["additionalProperties"] is False
    assert native["properties"]["text"]["minLength"] == 1
    assert "non-blank" in native["properties"]["text"]["description"]
    speech = body_schema(spec, "/v1/audio/speech")
    assert speech["properties"]["input"]["minLength"] == 1
    assert "tts-1" in speech["properties"]["model"]["enum"]


def test_every_route_documents_its_refusals(spec: Spec) -> None:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "400" in responses, f"{method} {path}: the Host refusal"
            if method == "post":
                assert {"403", "413", "503"} <= set(responses), f"{method} {path}"
                assert "Retry-After" in responses["503"]["headers"]
            shape = "OpenAIErrorBody" if path.startswith("/v1/") else "ServiceErrorBody"
            for status, response in responses.items():
                if status.startswith(("4", "5")) and (path, status) != ("/health", "503"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": f"#/components/schemas/{shape}"}, (path, status)


# ------------------------------------------------------------------- provoked answers


def test_every_get_route_answers_as_documented(http: httpx.Client, spec: Spec) -> None:
    for route in spec["paths"]:
        if "get" not in spec["paths"][route]:
            continue
        path = route.replace("{model_id}", "tts-1")
        ok = http.get(path)
        assert ok.status_code == 200, route
        check(spec, ok, "GET", route)
        rebound = http.get(path, headers={"Host": "rebound.example"})
        check(spec, rebound, "GET", route)
    missing = http.get("/v1/models/nope")
    assert missing.status_code == 404
    check(spec, missing, "GET", "/v1/models/{model_id}")


def test_post_refusals_are_documented(http: httpx.Client, spec: Spec) -> None:
    for route, base_route in BODY_ROUTES.items():
        text_field = "input" if route.startswith("/v1/") else "text"
        cases: list[tuple[dict[str, Any], int]] = [
            ({"content": b"{not json"}, 400),
            ({"json": BASE_BODIES[base_route], "headers": {"Host": "evil.example"}}, 400),
            ({"json": BASE_BODIES[base_route], "headers": {"Origin": "https://evil.example"}}, 403),
            ({"json": {text_field: "word " * 4001}}, 413),
            ({"content": b" " * 1_000_001}, 413),
            ({"json": {text_field: "   "}}, 400 if route.startswith("/v1/") else 422),
            ({"json": {text_field: "Hi.", "speaker": "nobody"}}, 400),
        ]
        if route.startswith("/v1/"):
            cases.append(({"json": {"input": "Hi.", "voice": "nope"}}, 400))
        else:
            cases.append(({"json": {"text": "Hi.", "voice": "nope"}}, 404))
        for kwargs, status in cases:
            response = http.post(route, **kwargs)
            assert response.status_code == status, (route, kwargs.get("json"), response.text)
            check(spec, response, "POST", route)
    answer = http.post("/synthesize", json={"text": "Hi."})
    assert answer.status_code == 200
    check(spec, answer, "POST", "/synthesize")


@pytest.mark.parametrize("route", list(BASE_BODIES))
def test_schema_valid_bodies_are_accepted(http: httpx.Client, spec: Spec, route: str) -> None:
    schema = body_schema(spec, route)
    tried = 0
    for name, field in fields(spec, route):
        if name in STATEFUL_FIELDS:
            continue
        for value in valid_samples(field):
            body = {**BASE_BODIES[route], name: value}
            assert is_valid(spec, schema, body), body
            response = http.post(route, json=body)
            assert response.status_code == 200, (body, response.text)
            check(spec, response, "POST", route)
            tried += 1
    assert tried >= 20  # the generator found the fields' values


@pytest.mark.parametrize("route", list(BODY_ROUTES))
def test_schema_invalid_bodies_are_refused(http: httpx.Client, spec: Spec, route: str) -> None:
    base = BASE_BODIES[BODY_ROUTES[route]]
    schema = body_schema(spec, route)
    bodies = [
        {**base, name: value}
        for name, field in fields(spec, route)
        for value in invalid_samples(spec, field)
    ]
    if schema.get("additionalProperties") is False:
        bodies.append({**base, "unexpected": 1})
    bodies += [[base], "Hi.", None, {}]  # not an object; no text at all
    for body in bodies:
        assert not is_valid(spec, schema, body), body
        response = http.post(route, content=json.dumps(body), headers=JSON)
        assert 400 <= response.status_code < 500, (body, response.status_code)
        check(spec, response, "POST", route)
    assert len(bodies) >= 30


def test_busy_and_keyed_server_answers_as_documented(
    start_server: type[ServerProcess], spec: Spec
) -> None:
    """One worker, no queue: while a stream holds the worker, the next request is a 503 with
    Retry-After; without the key every protected route is a 401."""
    key = "contract-key-1"
    srv = start_server("--workers", "1", "--max-queued-requests", "0", "--api-key", key)
    auth = {"Authorization": f"Bearer {key}"}
    # More audio than the sockets can buffer: unread, the stream holds its slot until closed.
    long_text = {"text": sentences(300), "stream": True}
    with httpx.Client(base_url=srv.base_url, timeout=60) as client:
        for route in ("/voices", "/v1/models"):
            refused = client.get(route)
            assert refused.status_code == 401
            check(spec, refused, "GET", route)
        with client.stream("POST", "/synthesize/binary", json=long_text, headers=auth) as held:
            assert held.status_code == 200
            chunks = held.iter_bytes()  # kept: dropping the iterator would close the stream
            next(chunks)  # synthesis has begun: the only slot is taken
            for route, base_route in BODY_ROUTES.items():
                unkeyed = client.post(route, json=BASE_BODIES[base_route])
                assert unkeyed.status_code == 401
                check(spec, unkeyed, "POST", route)
                busy = client.post(route, json=BASE_BODIES[base_route], headers=auth)
                assert busy.status_code == 503, busy.text
                assert int(busy.headers["retry-after"]) >= 1
                check(spec, busy, "POST", route)
