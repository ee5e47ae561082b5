"""`tunix-rt serve …`: run a tunix-rt server in the foreground until SIGTERM or Ctrl-C.

    tunix-rt serve registry --port 50051 --data-dir ./data/registry
    tunix-rt serve training --port 50052 --registry 127.0.0.1:50051 --cpu-slots 2

Servers are imported only inside their command: the client distribution ships without them, and
every other command should start without paying for SQLAlchemy or JAX imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import click

from tunix_rt.client.cli_state import CliState, CommandFailed

F = TypeVar("F", bound=Callable[..., Any])


def import_server(module: str) -> ModuleType:
    # Imported by name: server packages are optional for the client, so a missing one is a clear
    # message, not a crash at startup of every command.
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise CommandFailed(f"{module} is not installed here ({error})") from None


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
    root = ctx.find_root()
    state = root.find_object(CliState)
    if registry is None and state is not None:
        source = root.get_parameter_source("registry")
        if source not in (None, click.core.ParameterSource.DEFAULT):
            registry = state.registry_address
    return registry


@click.group()
def serve() -> None:
    """Run a tunix-rt server in the foreground."""


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
@metrics_port_option("TUNIX_RT_REGISTRY_METRICS_PORT")
def serve_registry(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    database_url: str | None,
    metrics_port: int | None,
) -> None:
    """Run the registry: traces, datasets, runs, models, artifacts, evaluations."""
    # Unset options stay None: the server's own config applies the environment and defaults,
    # so `tunix-rt serve` and a server started any other way behave the same.
    server = import_server("tunix_rt.registry.server")
    server.run_registry(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        metrics_port=metrics_port,
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
    metrics_port: int | None,
) -> None:
    """Run the training service: devices, the job queue, workers, live metrics."""
    server = import_server("tunix_rt.training.server")
    server.run_training(
        host=host,
        port=port,
        registry=global_registry(ctx, registry),
        data_dir=data_dir,
        cpu_slots=cpu_slots,
        metrics_port=metrics_port,
        inference=inference,
    )
