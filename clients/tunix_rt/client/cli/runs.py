"""`tunix-rt runs …`: the registry's durable records of training runs.

tunix-rt runs list --state running
tunix-rt runs show RUN
tunix-rt runs plot RUN [RUN ...] -o runs.png
tunix-rt runs tensorboard RUN ./tb && tensorboard --logdir ./tb
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from tunix_rt.client import names
from tunix_rt.client.cli.output import (
    echo_fields,
    echo_json,
    echo_table,
    format_metrics,
    format_mfu,
    format_time,
    json_option,
    plain_json,
    to_dict,
)
from tunix_rt.client.cli.plots import (
    DEFAULT_PLOT_METRICS,
    default_title,
    metric_history,
    plot_runs,
    write_tensorboard,
)
from tunix_rt.client.cli.state import CliState, pass_state
from tunix_rt.v1 import run_pb2

STATES = {
    "queued": run_pb2.RUN_STATE_QUEUED,
    "running": run_pb2.RUN_STATE_RUNNING,
    "succeeded": run_pb2.RUN_STATE_SUCCEEDED,
    "failed": run_pb2.RUN_STATE_FAILED,
    "cancelled": run_pb2.RUN_STATE_CANCELLED,
    "pruned": run_pb2.RUN_STATE_PRUNED,
}
STATE_NAMES = {value: key for key, value in STATES.items()}
# `runs show` summarises the latest value of each metric from this many most recent events, so it
# stays fast on a run with a long history.
RECENT_EVENTS = 500
# The formats `runs plot` writes, by file suffix.
IMAGE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")


@click.group()
def runs() -> None:
    """Training runs as the registry records them: list, show, plot, tensorboard."""


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
            # Model FLOPs utilisation of the latest step (the training service's count and peak).
            ("MFU", format_mfu(latest) or "-"),
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


@runs.command("plot")
@click.argument("run_names", metavar="RUN...", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="The image to write: .png (or .svg, .pdf).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="A metric to draw, repeatable. [default: " + ", ".join(DEFAULT_PLOT_METRICS) + "]",
)
@click.option(
    "--title",
    default="",
    help="A title above the panels. [default: the runs and the datasets they trained on]",
)
@pass_state
def plot(
    state: CliState,
    run_names: tuple[str, ...],
    output: Path,
    metrics: tuple[str, ...],
    title: str,
) -> None:
    """Draw runs' metrics against step, one panel per metric and one line per run.

    Compare runs by looking: by default loss, learning rate, eval answer accuracy and eval loss.
    """
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise click.BadParameter(
            f"{output.name}: the image must end in {', '.join(IMAGE_SUFFIXES)}",
            param_hint="'-o' / '--output'",
        )
    registry = state.registry()
    histories = [
        metric_history(run, registry.list_run_events(run))
        for run in dict.fromkeys(names.run(r) for r in run_names)
    ]
    wanted = list(dict.fromkeys(metrics)) or list(DEFAULT_PLOT_METRICS)
    if not title:
        title = default_title(histories, [registry.get_run(h.run).dataset for h in histories])
    plot_runs(histories, output, metrics=wanted, title=title)
    for history in histories:
        found = [m for m in wanted if history.metrics.get(m)]
        missing = [m for m in wanted if m not in found]
        note = f"{history.label}: {', '.join(found) or 'no metrics'}"
        click.echo(
            note + (f" (none of {', '.join(missing)})" if found and missing else ""), err=True
        )
    click.echo(str(output))


@runs.command("tensorboard")
@click.argument("name", metavar="RUN")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def tensorboard(state: CliState, name: str, directory: Path) -> None:
    """Write a run's scalar metrics as TensorBoard event files under DIR/RUN-ID.

    Every metric becomes a scalar tag at its event's step and time; several runs written to the
    same DIR appear side by side in `tensorboard --logdir DIR`. Rewriting a run replaces its file.
    """
    run = names.run(name)
    history = metric_history(run, state.registry().list_run_events(run))
    path, count = write_tensorboard(history, directory / history.label)
    view = f"view with: tensorboard --logdir {directory}"
    if shutil.which("tensorboard") is None:
        # The files need no TensorBoard to write, and tunix-rt does not install it.
        view += " (TensorBoard is not installed here: pip install tensorboard)"
    click.echo(
        f"{history.label}: {count} scalars of {len(history.metrics)} metrics; {view}", err=True
    )
    click.echo(str(path))
