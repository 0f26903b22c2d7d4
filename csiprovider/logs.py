"""Logging setup: one line per event, JSON for collectors or text for people.

Structured fields go in `extra={"fields": {...}}`; callers pass names, paths and
counts only — never secret contents or tokens.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time level msg key=value ...` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        fields = getattr(record, "fields", {})
        tail = "".join(f" {k}={_text(v)}" for k, v in fields.items())
        return f"{when} {record.levelname.lower():7} {record.getMessage()}{tail}"


def frames(exc: BaseException) -> list[str]:
    """Where a bug struck, as file:line:function (innermost last): enough to debug, and
    safe to log, unlike the exception's message or the frames' variables, which may hold
    secret values."""
    return [
        f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}"
        for f in traceback.extract_tb(exc.__traceback__)
    ][-20:]


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (" " in text or not text) else text


# Client libraries log request and response bodies at debug level (botocore prints secret
# values): they never go below WARNING, whatever --log-level says.
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "requests", "hvac", "grpc")


def configure(fmt: str = "text", level: str = "info") -> None:
    """Route the root logger to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
