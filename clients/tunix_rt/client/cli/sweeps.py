"""`tunix-rt sweep …`: hyperparameter sweeps on the training service, each trial a training job.

    tunix-rt sweep create --dataset seed-v1 --model llama3-tiny --steps 200 \\
        --param lr=log:1e-4:3e-2 --param batch_size=choice:8,16,32 --param lora_rank=int:4:64 \\
        --objective eval_answer_accuracy:max --trials 16 --parallel 2 --pruner hyperband \\
        --register-best-as seed-best --alias candidate --follow
    tunix-rt sweep list
    tunix-rt sweep show SWEEP
    tunix-rt sweep follow SWEEP
    tunix-rt sweep cancel SWEEP
    tunix-rt sweep plot SWEEP -o sweep.png

SWEEP is an id or `sweeps/{id}`; trial N is the job `{id}-trial-N` (`tunix-rt jobs show`).
Following redraws the trials' table in place on a terminal; elsewhere (or with --lines) it prints
one line per event (stderr) and the trials' table at the end (stdout).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from tunix_rt.client import names
from tunix_rt.client.cli.follow import STATE_NAMES
from tunix_rt.client.cli.output import echo_fields, echo_json, echo_table, format_time, json_option
from tunix_rt.client.cli.state import CliState, pass_state
from tunix_rt.client.cli.sweep_follow import HEADERS, follow_sweep, format_value, trial_rows
from tunix_rt.client.cli.sweep_plot import plot_sweep
from tunix_rt.client.cli.training import training_client
from tunix_rt.client.sweeps import (
    ALGORITHMS,
    DIRECTIONS,
    PARAM_HELP,
    PRUNERS,
    parse_objective,
    parse_param,
)
from tunix_rt.client.training_job import DEVICES_HELP, build_training_job, parse_device_request
from tunix_rt.v1 import device_pb2, run_pb2, sweep_pb2

LIVE_HELP = "A table redrawn in place, or a line per event. [live on a terminal]"
STATES = {
    "running": run_pb2.RUN_STATE_RUNNING,
    "succeeded": run_pb2.RUN_STATE_SUCCEEDED,
    "failed": run_pb2.RUN_STATE_FAILED,
    "cancelled": run_pb2.RUN_STATE_CANCELLED,
}


def _devices(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> device_pb2.DeviceRequest | None:
    if value is None:
        return None
    try:
        return parse_device_request(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


@click.group("sweep")
def sweep() -> None:
    """Hyperparameter sweeps: trials of a training job chosen by Optuna, pruned early."""


def echo_trials(trials: Sequence[sweep_pb2.SweepTrial], best: int | None) -> None:
    echo_table(HEADERS, trial_rows(list(trials), best))


def _parse(values: tuple[str, ...]) -> list[sweep_pb2.SweepParameter]:
    try:
        return [parse_param(v) for v in values]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--param'") from None


@sweep.command("create")
@click.option("--dataset", required=True, help="The dataset every trial trains on.")
@click.option(
    "--model", required=True, help="Where trials start: a preset or a registered version."
)
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps per trial.")
@click.option("--devices", callback=_devices, metavar="DEVICES", help=DEVICES_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per batch (base).")
@click.option("--lora-rank", type=click.IntRange(1, 1024), help="Trials train LoRA adapters.")
@click.option("--eval-interval", type=click.IntRange(min=0), help="Steps between evaluations.")
@click.option("--param", "params", multiple=True, required=True, help=PARAM_HELP + "; repeatable.")
@click.option("--objective", required=True, help="METRIC:max or METRIC:min, e.g. eval_loss:min.")
@click.option("--trials", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--algorithm", type=click.Choice(list(ALGORITHMS)), default="tpe", show_default=True)
@click.option("--pruner", type=click.Choice(list(PRUNERS)), default="none", show_default=True)
@click.option("--seed", type=int, help="The sampler's seed. [default: 0]")
@click.option("--register-best-as", metavar="MODEL", default="", help="Trials register here.")
@click.option("--alias", default="", help="The alias the best trial's version gets. [best]")
@click.option("--evaluate-best", is_flag=True, help="Evaluate the best version at the end.")
@click.option("--sweep-id", metavar="ID", help="The sweep's id. [default: generated]")
@click.option("--validate-only", is_flag=True, help="Check the sweep; create nothing.")
@click.option("--follow", is_flag=True, help="Show the trials live until the sweep ends.")
@click.option("--live/--lines", default=None, help="With --follow: " + LIVE_HELP)
@pass_state
def create(
    state: CliState,
    dataset: str,
    model: str,
    steps: int | None,
    devices: device_pb2.DeviceRequest | None,
    batch_size: int | None,
    lora_rank: int | None,
    eval_interval: int | None,
    params: tuple[str, ...],
    objective: str,
    trials: int,
    parallel: int,
    algorithm: str,
    pruner: str,
    seed: int | None,
    register_best_as: str,
    alias: str,
    evaluate_best: bool,
    sweep_id: str | None,
    validate_only: bool,
    follow: bool,
    live: bool | None,
) -> None:
    """Start a sweep and print its name; with --follow, watch it to the end.

    \b
    tunix-rt sweep create --dataset seed-v1 --model llama3-tiny --steps 200 \\
        --param lr=log:1e-4:3e-2 --objective eval_loss:min --trials 8 --parallel 2
    """
    client = training_client(state)
    try:
        source = client.model_source(model)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--model'") from None
    base = build_training_job(
        dataset,
        source,
        max_steps=steps,
        devices=devices,
        batch_size=batch_size,
        lora_rank=lora_rank,
        eval_interval_steps=eval_interval,
    )
    try:
        parsed_objective = parse_objective(objective)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--objective'") from None
    created = client.create_sweep(
        base,
        _parse(params),
        objective=parsed_objective,
        max_trials=trials,
        parallel_trials=parallel,
        algorithm=algorithm,
        pruner=pruner,
        seed=seed,
        register_best_as=register_best_as,
        best_alias=alias,
        evaluate_best=evaluate_best,
        sweep_id=sweep_id,
        validate_only=validate_only,
    )
    if validate_only:
        echo_json(created)
        return
    click.echo(created.name)
    if follow:
        follow_sweep(client, created.name, live)


@sweep.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(list(STATES)))
@json_option
@pass_state
def list_command(state: CliState, states: tuple[str, ...], as_json: bool) -> None:
    """List sweeps, oldest first."""
    wanted = [STATES[s] for s in states]
    found = list(training_client(state).list_sweeps(states=wanted))
    if as_json:
        echo_json(found)
        return
    echo_table(
        ["SWEEP", "STATE", "TRIALS", "OBJECTIVE", "BEST", "CREATED"],
        (
            [
                names.short_id(s.name),
                STATE_NAMES.get(s.state, "-"),
                f"{len(s.trials)}/{s.max_trials}",
                s.objective.metric,
                format_value(s.best_trial) if s.HasField("best_trial") else "-",
                format_time(s.create_time),
            ]
            for s in found
        ),
    )


@sweep.command("show")
@click.argument("name")
@json_option
@pass_state
def show(state: CliState, name: str, as_json: bool) -> None:
    """Show a sweep and its trials (* marks the best)."""
    found = training_client(state).get_sweep(name)
    if as_json:
        echo_json(found)
        return
    best = found.best_trial.number if found.HasField("best_trial") else None
    direction = "max" if found.objective.direction == DIRECTIONS["max"] else "min"
    best_text = f"trial {best}: {format_value(found.best_trial)}" if best is not None else "-"
    echo_fields(
        [
            ("name", found.name),
            ("state", STATE_NAMES.get(found.state, "-")),
            ("objective", f"{found.objective.metric} ({direction})"),
            ("trials", f"{len(found.trials)}/{found.max_trials}, {found.parallel_trials} at once"),
            ("best", best_text),
            ("best version", found.best_model_version or "-"),
            ("error", found.error.message or "-"),
        ]
    )
    click.echo()
    echo_trials(found.trials, best)


@sweep.command("follow")
@click.argument("name")
@click.option("--live/--lines", default=None, help=LIVE_HELP)
@pass_state
def follow(state: CliState, name: str, live: bool | None) -> None:
    """Follow a sweep's trials live until it ends."""
    follow_sweep(training_client(state), name, live)


@sweep.command("cancel")
@click.argument("name")
@click.option("--reason", default="", help="Why; recorded with the sweep and its trials.")
@pass_state
def cancel(state: CliState, name: str, reason: str) -> None:
    """Cancel a sweep and its running trials; waits until they have stopped."""
    client = training_client(state)
    client.cancel_sweep(name, reason=reason)
    done = client.wait_sweep(name, timeout=120)
    click.echo(f"{names.short_id(done.name)} {STATE_NAMES.get(done.state, '-')}")


@sweep.command("plot")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@pass_state
def plot(state: CliState, name: str, output: Path) -> None:
    """Draw a sweep: objective per trial over time with the best so far, and each parameter
    against the objective."""
    found = training_client(state).get_sweep(name)
    plot_sweep(found, output)
    click.echo(str(output))
