"""Server-side HTML: the Jinja2 templates beside this module, with autoescaping, and the filters
that turn protobuf values into what a page shows (states as words, times in UTC, durations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tunix_rt.dashboard.connections import Problems
from tunix_rt.v1 import run_pb2

TEMPLATES = Path(__file__).resolve().parent / "templates"

# The navigation bar: (path, label).
NAVIGATION = (
    ("/jobs", "Jobs"),
    ("/devices", "Devices"),
    ("/runs", "Runs"),
    ("/compare", "Compare"),
    ("/models", "Models"),
    ("/evaluations", "Evaluations"),
    ("/datasets", "Datasets"),
    ("/sweeps", "Sweeps"),
)


def state_name(value: int) -> str:
    """`RUN_STATE_RUNNING` → `running`."""
    return run_pb2.RunState.Name(value).removeprefix("RUN_STATE_").lower()


def enum_label(message: Message, field_name: str) -> str:
    """The enum field's value as words: `TRAINING_JOB_PHASE_EVALUATING_MODEL` → `evaluating
    model` (the prefix is the one of the enum's `*_UNSPECIFIED` value)."""
    enum = message.DESCRIPTOR.fields_by_name[field_name].enum_type
    if enum is None:
        raise TypeError(f"{field_name} is not an enum field")
    value = enum.values_by_number.get(getattr(message, field_name))
    if value is None:
        return str(getattr(message, field_name))
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix).lower().replace("_", " ")


def timestamp(value: timestamp_pb2.Timestamp) -> str:
    """A set Timestamp in UTC to the second; an unset one as a dash."""
    if not value.seconds and not value.nanos:
        return "—"
    return value.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(value: duration_pb2.Duration | float | None) -> str:
    """Seconds as `1 h 02 min`, `3 min 05 s` or `12 s`; unset as a dash."""
    seconds = value.ToTimedelta().total_seconds() if isinstance(value, Message) else value
    if not seconds:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def short_id(name: str) -> str:
    """`runs/abc` → `abc`; `models/m/versions/3` → `m/3`."""
    parts = name.split("/")
    if len(parts) == 4 and parts[2] == "versions":
        return f"{parts[1]}/{parts[3]}"
    return parts[-1] if parts else name


def number(value: float | int | None, digits: int = 4) -> str:
    """A metric value with `digits` significant digits; None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def as_dict(value: struct_pb2.Struct | Message) -> Any:
    """A Struct (config, provenance) as plain JSON data for display."""
    return json_format.MessageToDict(value)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        state=state_name,
        ts=timestamp,
        duration=duration,
        short=short_id,
        number=number,
        as_dict=as_dict,
    )
    environment.globals.update(navigation=NAVIGATION, enum_label=enum_label)
    return environment


ENVIRONMENT = _environment()


def render(
    request: Request,
    template: str,
    problems: Problems | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The page `template` with `context`, the banners of `problems` and the current path."""
    html = ENVIRONMENT.get_template(template).render(
        path=request.url.path,
        problems=problems.lines if problems else [],
        **context,
    )
    return HTMLResponse(html, status_code=status_code)
