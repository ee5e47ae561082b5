"""`tunix-rt dashboard`: serve the web dashboard.

    tunix-rt dashboard --port 8080
    tunix-rt --registry 10.0.0.5:50051 --training 10.0.0.6:50052 --token "$T" dashboard

The command is added to `tunix-rt` through the `tunix_rt.cli` entry point (see
tunix_rt.client.cli.plugins), so the client distribution does not import the dashboard. It calls
the services with the global options of `tunix-rt`: their addresses, `--token`, `--tls-ca` and
`--timeout`.
"""

from __future__ import annotations

import click
import uvicorn

from tunix_rt.client.cli.inference import INFERENCE
from tunix_rt.client.cli.state import CliState
from tunix_rt.client.cli.training import TRAINING
from tunix_rt.dashboard.app import create_app
from tunix_rt.dashboard.connections import Settings

# Pages wait at most this long for a service when `tunix-rt --timeout` is larger: a page that
# hangs for the CLI's 30 s default reads as a dead dashboard.
PAGE_TIMEOUT_S = 10.0
# Seconds a stopping dashboard waits for open connections (live streams never end on their own).
SHUTDOWN_S = 3


@click.command("dashboard")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0: every interface; anyone who reaches it acts with "
    "the dashboard's token).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.pass_context
def dashboard(ctx: click.Context, host: str, port: int) -> None:
    """Serve the web dashboard: jobs, devices, runs with live curves, models, evaluations,
    datasets and sweeps."""
    state = ctx.find_object(CliState)
    if state is None:
        raise click.UsageError("run it as `tunix-rt dashboard`")
    settings = Settings(
        registry=state.registry_address,
        training=TRAINING.address(),
        inference=INFERENCE.address(),
        token=state.token,
        tls_ca=state.tls_ca,
        timeout=min(state.timeout or PAGE_TIMEOUT_S, PAGE_TIMEOUT_S),
    )
    click.echo(f"tunix-rt dashboard on http://{host}:{port}", err=True)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        # Open live-curve streams would otherwise hold a stopping server forever.
        timeout_graceful_shutdown=SHUTDOWN_S,
    )
