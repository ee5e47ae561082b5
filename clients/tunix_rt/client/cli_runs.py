"""`tunix-rt runs …`: the registry's durable records of training runs.

tunix-rt runs list --state running
tunix-rt runs show RUN
"""

from __future__ import annotations

import json

import click

from tunix_rt.client import names
from tunix_rt.client.cli_output import (
    echo_fields,
    echo_json,
    echo_table,
    format_metrics,
    format_time,
    json_option,
    plain_json,
    to_dict,
)
from tunix_rt.client.cli_state import CliState, pass_state
from tunix_rt.v1 import run_pb2

STATES = {
    "queued": run_pb2.RUN_STATE_QUEUED,
    "running": run_pb2.RUN_STATE_RUNNING,
    "succeeded": run_pb2.RUN_STATE_SUCCEEDED,
    "failed": run_pb2.RUN_STATE_FAILED,
    "cancelled": run_pb2.RUN_STATE_CANCELLED,
}
STATE_NAMES = {value: key for key, value in STATES.items()}
# `runs show` summarises the latest value of each metric from this many most recent events, so it
# stays fast on a run with a long history.
RECENT_EVENTS = 500


@click.group()
def runs() -> None:
    """Training runs as the registry records them: list, show."""


def _devices(devices: run_pb2.DeviceAssignment) -> str:
    if not devices.count:
        return "-"
    return f"{devices.kind}:{devices.count}" + (f"@{devices.host}" if devices.host else "")


@runs.command("list")
@click.option(
    "--state", "states", multiple=True, type=click.Choice(list(STATES)), help="Repeatable."
)
@click.option("--owner", default="", help="Only runs of this training service.")
@click.option("--dataset", help="Only runs on this dataset.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: no limit."
)
@json_option
@pass_state
def list_runs(
    state: CliState,
    states: tuple[str, ...],
    owner: str,
    dataset: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, oldest first."""
    found = state.registry().list_runs(
        states=[STATES[s] for s in states], owner=owner, dataset=dataset, limit=limit or None
    )
    if as_json:
        echo_json(list(found))
        return
    echo_table(
        ["RUN", "STATE", "DATASET", "DEVICES", "OWNER", "EVENTS", "CREATED"],
        (
            [
                names.short_id(r.name),
                STATE_NAMES.get(r.state, "-"),
                names.short_id(r.dataset) if r.dataset else "-",
                _devices(r.devices),
                r.owner or "-",
                r.last_sequence,
                format_time(r.create_time),
            ]
            for r in found
        ),
    )


@runs.command("show")
@click.argument("name")
@json_option
@pass_state
def show_run(state: CliState, name: str, as_json: bool) -> None:
    """Show a run: state, devices, error, config, checkpoints and latest metrics."""
    registry = state.registry()
    run = registry.get_run(name)
    checkpoints = list(registry.list_checkpoints(run.name))
    if as_json:
        echo_json({"run": to_dict(run), "checkpoints": [to_dict(c) for c in checkpoints]})
        return
    latest: dict[str, float] = {}
    start = max(1, run.last_sequence - RECENT_EVENTS + 1)
    for event in registry.list_run_events(run.name, from_sequence=start):
        if event.HasField("metrics"):
            latest.update(event.metrics.values)
    config = plain_json(to_dict(run).get("config", {}))
    echo_fields(
        [
            ("name", run.name),
            ("display name", run.display_name or "-"),
            ("state", STATE_NAMES.get(run.state, "-")),
            ("dataset", run.dataset or "-"),
            ("devices", _devices(run.devices)),
            ("owner", run.owner or "-"),
            ("priority", run.priority),
            ("created", format_time(run.create_time)),
            ("started", format_time(run.start_time)),
            ("ended", format_time(run.end_time)),
            ("error", run.error.message if run.HasField("error") else "-"),
            ("events", run.last_sequence),
            ("latest metrics", format_metrics(latest)),
            ("config", json.dumps(config, ensure_ascii=False, sort_keys=True)),
        ]
    )
    click.echo()
    echo_table(
        ["STEP", "URI", "METRICS", "CREATED"],
        (
            [c.step, c.uri, format_metrics(c.metrics), format_time(c.create_time)]
            for c in checkpoints
        ),
    )
