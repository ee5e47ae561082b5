"""`tunix-rt serve …`: run a tunix-rt server in the foreground until SIGTERM or Ctrl-C.

    tunix-rt serve registry --port 50051 --data-dir ./data/registry
    tunix-rt serve training --port 50052 --registry 127.0.0.1:50051 --cpu-slots 2

Servers are imported only inside their command: the client distribution ships without them, and
every other command should start without paying for SQLAlchemy or JAX imports.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import click

from tunix_rt.client.cli_state import CliState, CommandFailed


def _import_server(module: str) -> ModuleType:
    # Imported by name: server packages are optional for the client, so a missing one is a clear
    # message, not a crash at startup of every command.
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise CommandFailed(f"{module} is not installed here ({error})") from None


@click.group()
def serve() -> None:
    """Run a tunix-rt server in the foreground."""


@serve.command("registry")
@click.option(
    "--host", help="Interface to listen on. [default: $TUNIX_RT_REGISTRY_HOST or 127.0.0.1]"
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on. [default: $TUNIX_RT_REGISTRY_PORT or 50051]",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Holds the SQLite database (unless --database-url) and the artifact store. "
    "[default: $TUNIX_RT_DATA_DIR or ./data/registry]",
)
@click.option(
    "--database-url",
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. "
    "[default: $TUNIX_RT_DATABASE_URL or SQLite in --data-dir]",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics over HTTP on this port (0: any free port). "
    "[default: $TUNIX_RT_REGISTRY_METRICS_PORT or none]",
)
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
    server = _import_server("tunix_rt.registry.server")
    server.run_registry(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        metrics_port=metrics_port,
    )


@serve.command("training")
@click.option(
    "--host", help="Interface to listen on. [default: $TUNIX_RT_TRAINING_HOST or 127.0.0.1]"
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on. [default: $TUNIX_RT_TRAINING_PORT or 50052]",
)
@click.option(
    "--registry",
    metavar="ADDR",
    help="The registry that stores runs, metrics and models. "
    "[default: the global --registry, $TUNIX_RT_REGISTRY or 127.0.0.1:50051]",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Holds worker scratch space and local checkpoints. "
    "[default: $TUNIX_RT_TRAINING_DATA_DIR or ./data/training]",
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
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics over HTTP on this port (0: any free port). "
    "[default: $TUNIX_RT_TRAINING_METRICS_PORT or none]",
)
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
    root = ctx.find_root()
    state = root.find_object(CliState)
    if registry is None and state is not None:
        # `tunix-rt --registry ADDR serve training` means that registry too; left at its default
        # the server's own config decides (the same environment variable and default).
        source = root.get_parameter_source("registry")
        if source not in (None, click.core.ParameterSource.DEFAULT):
            registry = state.registry_address
    server = _import_server("tunix_rt.training.server")
    server.run_training(
        host=host,
        port=port,
        registry=registry,
        data_dir=data_dir,
        cpu_slots=cpu_slots,
        metrics_port=metrics_port,
        inference=inference,
    )
