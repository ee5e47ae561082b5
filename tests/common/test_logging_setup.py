"""Structured log lines: JSON with the standard fields, extras and the request id; text too."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tunix_rt.common.config import LogFormat
from tunix_rt.common.logging_setup import configure_logging, set_request_id


@pytest.fixture
def logs() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    yield stream, logging.getLogger("tunix_rt.test")
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def emit(logs: tuple[io.StringIO, logging.Logger], log_format: LogFormat) -> str:
    stream, logger = logs
    configure_logging(log_format, "INFO", stream=stream)
    set_request_id("req-7")
    try:
        logger.info("rpc %s", "done", extra={"method": "/a.B/C", "code": "OK", "duration_ms": 1.5})
        logger.debug("hidden below INFO")
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("failed")
    finally:
        set_request_id(None)
    return stream.getvalue()


def test_json_lines(logs: tuple[io.StringIO, logging.Logger]) -> None:
    first, second = (json.loads(line) for line in emit(logs, "json").splitlines())
    assert list(first)[:4] == ["ts", "level", "logger", "msg"]
    assert first["ts"].endswith("+00:00")
    assert first["level"] == "INFO"
    assert first["logger"] == "tunix_rt.test"
    assert first["msg"] == "rpc done"
    assert first["request_id"] == "req-7"
    assert (first["method"], first["code"], first["duration_ms"]) == ("/a.B/C", "OK", 1.5)
    assert second["level"] == "ERROR"
    assert "ValueError: bad" in second["exc"]
    assert "Traceback" in second["exc"]


def test_text_lines(logs: tuple[io.StringIO, logging.Logger]) -> None:
    text = emit(logs, "text")
    first_line = text.splitlines()[0]
    assert "INFO" in first_line
    assert "tunix_rt.test rpc done" in first_line
    assert "request_id=req-7 method=/a.B/C code=OK duration_ms=1.5" in first_line
    assert "hidden" not in text
    assert "ValueError: bad" in text


def test_configure_twice_keeps_one_handler(logs: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = logs
    configure_logging("json", "INFO", stream=stream)
    configure_logging("json", "INFO", stream=stream)
    logger.warning("once")
    assert stream.getvalue().count('"once"') == 1
