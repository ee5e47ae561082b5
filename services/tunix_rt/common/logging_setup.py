"""Structured logs for tunix-rt servers: one JSON object per line (or readable text), with the
request id of the RPC being served attached to every record logged while serving it.

A record's `extra={...}` fields become top-level keys::

    log.info("rpc", extra={"method": "/tunix_rt.v1.RegistryService/GetTrace", "code": "OK"})
    {"ts": "2025-01-31T12:00:00.123+00:00", "level": "INFO", "logger": "tunix_rt.rpc",
     "msg": "rpc", "request_id": "3f2a…", "method": "/tunix_rt.v1.RegistryService/GetTrace",
     "code": "OK"}
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

from tunix_rt.common.config import LogFormat

# The id of the RPC the current task is serving. A ContextVar, not a global: grpc.aio runs each
# RPC in its own task, which gets its own copy of the context, so ids never bleed between calls.
_REQUEST_ID: ContextVar[str | None] = ContextVar("tunix_rt_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def current_request_id() -> str | None:
    """The request id of the RPC being served by this task, or None outside an RPC."""
    return _REQUEST_ID.get()


def set_request_id(request_id: str | None) -> Token[str | None]:
    """Attach `request_id` to every record logged from this context; returns a reset token."""
    return _REQUEST_ID.set(request_id)


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    request_id = current_request_id()
    if request_id is not None:
        fields["request_id"] = request_id
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd extra value (a Path, an enum) must not turn a log call into a crash.
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger> <msg> key=value ...` plus any traceback, for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [ts, f"{record.levelname:<7}", record.name, record.getMessage()]
        parts.extend(f"{key}={value}" for key, value in _extra_fields(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class _TunixHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler configure_logging installed, so a second call replaces only it."""


def configure_logging(
    log_format: LogFormat = "json", level: str = "INFO", *, stream: TextIO | None = None
) -> None:
    """Send all logs to `stream` (default stderr) in `log_format` at `level`.

    Meant for a process entry point (`server.run`); idempotent. Handlers others installed (pytest's
    log capture, for one) are left alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _TunixHandler):
            root.removeHandler(handler)
            handler.close()
    handler = _TunixHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
