"""`tunix-rt jobs …`: the training service's jobs, live.

    tunix-rt jobs list --state running
    tunix-rt jobs show JOB
    tunix-rt jobs cancel JOB --reason "wrong dataset"   # returns once it has stopped
    tunix-rt jobs resume JOB                            # from its latest checkpoint, if any
    tunix-rt jobs follow JOB

A job is the live view of the registry run with the same id (`tunix-rt runs show` shows the
durable record); JOB is an id, `trainingJobs/{id}` or `runs/{id}`.
"""

from __future__ import annotations

import click

from tunix_rt.client import names
from tunix_rt.client.cli.follow import STATE_NAMES, describe_status, follow_job, format_duration
from tunix_rt.client.cli.output import (
    echo_fields,
    echo_json,
    echo_table,
    format_metrics,
    format_time,
    json_option,
)
from tunix_rt.client.cli.state import CliState, pass_state
from tunix_rt.client.cli.training import BACKEND_NAMES, training_client
from tunix_rt.client.training import TERMINAL_STATES
from tunix_rt.client.training_job import format_device_request
from tunix_rt.v1 import backend_pb2, run_pb2, training_job_pb2

# How long `jobs cancel` waits for a running job's worker to stop by default: it stops at its next
# step, and the service kills it after its grace period (10 s by default) when it does not.
CANCEL_TIMEOUT_S = 120.0
STATES = {value: key for key, value in STATE_NAMES.items() if key != run_pb2.RUN_STATE_UNSPECIFIED}
PHASE_NAMES = {
    training_job_pb2.TRAINING_JOB_PHASE_UNSPECIFIED: "-",
    training_job_pb2.TRAINING_JOB_PHASE_PREPARING: "preparing",
    training_job_pb2.TRAINING_JOB_PHASE_TRAINING: "training",
    training_job_pb2.TRAINING_JOB_PHASE_EVALUATING: "evaluating",
    training_job_pb2.TRAINING_JOB_PHASE_CHECKPOINTING: "checkpointing",
    training_job_pb2.TRAINING_JOB_PHASE_REGISTERING: "registering",
    training_job_pb2.TRAINING_JOB_PHASE_EVALUATING_MODEL: "evaluating model",
    training_job_pb2.TRAINING_JOB_PHASE_STOPPING: "stopping",
}
PRECISION_NAMES = {
    backend_pb2.PRECISION_UNSPECIFIED: "auto",
    backend_pb2.PRECISION_FLOAT32: "float32",
    backend_pb2.PRECISION_MIXED_BFLOAT16: "mixed bfloat16",
    backend_pb2.PRECISION_BFLOAT16: "bfloat16",
}


def _state(job: training_job_pb2.TrainingJob) -> str:
    """The state with what refines it: `queued #2`, `running (training)`."""
    text = STATE_NAMES.get(job.state, "-")
    if job.state == run_pb2.RUN_STATE_QUEUED and job.queue_position:
        return f"{text} #{job.queue_position}"
    if job.phase:
        return f"{text} ({PHASE_NAMES.get(job.phase, '-')})"
    return text


def _base_model(job: training_job_pb2.TrainingJob) -> str:
    kind = job.WhichOneof("base_model")
    if kind is None:
        return "-"
    value: str = getattr(job, kind)
    return f"preset {value}" if kind == "preset" else value


def _devices(job: training_job_pb2.TrainingJob) -> str:
    held = job.devices
    if held.count:
        # The ids say it all (`cpu:0`); `cpu:1 [cpu:0]` read as the device cpu:1.
        shown = ",".join(held.ids) or f"{held.count} {held.kind}"
        return shown + (f" @{held.host}" if held.host else "")
    return "wants " + format_device_request(job.device_request)


def _progress(job: training_job_pb2.TrainingJob) -> str:
    return f"{job.step}/{job.total_steps}" if job.total_steps else str(job.step)


def _latest(job: training_job_pb2.TrainingJob) -> dict[str, float]:
    return {name: point.value for name, point in job.latest_metrics.items()}


@click.group()
def jobs() -> None:
    """Training jobs: list, show, cancel, resume, follow."""


