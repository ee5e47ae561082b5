"""`tunix-rt serve …`: run a tunix-rt server in the foreground until SIGTERM or Ctrl-C.

    tunix-rt serve registry --port 50051 --data-dir ./data/registry

Servers are imported only inside their command: the client distribution ships without them, and
every other command should start without paying for SQLAlchemy or JAX imports.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import click

from tunix_rt.client.cli_state import CommandFailed


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
