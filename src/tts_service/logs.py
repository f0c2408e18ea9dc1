"""Logging set-up: plain text for people, or JSON lines (`--log-json`) for log shippers.

Every record logged while a request is being handled carries that request's id (set by
the access-log middleware in a context variable), so one `grep` finds all its lines.
Structured fields travel in `extra={"fields": {...}}` and become top-level JSON keys.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

QUERY_KEY_PATTERN = re.compile(
    r"((?:^|[?&\s])(?:api(?:_|%5f)key|xi(?:-|%2d)api(?:-|%2d)key)=)[^&\s\"']*", re.IGNORECASE
)
TRACE = 5  # uvicorn's extra level below DEBUG
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else was passed in `extra`.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured duplicate of the message
    "fields",
    "request_id",
}


class RequestIdFilter(logging.Filter):
    """Stamp the current request's id (if any) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class RedactKeysFilter(logging.Filter):
    """uvicorn logs a WebSocket's path with its query string, where a browser puts its API
    key (`?api_key=`, ElevenLabs clients' `?xi-api-key=`): blank such values out of every
    record, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if QUERY_KEY_PATTERN.search(message):
            record.msg = QUERY_KEY_PATTERN.sub(r"\1[redacted]", message)
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        entry.update((key, value) for key, value in vars(record).items() if key not in _RESERVED)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(
    level: str = "info",
    json_lines: bool = False,
    stream: TextIO | None = None,
    logger: str = "",
) -> None:
    """Configure the root logger once; uvicorn's loggers propagate to it (see server.py).

    `logger` names another logger to configure instead (a Ray Serve replica configures
    only `tts_service`, leaving the root to Ray); that one stops propagating."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactKeysFilter())
    target = logging.getLogger(logger or None)
    for old in list(target.handlers):
        target.removeHandler(old)
    target.addHandler(handler)
    target.setLevel(TRACE if level.lower() == "trace" else level.upper())
    if logger:
        target.propagate = False
        return
    # uvicorn's loggers reach the root only if nothing (an earlier dictConfig, a library
    # such as Ray) has given them handlers, levels or propagate=False of their own.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        for old in list(uvicorn_logger.handlers):
            uvicorn_logger.removeHandler(old)
        uvicorn_logger.setLevel(logging.NOTSET)
        uvicorn_logger.propagate = True
