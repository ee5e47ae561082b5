"""`tunix-rt datasets …`: build datasets from traces, inspect their stats, export them as JSONL.

tunix-rt datasets create arith-v1 --source arith.jsonl --eval-fraction 0.1 --seed 7
tunix-rt datasets show arith-v1
tunix-rt datasets export arith-v1 --split train --format sft --chat-template chatml -o train.jsonl
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import click

from tunix_rt.client import names
from tunix_rt.client.cli.output import (
    echo_fields,
    echo_json,
    echo_table,
    format_number,
    format_time,
    json_option,
    parse_key_values,
    plain_json,
    to_dict,
)
from tunix_rt.client.cli.state import CliState, pass_state
from tunix_rt.v1 import dataset_pb2

SPLITS = {
    "all": dataset_pb2.DATASET_SPLIT_ALL,
    "train": dataset_pb2.DATASET_SPLIT_TRAIN,
    "eval": dataset_pb2.DATASET_SPLIT_EVAL,
}
SPLIT_NAMES = {value: key for key, value in SPLITS.items()}
FORMATS = {"raw": dataset_pb2.EXPORT_FORMAT_RAW, "sft": dataset_pb2.EXPORT_FORMAT_SFT}
CHAT_TEMPLATES = ("plain", "chatml", "llama3", "gemma")


@click.group()
def datasets() -> None:
    """Datasets: create from traces (or generate them), list, show stats, export."""


@datasets.command("create")
@click.argument("dataset_id")
@click.option("--source", help="Take the traces with this source.")
@click.option(
    "--meta",
    multiple=True,
    callback=parse_key_values,
    metavar="KEY=VALUE",
    help="Take the traces whose meta KEY equals VALUE; repeatable.",
)
@click.option(
    "--trace",
    "trace_names",
    multiple=True,
    metavar="NAME",
    help="Take exactly these traces, in this order; repeatable. Excludes --source and --meta.",
)
@click.option(
    "--eval-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of traces in the eval split.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--description", default="", help="A description.")
@json_option
@pass_state
def create_dataset(
    state: CliState,
    dataset_id: str,
    source: str | None,
    meta: dict[str, str],
    trace_names: tuple[str, ...],
    eval_fraction: float,
    seed: int,
    description: str,
    as_json: bool,
) -> None:
    """Create dataset DATASET_ID from matching traces (no filter: all traces) or named ones."""
    if trace_names and (source or meta):
        raise click.UsageError("--trace cannot be combined with --source or --meta")
    dataset = state.registry().create_dataset(
        dataset_id,
        source=source,
        meta=meta,
        trace_names=list(trace_names) or None,
        eval_fraction=eval_fraction,
        seed=seed,
        description=description,
    )
    if as_json:
        echo_json(dataset)
    else:
        _echo_dataset(dataset)


@datasets.command("list")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: no limit."
)
@json_option
@pass_state
def list_datasets(state: CliState, limit: int, as_json: bool) -> None:
    """List datasets, oldest first."""
    found = state.registry().list_datasets(limit=limit or None)
    if as_json:
        echo_json(list(found))
        return
    echo_table(
        ["ID", "TRACES", "TRAIN", "EVAL", "HASH", "CREATED", "DESCRIPTION"],
        (
            [
                names.short_id(d.name),
                d.stats.trace_count,
                d.stats.train_count,
                d.stats.eval_count,
                d.content_hash[:12],
                format_time(d.create_time),
                d.description or "-",
            ]
            for d in found
        ),
    )


@datasets.command("show")
@click.argument("name")
@json_option
@pass_state
def show_dataset(state: CliState, name: str, as_json: bool) -> None:
    """Show a dataset's split, content hash and stats."""
    dataset = state.registry().get_dataset(name)
    if as_json:
        echo_json(dataset)
    else:
        _echo_dataset(dataset)


@datasets.command("delete")
@click.argument("name")
@pass_state
def delete_dataset(state: CliState, name: str) -> None:
    """Delete a dataset; its traces stay."""
    state.registry().delete_dataset(name)
    click.echo(f"deleted {names.dataset(name)}")


