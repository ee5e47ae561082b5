"""How the CLI prints: aligned tables and key/value blocks for people, JSON for programs.

JSON output uses the protobuf JSON mapping with the proto field names (`final_answer`, not
`finalAnswer`), so it reads like the JSONL traces users import. Note that the mapping prints int64
fields as strings, as grpcurl does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)
F = TypeVar("F", bound=Callable[..., Any])

# The `--json` flag of every command that prints a resource.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def items_option(default: int) -> Callable[[F], F]:
    """The `--items N` option of a `show` command that lists a resource's first items."""
    return click.option(
        "--items",
        type=click.IntRange(min=0),
        default=default,
        show_default=True,
        help="Items to list.",
    )


# Cells wider than this are cut with an ellipsis so a table stays one line per row.
MAX_CELL_CHARS = 60


def to_dict(message: Message) -> dict[str, Any]:
    """The message as JSON-ready data, proto field names kept, zero values included (a step's
    `i` of 0 is data, not an absent field)."""
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return data


def plain_json(value: Any) -> Any:
    """`value` with integral floats as ints, recursively: `google.protobuf.Struct` holds every
    number as a double, so `{"seed": 42}` would otherwise come back as `{"seed": 42.0}`."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    return value


def echo_json(value: Message | Iterable[Message] | Mapping[str, Any]) -> None:
    """Prints one message, a list of messages (as a JSON array) or plain data, indented."""
    if isinstance(value, Message):
        data: Any = to_dict(value)
    elif isinstance(value, Mapping):
        data = dict(value)
    else:
        data = [to_dict(m) for m in value]
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def shorten(text: str, width: int = MAX_CELL_CHARS) -> str:
    """One line of at most `width` chars."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_time(stamp: timestamp_pb2.Timestamp) -> str:
    """UTC time to the second, or `-` when unset."""
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")


def format_number(value: float) -> str:
    return f"{value:.4g}"


def format_metrics(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={format_number(v)}" for k, v in sorted(metrics.items())) or "-"


def format_flops(value: float) -> str:
    """A FLOP/s rate with an SI prefix: `96.3 GFLOP/s`."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}FLOP/s"
    return f"{value:.3g} FLOP/s"


def format_mfu(metrics: Mapping[str, float]) -> str | None:
    """A training step's model FLOPs utilisation and the FLOP/s behind it (`MFU 23.4%
    (96.3 GFLOP/s)`), from the `mfu` and `achieved_flops_per_second` metrics; None without."""
    if "mfu" not in metrics:
        return None
    text = f"MFU {100 * metrics['mfu']:.1f}%"
    if "achieved_flops_per_second" in metrics:
        text += f" ({format_flops(metrics['achieved_flops_per_second'])})"
    return text


def split_breakdown(metrics: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """An evaluation's metrics as (overall, breakdown): the breakdown ones are named
    `{metric}/{key}={value}` (`answer_accuracy/category=arithmetic`)."""
    overall = {k: v for k, v in metrics.items() if "/" not in k}
    return overall, {k: v for k, v in metrics.items() if "/" in k}


def echo_breakdown(breakdown: Mapping[str, float]) -> None:
    """The per-category (per-difficulty, …) metrics of an evaluation as a table: one row per
    category, one column per metric; nothing when there are none."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    columns: list[str] = []
    for name, value in breakdown.items():
        metric, _, group = name.partition("/")
        key, _, label = group.partition("=")
        rows.setdefault((key, label), {})[metric] = value
        if metric not in columns:
            columns.append(metric)
    if not rows:
        return
    click.echo()
    echo_table(
        ["BY", "VALUE", *(c.upper() for c in columns)],
        (
            [key, label, *(format_number(v[c]) if c in v else "-" for c in columns)]
            for (key, label), v in sorted(rows.items())
        ),
    )


# The training service's periodic evaluation (metrics `eval_*`: greedy answers on the first
# `eval_max_examples` examples of the eval split, during training) is not an evaluation
# recorded by the inference service (`tunix-rt eval`, on every item): output names them apart.
IN_TRAINING = "in-training"


def in_training_label(count: int | None, *, at_most: bool = False) -> str:
    """`(in-training, 64 examples)`: what the `eval_*` metrics of a job or version were
    measured on; `count` is the number of eval examples (with `at_most`, the most there were:
    a smaller eval split has fewer), None when not known."""
    if not count:
        return f"({IN_TRAINING})"
    return f"({IN_TRAINING}, {'up to ' if at_most else ''}{count} examples)"


def table_lines(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A left-aligned table with a header row, as lines; `(none)` when there are no rows."""
    cells = [[shorten(str(cell)) for cell in row] for row in rows]
    if not cells:
        return ["(none)"]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *cells]
    ]


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Prints `table_lines`."""
    for line in table_lines(headers, rows):
        click.echo(line)


def echo_fields(pairs: Iterable[tuple[str, object]]) -> None:
    """`key: value` lines with the values aligned."""
    items = list(pairs)
    width = max((len(k) for k, _ in items), default=0)
    for key, value in items:
        click.echo(f"{key + ':':<{width + 1}} {value}")


def echo_with_items(
    key: str,
    resource: Message,
    fields: Iterable[tuple[str, object]],
    items: Sequence[M],
    headers: Sequence[str],
    row: Callable[[M], Sequence[object]],
    *,
    as_json: bool,
) -> None:
    """A resource and some of its items: as JSON `{key: resource, "items": [...]}`, or as its
    `fields`, then (when there are items) a blank line and a table of them."""
    if as_json:
        echo_json({key: to_dict(resource), "items": [to_dict(i) for i in items]})
        return
    echo_fields(fields)
    if items:
        click.echo()
        echo_table(headers, (row(i) for i in items))


def parse_key_values(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> dict[str, str]:
    """A click callback for repeated `--meta key=value` options."""
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
        result[key] = value
    return result
