"""`tunix-rt serve …`: run a tunix-rt server in the foreground until SIGTERM or Ctrl-C.

    tunix-rt serve registry --port 50051 --data-dir ./tunix-rt-data

Servers are imported only inside their command: the client distribution ships without them, and
every other command should start without paying for SQLAlchemy or JAX imports.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import click

from tunix_rt.client.cli_state import CommandFailed

DEFAULT_DATA_DIR = Path("tunix-rt-data")


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
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=50051, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TUNIX_RT_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Holds the SQLite database (unless --database-url) and the artifact store.",
)
@click.option(
    "--database-url",
    envvar="TUNIX_RT_DATABASE_URL",
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. Default: SQLite in --data-dir.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="TUNIX_RT_METRICS_PORT",
    help="Serve Prometheus metrics over HTTP on this port.",
)
def serve_registry(
    host: str, port: int, data_dir: Path, database_url: str | None, metrics_port: int | None
) -> None:
    """Run the registry: traces, datasets, runs, models, artifacts, evaluations."""
    server = _import_server("tunix_rt.registry.server")
    server.run_registry(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        metrics_port=metrics_port,
    )
