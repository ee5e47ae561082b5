"""`tunix-rt traces …`: import JSONL traces, list, show and delete them.

tunix-rt traces import traces.jsonl --source seed
tunix-rt traces list --meta category=reasoning --limit 20
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from tunix_rt.client import names
from tunix_rt.client.cli.output import (
    echo_fields,
    echo_json,
    echo_table,
    format_time,
    json_option,
    parse_key_values,
    plain_json,
    shorten,
    to_dict,
)
from tunix_rt.client.cli.state import EXIT_FAILURE, CliState, pass_state
from tunix_rt.v1 import registry_service_pb2 as pb


@click.group()
def traces() -> None:
    """Reasoning traces: import, list, show, delete."""


def _error_line(error: pb.ImportError) -> str:
    # Servers often name the field in the message too; say it once.
    if error.field and not error.message.startswith(error.field):
        return f"line {error.line}: {error.field}: {error.message}"
    return f"line {error.line}: {error.message}"


@traces.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--atomic", is_flag=True, help="Store nothing if any line is bad.")
@click.option(
    "--source",
    help="Recorded on every trace, for filtering later. Default: the file's name.",
)
@json_option
@pass_state
@click.pass_context
def import_traces(
    ctx: click.Context, state: CliState, file: str, atomic: bool, source: str | None, as_json: bool
) -> None:
    """Import a JSONL file of traces (`-` reads stdin).

    Good lines are stored and bad ones reported as `line N: field: message` on stderr, with exit
    code 1; with --atomic, one bad line stores nothing (and the file may hold at most 10,000
    traces, one transaction).

    A source keeps one copy of each trace (same content): importing a file again stores only the
    traces its source lacks, so after an interrupted import just run the same command again. The
    summary says how many traces were new and how many already present. The file streams in
    chunks and is stored in batches as it goes, so files of any length import.
    """
    registry = state.registry()
    from_stdin = file == "-"
    label = source if source is not None else ("" if from_stdin else Path(file).name)
    total = None if from_stdin else Path(file).stat().st_size
    # disable=None: a bar on a terminal, silence when stderr is a pipe or a log file.
    with tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="import", disable=None
    ) as bar:
        data = sys.stdin.buffer if from_stdin else Path(file)
        result = registry.import_traces(data, atomic=atomic, source=label, progress=bar.update)
    if as_json:
        echo_json(result)
    else:
        # A line can break several rules, each its own error: count lines, not messages.
        bad = len({error.line for error in result.errors})
        summary = f"imported {result.imported_count} of {result.line_count} traces"
        if result.rejected:
            summary += f"; rejected: {bad} bad line(s), nothing stored (--atomic)"
        else:
            if bad:
                summary += f"; {bad} bad line(s)"
            present = result.imported_count - result.new_count
            summary += f"; {result.new_count} new, {present} already present"
        click.echo(summary)
    for error in result.errors:
        click.echo(_error_line(error), err=True)
    if result.errors or result.rejected:
        ctx.exit(EXIT_FAILURE)


@traces.command("list")
@click.option("--source", help="Only traces with this source.")
@click.option(
    "--meta",
    multiple=True,
    callback=parse_key_values,
    metavar="KEY=VALUE",
    help="Only traces whose meta KEY equals VALUE; repeatable, all must hold.",
)
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: no limit."
)
@json_option
@pass_state
def list_traces(
    state: CliState, source: str | None, meta: dict[str, str], limit: int, as_json: bool
) -> None:
    """List traces, oldest first."""
    found = state.registry().list_traces(source=source, meta=meta, limit=limit or None)
    if as_json:
        echo_json(list(found))
        return
    echo_table(
        ["ID", "SOURCE", "STEPS", "ANSWER", "PROMPT", "CREATED"],
        (
            [
                names.short_id(t.name),
                t.source or "-",
                len(t.steps),
                shorten(t.final_answer, 20),
                shorten(t.prompt, 50),
                format_time(t.create_time),
            ]
            for t in found
        ),
    )


@traces.command("show")
@click.argument("name")
@json_option
@pass_state
def show_trace(state: CliState, name: str, as_json: bool) -> None:
    """Show one trace (an id or `traces/ID`)."""
    trace = state.registry().get_trace(name)
    if as_json:
        echo_json(trace)
        return
    echo_fields(
        [
            ("name", trace.name),
            ("source", trace.source or "-"),
            ("version", trace.trace_version),
            ("created", format_time(trace.create_time)),
            ("hash", trace.content_hash),
            ("prompt", trace.prompt),
        ]
    )
    click.echo("steps:")
    for step in trace.steps:
        click.echo(f"  {step.i}. [{step.type}] {step.content}")
    meta = plain_json(to_dict(trace).get("meta", {}))
    echo_fields([("answer", trace.final_answer), ("meta", json.dumps(meta, ensure_ascii=False))])


@traces.command("delete")
@click.argument("name")
@pass_state
def delete_trace(state: CliState, name: str) -> None:
    """Delete a trace that belongs to no dataset."""
    state.registry().delete_trace(name)
    click.echo(f"deleted {names.trace(name)}")
