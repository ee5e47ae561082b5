"""`tunix-rt generate` and `tunix-rt inference …`: generate with served models, see and manage the
models in memory.

    tunix-rt generate reasoning-small@production "What is 2 + 3?" --stream --seed 1
    tunix-rt inference models                 # the models in memory, most recently used first
    tunix-rt inference load reasoning-small@production --pin

The inference service's address is the global `--inference ADDR` option ($TUNIX_RT_INFERENCE,
default 127.0.0.1:50053), kept with the click context beside the registry's CliState.
"""

from __future__ import annotations

from typing import Any

import click

from tunix_rt.client.cli.loading import LoadProgress
from tunix_rt.client.cli.output import echo_json, echo_table, format_time, json_option, to_dict
from tunix_rt.client.cli.state import CliState, ServiceOption, pass_state
from tunix_rt.client.inference import (
    BACKENDS,
    PRECISIONS,
    InferenceClient,
    sampling_params,
)
from tunix_rt.v1 import backend_pb2, inference_pb2

FINISH_NAMES = {
    inference_pb2.FINISH_REASON_LENGTH: "length",
    inference_pb2.FINISH_REASON_STOP: "stop",
    inference_pb2.FINISH_REASON_END_OF_SEQUENCE: "end of sequence",
    inference_pb2.FINISH_REASON_CONTEXT_LENGTH: "context full",
}
STATE_NAMES = {
    inference_pb2.LOADED_MODEL_STATE_LOADING: "loading",
    inference_pb2.LOADED_MODEL_STATE_READY: "ready",
    inference_pb2.LOADED_MODEL_STATE_FAILED: "failed",
    inference_pb2.LOADED_MODEL_STATE_UNLOADING: "unloading",
}
BACKEND_NAMES = {backend_pb2.BACKEND_JAX: "jax", backend_pb2.BACKEND_TORCH: "torch"}


INFERENCE = ServiceOption("inference", InferenceClient)
# The global `--inference ADDR` option of the `tunix-rt` group, its address, and the client
# connected to it on first use with the global token, CA and timeout, closed when the command ends.
inference_option = INFERENCE.option
inference_address = INFERENCE.address
inference_client = INFERENCE.client


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# generate


@click.command("generate")
@click.argument("model")
@click.argument("prompt")
@click.option("--stream", is_flag=True, help="Print the text as it is generated.")
@click.option(
    "--temperature", type=click.FloatRange(min=0), help="Sampling temperature; 0 is greedy. [0]"
)
@click.option("--top-k", type=click.IntRange(min=0), help="Sample among the k likeliest. [off]")
@click.option("--top-p", type=click.FloatRange(0, 1), help="Nucleus sampling mass. [off]")
@click.option("--max-new-tokens", type=click.IntRange(min=1), help="Most tokens to generate. [128]")
@click.option("--seed", type=int, help="Random seed; the same seed gives the same text. [random]")
@click.option("--stop", multiple=True, help="Stop before this text (repeatable).")
@click.option(
    "--max-reasoning-tokens",
    type=click.IntRange(min=0),
    help="Start the answer after this many tokens of reasoning. [no limit]",
)
@click.option("--raw", is_flag=True, help="Send the prompt as is, without the chat template.")
@json_option
@pass_state
def generate(
    state: CliState,
    model: str,
    prompt: str,
    stream: bool,
    temperature: float | None,
    top_k: int | None,
    top_p: float | None,
    max_new_tokens: int | None,
    seed: int | None,
    stop: tuple[str, ...],
    max_reasoning_tokens: int | None,
    raw: bool,
    as_json: bool,
) -> None:
    """Generate a completion of PROMPT with MODEL (name@alias, name/version, name, or a local
    checkpoint directory). The summary (finish reason, tokens, answer, seed) goes to stderr, and
    so does the loading progress of a model not in memory yet (its first use loads and compiles
    it, up to a minute or more)."""
    client = inference_client(state)
    params = sampling_params(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        stop=stop,
        seed=seed,
        max_reasoning_tokens=max_reasoning_tokens,
    )
    if not stream:
        with LoadProgress(client, model) as progress:
            response = client.generate(model, prompt, raw_prompt=raw, sampling=params)
            progress.first_output()
        if as_json:
            echo_json(response)
            return
        click.echo(response.text)
        _echo_summary(response.model_version, response.summary)
        return
    version = ""
    summary: inference_pb2.GenerationSummary | None = None
    with LoadProgress(client, model) as progress:
        for message in client.generate_stream(model, prompt, raw_prompt=raw, sampling=params):
            progress.first_output()
            version = message.model_version or version
            if as_json:
                echo_json(message)
            else:
                click.echo(message.text, nl=False)
            if message.HasField("summary"):
                summary = message.summary
    if not as_json:
        click.echo()
        if summary is not None:
            _echo_summary(version, summary)


