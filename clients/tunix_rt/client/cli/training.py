"""`tunix-rt train`, `tunix-rt devices`, `tunix-rt presets`: submit training jobs and see what the
training service offers.

    tunix-rt train --dataset seed-v1 --model llama3-tiny --steps 200 --devices cpu:1 --follow
    tunix-rt devices
    tunix-rt presets

The training service's address is the global `--training ADDR` option ($TUNIX_RT_TRAINING,
default 127.0.0.1:50052), kept with the click context beside the registry's CliState.
"""

from __future__ import annotations

import difflib

import click
import grpc

from tunix_rt.client import names
from tunix_rt.client.cli.follow import follow_job
from tunix_rt.client.cli.output import echo_json, echo_table, format_flops, json_option
from tunix_rt.client.cli.state import CliState, ServiceOption, pass_state
from tunix_rt.client.inference import PRECISIONS
from tunix_rt.client.training import TrainingClient
from tunix_rt.client.training_job import (
    DEVICE_KIND_NAMES,
    DEVICES_HELP,
    ModelSource,
    parse_device_request,
)
from tunix_rt.v1 import backend_pb2, device_pb2

# The preset `train` starts from without `--model`: small enough to learn the shipped datasets in
# minutes on two CPU cores (the training service's own default preset too).
DEFAULT_PRESET = "llama3-small"

DEVICE_STATE_NAMES = {
    device_pb2.DEVICE_STATE_UNSPECIFIED: "-",
    device_pb2.DEVICE_STATE_AVAILABLE: "available",
    device_pb2.DEVICE_STATE_ALLOCATED: "allocated",
    device_pb2.DEVICE_STATE_UNAVAILABLE: "unavailable",
}
BACKEND_NAMES = {
    backend_pb2.BACKEND_UNSPECIFIED: "auto",
    backend_pb2.BACKEND_JAX: "jax",
    backend_pb2.BACKEND_TORCH: "torch",
}


TRAINING = ServiceOption("training", TrainingClient)
# The global `--training ADDR` option of the `tunix-rt` group, its address, and the client
# connected to it on first use with the global token, CA and timeout, closed when the command ends.
training_option = TRAINING.option
training_address = TRAINING.address
training_client = TRAINING.client


