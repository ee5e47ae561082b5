"""The services' commands of `tunix-rt`: `serve registry|training|inference` (one server in the
foreground until SIGTERM or Ctrl-C) and `up` (all three in one process).

    tunix-rt serve registry --port 50051 --data-dir ./data/registry
    tunix-rt serve training --port 50052 --registry 127.0.0.1:50051 --cpu-slots 2
    tunix-rt serve inference --registry 127.0.0.1:50051 --memory-budget 4GiB
    tunix-rt up                               # registry, training and inference in one process

The client distribution's `tunix-rt` knows nothing of servers: this module contributes `serve` and
`up` to it through the `tunix_rt.cli` entry-point group (pyproject.toml), which the client's root
group reads at startup (`tunix_rt.client.cli.plugins`). So this module never imports
`tunix_rt.client`; what it needs from the root group is click's own: the root's `registry`
parameter and its source, and the resolved address the root keeps in `Context.meta` under
`tunix_rt.registry.address`.

The CLI imports this module on every run, so it imports only click: each command imports its server
(SQLAlchemy, JAX) when it runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

F = TypeVar("F", bound=Callable[..., Any])

# Where the client's root group keeps the registry address it resolved from its `--registry`.
REGISTRY_ADDRESS_KEY = "tunix_rt.registry.address"


def listen_options(env_prefix: str, port: int) -> Callable[[F], F]:
    """`--host` and `--port` of a server whose config reads `$<env_prefix>_HOST` and `_PORT`."""
    host_option = click.option(
        "--host", help=f"Interface to listen on. [default: ${env_prefix}_HOST or 127.0.0.1]"
    )
    port_option = click.option(
        "--port",
        type=click.IntRange(0, 65535),
        help=f"Port to listen on. [default: ${env_prefix}_PORT or {port}]",
    )
    return lambda function: host_option(port_option(function))


def data_dir_option(purpose: str) -> Callable[[F], F]:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), help=purpose
    )


def registry_option(purpose: str) -> Callable[[F], F]:
    """`--registry ADDR` of a server that calls the registry; see `global_registry`."""
    return click.option(
        "--registry",
        metavar="ADDR",
        help=f"{purpose} [default: the global --registry, $TUNIX_RT_REGISTRY or 127.0.0.1:50051]",
    )


def metrics_port_option(env_var: str) -> Callable[[F], F]:
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        help="Serve Prometheus metrics over HTTP on this port (0: any free port). "
        f"[default: ${env_var} or none]",
    )


def global_registry(ctx: click.Context, registry: str | None) -> str | None:
    """The registry a server calls: its own `--registry`, else the global one when it was given.

    `tunix-rt --registry ADDR serve training` means that registry too; left at its default the
    server's own config decides (the same environment variable and default)."""
    if registry is not None:
        return registry
    root = ctx.find_root()
    if root.get_parameter_source("registry") in (None, ParameterSource.DEFAULT):
        return None
    given: str | None = root.meta.get(REGISTRY_ADDRESS_KEY) or root.params.get("registry")
    return given


@click.group()
def serve() -> None:
    """Run a tunix-rt server in the foreground."""