@datasets.command("export")
@click.argument("name")
@click.option("--split", type=click.Choice(list(SPLITS)), default="all", show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="raw",
    show_default=True,
    help="raw: traces that import again; sft: rendered prompt/target pairs.",
)
@click.option(
    "--chat-template",
    type=click.Choice(CHAT_TEMPLATES),
    default="plain",
    show_default=True,
    help="How sft prompts are wrapped.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (replaced only when complete) instead of stdout.",
)
@pass_state
def export_dataset(
    state: CliState, name: str, split: str, fmt: str, chat_template: str, output: Path | None
) -> None:
    """Export a dataset as JSONL, train records first."""
    records = state.registry().export_dataset(
        name,
        split=SPLITS[split],
        format=FORMATS[fmt],
        chat_template=chat_template if fmt == "sft" else "",
    )
    if output is None:
        _write_records(records, sys.stdout)
        return
    partial = output.with_name(output.name + ".part")
    try:
        with partial.open("w", encoding="utf-8") as out:
            count = _write_records(records, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)
    click.echo(f"wrote {count} records to {output}", err=True)


def _write_records(records: Iterable[dataset_pb2.DatasetRecord], out: TextIO) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(_record_json(record), ensure_ascii=False) + "\n")
        count += 1
    return count


def _record_json(record: dataset_pb2.DatasetRecord) -> dict[str, Any]:
    if record.HasField("sft_example"):
        example = record.sft_example
        return {
            "trace": example.trace,
            "split": SPLIT_NAMES.get(record.split, ""),
            "prompt": example.prompt,
            "target": example.target,
        }
    # Exactly the fields of an importable line, in the shipped datasets' order, so a raw export is
    # read back by `traces import` as it is.
    trace = record.trace
    return {
        "trace_version": trace.trace_version,
        "prompt": trace.prompt,
        "steps": [{"i": s.i, "type": s.type, "content": s.content} for s in trace.steps],
        "final_answer": trace.final_answer,
        "meta": plain_json(to_dict(trace.meta)) if trace.HasField("meta") else {},
    }


def _echo_dataset(dataset: dataset_pb2.Dataset) -> None:
    stats = dataset.stats
    echo_fields(
        [
            ("name", dataset.name),
            ("description", dataset.description or "-"),
            ("created", format_time(dataset.create_time)),
            ("filter", _describe_filter(dataset)),
            ("split", f"eval_fraction={dataset.split.eval_fraction:g} seed={dataset.split.seed}"),
            ("traces", f"{stats.trace_count} (train {stats.train_count}, eval {stats.eval_count})"),
            ("content hash", dataset.content_hash),
        ]
    )
    click.echo()
    echo_table(
        ["DISTRIBUTION", "MIN", "P50", "MEAN", "P90", "P99", "MAX"],
        (
            [label, *(format_number(v) for v in (d.min, d.p50, d.mean, d.p90, d.p99, d.max))]
            for label, d in (
                ("steps per trace", stats.step_count),
                ("prompt chars", stats.prompt_chars),
                ("target chars", stats.target_chars),
            )
        ),
    )
    for title, counts in (
        ("STEP TYPE", stats.step_type_counts),
        ("CATEGORY", stats.category_counts),
    ):
        click.echo()
        echo_table([title, "COUNT"], _by_count(counts))


def _by_count(counts: Mapping[str, int]) -> list[list[object]]:
    return [
        [key or "(none)", n] for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _describe_filter(dataset: dataset_pb2.Dataset) -> str:
    if not dataset.HasField("filter"):
        return "explicit trace names"
    parts = [f"source={dataset.filter.source}"] if dataset.filter.source else []
    parts += [f"meta.{c.key}={c.value}" for c in dataset.filter.meta]
    if dataset.filter.HasField("create_time_after"):
        parts.append(f"created>={format_time(dataset.filter.create_time_after)}")
    if dataset.filter.HasField("create_time_before"):
        parts.append(f"created<{format_time(dataset.filter.create_time_before)}")
    return " ".join(parts) or "all traces"