def _device_request(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> device_pb2.DeviceRequest | None:
    if value is None:
        return None
    try:
        return parse_device_request(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


def _format_bytes(size: int) -> str:
    if not size:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _format_count(count: int) -> str:
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _explain_unknown_model(client: TrainingClient, model: str, error: grpc.RpcError) -> None:
    """Raises the error of `--model NAME` that is neither a preset nor a registered model (the
    NOT_FOUND `error` names it), with the preset it most resembles: `llama3-smal` is more likely a
    mistyped preset than a model nobody registered."""
    if model not in (error.details() or ""):
        return  # something else was not found, the dataset for one
    presets = [p.name for p in client.list_presets()]
    close = difflib.get_close_matches(model, presets, n=1)
    hint = f" (did you mean {close[0]}?)" if close else f" ({', '.join(presets) or 'none'})"
    raise click.ClickException(
        f"--model {model!r} is not a preset{hint} nor a registered model "
        "(`tunix-rt presets`, `tunix-rt models list`)"
    )


def choose_default_model(client: TrainingClient) -> ModelSource:
    """The model of `train` without `--model`: DEFAULT_PRESET when the service offers it (the
    preset the README's main job uses), otherwise the smallest preset it lists."""
    presets = list(client.list_presets())
    if not presets:
        raise click.UsageError("the training service lists no presets: give --model")
    if any(p.name == DEFAULT_PRESET for p in presets):
        return ModelSource("preset", DEFAULT_PRESET)
    smallest = min(presets, key=lambda p: p.parameter_count)
    return ModelSource("preset", smallest.name)


def _architecture_overrides(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, float]:
    """`FIELD=NUMBER` pairs as a dict; the service checks the fields and their ranges."""
    overrides: dict[str, float] = {}
    for value in values:
        field, sep, number = value.partition("=")
        try:
            overrides[field.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not field.strip():
            raise click.BadParameter(f"{value!r} is not FIELD=NUMBER", ctx, param)
    return overrides


def _model_source(client: TrainingClient, model: str | None) -> ModelSource:
    """Where `--model` says training starts; without it, the default preset (said on stderr)."""
    if model is None:
        source = choose_default_model(client)
        click.echo(f"model: preset {source.value}", err=True)
        return source
    try:
        return client.model_source(model)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--model'") from None


@click.command("train")
@click.option("--dataset", required=True, help="The dataset to train on (its train split).")
@click.option(
    "--model",
    help="Where training starts: a preset (random init, see `tunix-rt presets`), a registered "
    "version NAME@ALIAS, NAME/VERSION or NAME (latest), or an absolute checkpoint /DIR on the "
    "training host. [default: preset " + DEFAULT_PRESET + ", else the smallest preset]",
)
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps to take.")
@click.option(
    "--epochs",
    type=click.FloatRange(min=0, min_open=True),
    help="Passes over the train split. [default: 1]",
)
@click.option(
    "--devices",
    callback=_device_request,
    metavar="DEVICES",
    help=DEVICES_HELP + " [default: one device of any kind]",
)
@click.option(
    "--lr", type=click.FloatRange(min=0, max=1, min_open=True), help="Peak learning rate."
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per batch.")
@click.option("--seq-len", type=click.IntRange(min=16), help="Longest packed sequence in tokens.")
@click.option("--seed", type=int, help="Seed of initialisation and data order.")
@click.option(
    "--lora-rank", type=click.IntRange(1, 1024), help="Train a LoRA adapter of this rank."
)
@click.option("--register-as", metavar="MODEL", help="Register the result under this model.")
@click.option(
    "--alias", "aliases", multiple=True, help="Point this alias at the result; repeatable."
)
@click.option("--priority", type=click.IntRange(-100, 100), help="Higher starts first. [0]")
@click.option("--eval-interval", type=click.IntRange(min=0), help="Steps between evaluations.")
@click.option(
    "--checkpoint-interval", type=click.IntRange(min=0), help="Steps between checkpoints."
)
@click.option("--chat-template", help="plain, chatml, llama3 or gemma. [default: plain]")
@click.option("--job-id", metavar="ID", help="The job's id. [default: generated]")
@click.option("--display-name", default="", help="A human-readable name.")
@click.option(
    "--backend",
    type=click.Choice(["jax", "torch"]),
    help="The training backend. [default: the faster one measured for the devices]",
)
@click.option(
    "--arch",
    "arch",
    multiple=True,
    callback=_architecture_overrides,
    metavar="FIELD=VALUE",
    help="Change a field of the preset's architecture, e.g. --arch num_layers=6 --arch "
    "rope_theta=10000 (fields: `tunix-rt presets --json`); repeatable.",
)
@click.option(
    "--precision",
    type=click.Choice(sorted(PRECISIONS)),
    help="Numeric precision. auto: bfloat16 compute on GPUs and TPUs, float32 on CPUs; "
    "mixed_bfloat16 on a CPU with AVX-512 BF16 or AMX trains ~1.4x faster. [default: auto]",
)
@click.option(
    "--evaluate",
    is_flag=True,
    help="Evaluate the registered version on the eval split when the job succeeds "
    "(the training service must know an inference service).",
)
@click.option(
    "--validate-only",
    is_flag=True,
    help="Check the job and print it with the defaults filled in; create nothing.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Show live progress until the job ends; exit 1 unless it succeeds.",
)
@pass_state
def train(
    state: CliState,
    dataset: str,
    model: str | None,
    steps: int | None,
    epochs: float | None,
    devices: device_pb2.DeviceRequest | None,
    lr: float | None,
    batch_size: int | None,
    seq_len: int | None,
    seed: int | None,
    lora_rank: int | None,
    register_as: str | None,
    aliases: tuple[str, ...],
    priority: int | None,
    eval_interval: int | None,
    checkpoint_interval: int | None,
    chat_template: str | None,
    job_id: str | None,
    display_name: str,
    backend: str | None,
    arch: dict[str, float],
    precision: str | None,
    evaluate: bool,
    validate_only: bool,
    follow: bool,
) -> None:
    """Submit a training job and print its name; with --follow, watch it to the end.

    \b
    tunix-rt train --dataset seed-v1 --model llama3-tiny --steps 200 --follow
    tunix-rt train --dataset seed-v1 --model mymodel@production --lora-rank 8 --devices gpu:1
    """
    if steps is not None and epochs is not None:
        raise click.UsageError("give --steps or --epochs, not both")
    if validate_only and follow:
        raise click.UsageError("--validate-only creates no job to --follow")
    client = training_client(state)
    source = _model_source(client, model)
    try:
        job = client.create_job(
            dataset,
            model=source,
            job_id=job_id,
            validate_only=validate_only,
            max_steps=steps,
            num_epochs=epochs,
            devices=devices,
            learning_rate=lr,
            batch_size=batch_size,
            max_seq_len=seq_len,
            seed=seed,
            lora_rank=lora_rank,
            register_as=register_as,
            aliases=aliases,
            priority=priority,
            eval_interval_steps=eval_interval,
            checkpoint_interval_steps=checkpoint_interval,
            chat_template=chat_template,
            display_name=display_name,
            backend=backend,
            evaluate=evaluate,
            precision=precision,
            architecture_overrides=arch,
        )
    except grpc.RpcError as error:
        if source.kind == "base_model_version" and error.code() == grpc.StatusCode.NOT_FOUND:
            _explain_unknown_model(client, source.value, error)
        raise
    if validate_only:
        echo_json(job)
        return
    click.echo(job.name)
    if follow:
        follow_job(client, job.name)


@click.command("devices")
@click.option("--kind", type=click.Choice(["cpu", "gpu", "tpu"]), help="Only devices of this kind.")
@json_option
@pass_state
def devices(state: CliState, kind: str | None, as_json: bool) -> None:
    """List the training host's devices and the job holding each; on a Ray cluster, each
    device's node (`ADDRESS/NODE-ID`, the id cut to 12 hex digits), sorted by node."""
    found = list(training_client(state).list_devices(kind=kind))
    found.sort(key=lambda d: d.host)  # stable: a host's devices keep their order
    if as_json:
        echo_json(found)
        return
    echo_table(
        [
            "ID",
            "NODE",
            "KIND",
            "PLATFORM",
            "MEMORY",
            "PEAK FP32/BF16",
            "STATE",
            "JOB",
            "DESCRIPTION",
        ],
        (
            [
                d.id,
                # `ADDRESS/NODE-ID` with the node id cut to 12 hex digits (`--json`: whole).
                d.host[: d.host.find("/") + 13] if "/" in d.host else d.host or "-",
                DEVICE_KIND_NAMES.get(d.kind, "-"),
                d.platform or "-",
                _format_bytes(d.memory_bytes),
                # The MFU denominators (`--json` says where they come from: peak_flops_source).
                f"{format_flops(d.peak_flops_fp32)} / {format_flops(d.peak_flops_bf16)}"
                if d.peak_flops_fp32
                else "-",
                DEVICE_STATE_NAMES.get(d.state, "-"),
                names.short_id(d.training_job) if d.training_job else "-",
                d.description or "-",
            ]
            for d in found
        ),
    )


@click.command("presets")
@click.option("--family", default="", help="Only presets of this family, e.g. llama3.")
@json_option
@pass_state
def presets(state: CliState, family: str, as_json: bool) -> None:
    """List the architecture presets a job can start from (random init)."""
    found = list(training_client(state).list_presets(family=family))
    if as_json:
        echo_json(found)
        return
    echo_table(
        ["NAME", "FAMILY", "PARAMS", "LAYERS", "HIDDEN", "VOCAB", "CONTEXT", "BACKENDS", "ABOUT"],
        (
            [
                p.name,
                p.family,
                _format_count(p.parameter_count),
                p.num_layers,
                p.hidden_size,
                p.vocab_size,
                p.context_length,
                ",".join(BACKEND_NAMES.get(b, "-") for b in p.backends) or "-",
                p.description or "-",
            ]
            for p in found
        ),
    )
