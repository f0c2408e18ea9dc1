"""Log formatting: JSON lines carry the request id and structured fields; text stays text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tts_service.logs import JsonFormatter, request_id_var, setup_logging


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_fields_request_id_and_exceptions(root_restored: None) -> None:
    stream = io.StringIO()
    setup_logging("info", json_lines=True, stream=stream)
    log = logging.getLogger("tts_service.test")
    token = request_id_var.set("req-1")
    try:
        log.info("done %s", "now", extra={"fields": {"status": 200, "voice": "v"}})
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            log.exception("failed")
    finally:
        request_id_var.reset(token)
    log.info("outside", extra={"custom": object()})
    log.debug("filtered out by level")

    entries = [json.loads(line) for line in lines(stream)]
    assert len(entries) == 3  # one line each, even the traceback
    first, second, third = entries
    assert first["message"] == "done now" and first["level"] == "INFO"
    assert first["logger"] == "tts_service.test"
    assert first["request_id"] == "req-1"
    assert (first["status"], first["voice"]) == (200, "v")
    assert first["time"].endswith("+00:00")
    assert second["request_id"] == "req-1" and "ValueError: bad" in second["exception"]
    assert "request_id" not in third and third["custom"].startswith("<object")


def test_text_format_and_setup_replaces_handlers(root_restored: None) -> None:
    stream = io.StringIO()
    setup_logging("warning", stream=stream)
    setup_logging("warning", stream=stream)  # twice: still one handler, no duplicate lines
    logging.getLogger("x").warning("careful")
    logging.getLogger("x").info("quiet")
    (line,) = lines(stream)
    assert line.endswith("WARNING x: careful")
    assert len(logging.getLogger().handlers) == 1


def test_trace_level_is_understood(root_restored: None) -> None:
    setup_logging("trace", stream=io.StringIO())
    assert logging.getLogger().level == 5


def test_formatter_alone_serializes_anything() -> None:
    record = logging.LogRecord("n", logging.ERROR, __file__, 1, "m", None, None)
    record.fields = {"path": "/a\nb", "obj": {1, 2}}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["path"] == "/a\nb" and entry["level"] == "ERROR"


def test_api_keys_in_logged_urls_are_redacted(root_restored: None) -> None:
    stream = io.StringIO()
    setup_logging("info", stream=stream)
    log = logging.getLogger("uvicorn.error")
    log.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", "/s/stream?api_key=sekrit-1&x=2")
    log.info("GET /s?API%5FKEY=sekrit-2")
    log.info('"WebSocket /v1/text-to-speech/v/stream-input?a=1&xi-api-key=sekrit-3" [accepted]')
    log.info("my_api_key=visible is not a query parameter")
    text = stream.getvalue()
    assert "sekrit" not in text
    assert text.count("[redacted]") == 3 and "&x=2" in text
    assert "my_api_key=visible" in text