@serve.command(
    "dashboard",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def serve_dashboard(arguments: tuple[str, ...]) -> None:
    """The web dashboard beside the services: runs `tunix-rt dashboard ARGUMENTS` (for example
    `--port 8080 --host 127.0.0.1`; see `tunix-rt dashboard --help`), with the options given
    before `serve` (--registry, --training, --inference, --token, --tls-ca)."""
    # The dashboard is a client and service code imports no client code, so this replaces the
    # process with that command (signals then reach the dashboard itself). `--help` is this
    # command's own: a help listing must never replace the process that asked for it.
    # The root's options are exactly what came before `serve` on the command line (some of them
    # keep their values in the context's meta rather than its params).
    argv = sys.argv[1:]
    forwarded = argv[: argv.index("serve")] if "serve" in argv else []
    command = [sys.executable, "-m", "tunix_rt.client.cli", *forwarded, "dashboard", *arguments]
    os.execv(sys.executable, command)


@serve.command("registry")
@listen_options("TUNIX_RT_REGISTRY", 50051)
@data_dir_option(
    "Holds the SQLite database (unless --database-url) and the artifact store. "
    "[default: $TUNIX_RT_DATA_DIR or ./data/registry]"
)
@click.option(
    "--database-url",
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. "
    "[default: $TUNIX_RT_DATABASE_URL or SQLite in --data-dir]",
)
@click.option(
    "--max-artifact-bytes",
    type=click.IntRange(min=1),
    help="Refuse artifact uploads larger than this (RESOURCE_EXHAUSTED, nothing stored). "
    "[default: $TUNIX_RT_MAX_ARTIFACT_BYTES or 4 GiB]",
)
@metrics_port_option("TUNIX_RT_REGISTRY_METRICS_PORT")
def serve_registry(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    max_artifact_bytes: int | None,
    metrics_port: int | None,
) -> None:
    """Run the registry: traces, datasets, runs, models, artifacts, evaluations."""
    from tunix_rt.registry.server import run_registry

    # Unset options stay None: the server's own config applies the environment and defaults,
    # so `tunix-rt serve` and a server started any other way behave the same.
    run_registry(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        metrics_port=metrics_port,
        max_artifact_bytes=max_artifact_bytes,
    )


@serve.command("training")
@listen_options("TUNIX_RT_TRAINING", 50052)
@registry_option("The registry that stores runs, metrics and models.")
@data_dir_option(
    "Holds worker scratch space and local checkpoints. "
    "[default: $TUNIX_RT_TRAINING_DATA_DIR or ./data/training]"
)
@click.option(
    "--cpu-slots",
    type=click.IntRange(min=1),
    help="How many CPU devices to offer jobs, each a share of the host's cores. "
    "[default: $TUNIX_RT_CPU_SLOTS or 1]",
)
@click.option(
    "--inference",
    metavar="ADDR",
    help="The inference service that evaluates jobs on completion. "
    "[default: $TUNIX_RT_INFERENCE or none]",
)
@click.option(
    "--ray",
    metavar="ADDRESS",
    help="Run jobs on this Ray cluster's nodes (host:port of its head), or `auto` to start a "
    "one-node Ray head here. [default: $TUNIX_RT_RAY or none: worker processes on this host]",
)
@click.option(
    "--checkpoint-uri",
    metavar="URI",
    help="Where workers copy every checkpoint (an fsspec URI: file:///shared/dir, s3://bucket/p), "
    "so a job resumes on any node. [default: $TUNIX_RT_CHECKPOINT_URI or none]",
)
@metrics_port_option("TUNIX_RT_TRAINING_METRICS_PORT")
@click.pass_context
def serve_training(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    registry: str | None,
    data_dir: Path | None,
    cpu_slots: int | None,
    inference: str | None,
    ray: str | None,
    checkpoint_uri: str | None,
    metrics_port: int | None,
) -> None:
    """Run the training service: devices, the job queue, workers, live metrics."""
    from tunix_rt.training.server import run_training

    run_training(
        host=host,
        port=port,
        registry=global_registry(ctx, registry),
        data_dir=data_dir,
        cpu_slots=cpu_slots,
        metrics_port=metrics_port,
        inference=inference,
        ray=ray,
        checkpoint_uri=checkpoint_uri,
    )


@serve.command("inference")
@listen_options("TUNIX_RT_INFERENCE", 50053)
@registry_option("The registry that holds the models.")
@data_dir_option(
    "Holds the local cache of model weights. "
    "[default: $TUNIX_RT_INFERENCE_DATA_DIR or ./data/inference]"
)
@click.option(
    "--memory-budget",
    metavar="SIZE",
    help="Memory the models in memory may take, e.g. 4GiB or 512MiB. "
    "[default: $TUNIX_RT_INFERENCE_MEMORY_BUDGET or 4GiB]",
)
@click.option(
    "--warmup-batch",
    type=click.IntRange(min=0),
    help="Compile batch sizes up to this while a model loads, so concurrent requests never "
    "wait for compilation (0: compile on first use). [default: 16]",
)
@metrics_port_option("TUNIX_RT_INFERENCE_METRICS_PORT")
@click.pass_context
def serve_inference(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    registry: str | None,
    data_dir: Path | None,
    memory_budget: str | None,
    warmup_batch: int | None,
    metrics_port: int | None,
) -> None:
    """Run the inference service: generation, the Open Inference Protocol, evaluation."""
    from tunix_rt.common.config import ConfigError
    from tunix_rt.inference.server import run_inference

    try:
        run_inference(
            host=host,
            port=port,
            registry=global_registry(ctx, registry),
            data_dir=data_dir,
            memory_budget=memory_budget,
            metrics_port=metrics_port,
            warmup_batch=warmup_batch,
        )
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None


@click.command("up")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Holds registry/, training/ and inference/.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--registry-port", type=click.IntRange(0, 65535), default=50051, show_default=True)
@click.option("--training-port", type=click.IntRange(0, 65535), default=50052, show_default=True)
@click.option("--inference-port", type=click.IntRange(0, 65535), default=50053, show_default=True)
@click.option("--cpu-slots", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--memory-budget", metavar="SIZE", default="4GiB", show_default=True)
@click.option(
    "--dashboard-port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Also serve the web dashboard (`tunix-rt dashboard`) on this port; 0: do not.",
)
def up(
    data_dir: Path,
    host: str,
    registry_port: int,
    training_port: int,
    inference_port: int,
    cpu_slots: int,
    memory_budget: str,
    dashboard_port: int,
) -> None:
    """Run the registry (SQLite), training (CPU) and inference services together on the embedded
    defaults until Ctrl-C or SIGTERM, for local use."""
    from tunix_rt.common.config import ConfigError
    from tunix_rt.launcher.up import parse_size, run_all

    try:
        budget = parse_size(memory_budget)
    except ConfigError as error:
        raise click.BadParameter(str(error), param_hint="--memory-budget") from None
    asyncio.run(
        run_all(
            data_dir=data_dir,
            host=host,
            ports=(registry_port, training_port, inference_port),
            cpu_slots=cpu_slots,
            memory_budget_bytes=budget,
            announce=lambda line: click.echo(line),
            dashboard_port=dashboard_port,
        )
    )