@jobs.command("list")
@click.option(
    "--state", "states", multiple=True, type=click.Choice(list(STATES)), help="Repeatable."
)
@click.option("--dataset", help="Only jobs training on this dataset.")
@click.option("--model", help="Only jobs registering into this model.")
@click.option("--owner", default="", help="Only jobs of this training service.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: no limit."
)
@json_option
@pass_state
def list_jobs(
    state: CliState,
    states: tuple[str, ...],
    dataset: str | None,
    model: str | None,
    owner: str,
    limit: int,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    found = training_client(state).list_jobs(
        states=[STATES[s] for s in states],
        dataset=dataset,
        model=model,
        owner=owner,
        limit=limit or None,
    )
    if as_json:
        echo_json(list(found))
        return
    echo_table(
        ["JOB", "STATE", "STEP", "LOSS", "DATASET", "MODEL", "DEVICES", "CREATED"],
        (
            [
                names.short_id(j.name),
                _state(j),
                _progress(j),
                f"{j.latest_metrics['loss'].value:.4g}" if "loss" in j.latest_metrics else "-",
                names.short_id(j.dataset) if j.dataset else "-",
                _base_model(j),
                _devices(j),
                format_time(j.create_time),
            ]
            for j in found
        ),
    )


@jobs.command("show")
@click.argument("name", metavar="JOB")
@json_option
@pass_state
def show_job(state: CliState, name: str, as_json: bool) -> None:
    """Show a job: state, phase, queue position, devices, progress, metrics and outcome."""
    job = training_client(state).get_job(name)
    if as_json:
        echo_json(job)
        return
    eta = (
        format_duration(job.estimated_time_remaining.ToTimedelta().total_seconds())
        if job.HasField("estimated_time_remaining")
        else "-"
    )
    echo_fields(
        [
            ("name", job.name),
            ("display name", job.display_name or "-"),
            ("state", STATE_NAMES.get(job.state, "-")),
            ("phase", PHASE_NAMES.get(job.phase, "-")),
            ("queue position", job.queue_position or "-"),
            ("dataset", job.dataset or "-"),
            ("base model", _base_model(job)),
            ("devices", _devices(job)),
            ("backend", BACKEND_NAMES.get(job.resolved_backend, "-")),
            ("precision", PRECISION_NAMES.get(job.resolved_precision, "-")),
            ("owner", job.owner or "-"),
            ("attempt", job.attempt or "-"),
            ("step", _progress(job)),
            ("epoch", f"{job.epoch:.2f}"),
            ("eta", eta),
            ("latest metrics", format_metrics(_latest(job))),
            ("checkpoint", job.latest_checkpoint or "-"),
            ("registered version", job.registered_model_version or "-"),
            ("evaluation", job.evaluation or "-"),
            (
                "evaluation error",
                describe_status(job.evaluation_error) if job.HasField("evaluation_error") else "-",
            ),
            ("error", describe_status(job.error) if job.HasField("error") else "-"),
            ("events", job.last_sequence),
            ("created", format_time(job.create_time)),
            ("started", format_time(job.start_time)),
            ("ended", format_time(job.end_time)),
        ]
    )


@jobs.command("cancel")
@click.argument("name", metavar="JOB")
@click.option("--reason", default="", help="Why; recorded in the job's error.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until the job has stopped (CANCELLED, or whatever it ended as first), so that "
    "`jobs resume` can follow at once; --no-wait returns as soon as the service has the request.",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=CANCEL_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the job to stop; exit 1 when it has not.",
)
@json_option
@pass_state
def cancel_job(
    state: CliState, name: str, reason: str, wait: bool, wait_timeout: float, as_json: bool
) -> None:
    """Cancel a queued or running job and wait until it has stopped (a running job stops at its
    next step, within seconds)."""
    client = training_client(state)
    job = client.cancel_job(name, reason=reason)
    if wait and job.state not in TERMINAL_STATES:
        try:
            job = client.wait_job(job.name, timeout=wait_timeout)
        except TimeoutError as error:
            raise click.ClickException(f"{error}; it is still stopping") from None
    if as_json:
        echo_json(job)
        return
    click.echo(f"{names.short_id(job.name)}: {_state(job)}")


@jobs.command("resume")
@click.argument("name", metavar="JOB")
@json_option
@pass_state
def resume_job(state: CliState, name: str, as_json: bool) -> None:
    """Requeue a failed or cancelled job; it continues from its latest checkpoint, or from the
    start when none was saved."""
    job = training_client(state).resume_job(name)
    if as_json:
        echo_json(job)
        return
    click.echo(f"{names.short_id(job.name)}: {_state(job)}, {resume_point(job)}")


def resume_point(job: training_job_pb2.TrainingJob) -> str:
    """Where a resumed job continues, as the reason of its state change says it."""
    if job.latest_checkpoint:
        return f"resuming from the latest checkpoint, {job.latest_checkpoint}"
    return "resuming from the start: the job saved no checkpoint"


@jobs.command("follow")
@click.argument("name", metavar="JOB")
@click.option(
    "--from-sequence",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="The first event to show (1: the whole history).",
)
@pass_state
def follow(state: CliState, name: str, from_sequence: int) -> None:
    """Show a job's progress and events live until it ends; exit 1 unless it succeeds."""
    follow_job(training_client(state), name, from_sequence=from_sequence)