def _echo_summary(version: str, summary: inference_pb2.GenerationSummary) -> None:
    usage = summary.usage
    parts = [
        f"model {version or '(local directory)'}",
        f"finish {FINISH_NAMES.get(summary.finish_reason, 'unknown')}",
        f"tokens {usage.prompt_tokens}+{usage.completion_tokens}",
        f"seed {summary.seed}",
        f"{summary.total_time.ToTimedelta().total_seconds():.2f}s",
    ]
    if summary.answer:
        parts.append(f"answer {summary.answer!r}")
    click.echo(" · ".join(parts), err=True)


# inference models | load | unload


@click.group("inference")
def inference() -> None:
    """The models the inference service holds in memory."""


@inference.command("models")
@json_option
@pass_state
def inference_models(state: CliState, as_json: bool) -> None:
    """List the models in memory, most recently used first, with the memory budget."""
    models, used, budget = inference_client(state).list_loaded_models()
    if as_json:
        echo_json(
            {
                "loaded_models": [_model_dict(m) for m in models],
                "memory_used_bytes": used,
                "memory_budget_bytes": budget,
            }
        )
        return
    echo_table(
        ["MODEL", "STATE", "BACKEND", "MEMORY", "REQUESTS", "PINNED", "LAST USED", "REFERENCES"],
        (
            [
                m.model_version or m.checkpoint_dir,
                STATE_NAMES.get(m.state, "-"),
                BACKEND_NAMES.get(m.backend, "-"),
                format_bytes(m.memory_bytes),
                m.request_count,
                "yes" if m.pinned else "",
                format_time(m.last_use_time),
                ", ".join(m.references),
            ]
            for m in models
        ),
    )
    click.echo(f"memory: {format_bytes(used)} of {format_bytes(budget)}", err=True)


def _model_dict(model: inference_pb2.LoadedModel) -> dict[str, Any]:
    return to_dict(model)


@inference.command("load")
@click.argument("model")
@click.option("--backend", type=click.Choice(sorted(BACKENDS)), default="auto", show_default=True)
@click.option(
    "--precision", type=click.Choice(sorted(PRECISIONS)), default="auto", show_default=True
)
@click.option("--pin", is_flag=True, help="Keep it in memory until it is unloaded.")
@json_option
@pass_state
def inference_load(
    state: CliState, model: str, backend: str, precision: str, pin: bool, as_json: bool
) -> None:
    """Load MODEL into memory (and wait until it is ready)."""
    loaded = inference_client(state).load_model(
        model, backend=backend, precision=precision, pin=pin
    )
    if as_json:
        echo_json(loaded)
        return
    click.echo(
        f"{loaded.model_version or loaded.checkpoint_dir}: {STATE_NAMES.get(loaded.state, '-')}, "
        f"{BACKEND_NAMES.get(loaded.backend, '-')}, {format_bytes(loaded.memory_bytes)}, "
        f"context {loaded.context_length}, loaded in "
        f"{loaded.load_duration.ToTimedelta().total_seconds():.1f}s"
    )


@inference.command("unload")
@click.argument("model")
@pass_state
def inference_unload(state: CliState, model: str) -> None:
    """Remove MODEL from memory."""
    unloaded = inference_client(state).unload_model(model)
    click.echo(f"unloaded {unloaded.model_version or unloaded.checkpoint_dir}")
