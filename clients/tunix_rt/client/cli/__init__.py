"""The `tunix-rt` command line: use the services (and, with the services installed, run them).

    tunix-rt --help
    tunix-rt serve registry --data-dir ./data/registry
    tunix-rt traces import traces.jsonl
    python -m tunix_rt.client.cli --help    # the same, without the installed entry point

Each command group lives in its own module of this package and is added below; `state` holds what
they share (global options, clients, errors), `output` how they print. Commands that run servers
(`serve`, `up`) are not here: the services distribution adds them through an entry point
(`plugins`), and the root group (`state.RootGroup`) adds them when first needed. Exit codes:
0 success, 1 failure (an RPC error or bad input data), 2 bad usage.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import click

from tunix_rt.client.channel import DEFAULT_REGISTRY_ADDRESS, REGISTRY_ENV, TLS_CA_ENV, TOKEN_ENV
from tunix_rt.client.cli.artifacts import artifacts
from tunix_rt.client.cli.dataset_generation import generate_dataset
from tunix_rt.client.cli.datasets import datasets
from tunix_rt.client.cli.evaluate import eval_command, evalsets, predict
from tunix_rt.client.cli.evaluations import evaluations, leaderboard
from tunix_rt.client.cli.inference import generate, inference, inference_option
from tunix_rt.client.cli.jobs import jobs
from tunix_rt.client.cli.models import models
from tunix_rt.client.cli.runs import runs
from tunix_rt.client.cli.state import REGISTRY_ADDRESS_KEY, CliState, RootGroup, registry_address
from tunix_rt.client.cli.sweeps import sweep
from tunix_rt.client.cli.traces import traces
from tunix_rt.client.cli.training import devices, presets, train, training_option
from tunix_rt.client.registry import DEFAULT_TIMEOUT_S


def _version() -> str:
    # From the installed distribution; a source checkout run via PYTHONPATH has none.
    try:
        return metadata.version("tunix-rt")
    except metadata.PackageNotFoundError:
        return "(not installed)"


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--registry",
    "registry",
    envvar=REGISTRY_ENV,
    default=DEFAULT_REGISTRY_ADDRESS,
    show_default=True,
    show_envvar=True,
    metavar="ADDR",
    help="Registry address, host:port.",
)
@training_option
@inference_option
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    show_envvar=True,
    help="Bearer token sent with every call.",
)
@click.option(
    "--tls-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar=TLS_CA_ENV,
    show_envvar=True,
    help="PEM root certificates; connect with TLS.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Deadline of each call in seconds (streams have none).",
)
@click.version_option(version=_version(), message="%(prog)s %(version)s")
@click.pass_context
def main(
    ctx: click.Context, registry: str, token: str | None, tls_ca: Path | None, timeout: float
) -> None:
    """tunix-rt: reasoning traces to fine-tuned, evaluated, registered models."""
    ctx.obj = CliState(
        registry_address=registry_address(registry),
        token=token or None,
        tls_ca=tls_ca,
        timeout=timeout,
    )
    # For commands added by other distributions, which cannot import CliState (see plugins).
    ctx.meta[REGISTRY_ADDRESS_KEY] = ctx.obj.registry_address


for command in (traces, datasets, models, runs, artifacts, evaluations, leaderboard):
    main.add_command(command)
datasets.add_command(generate_dataset)
for command in (train, jobs, devices, presets, sweep):
    main.add_command(command)
for command in (generate, inference, evalsets, predict, eval_command):
    main.add_command(command)
