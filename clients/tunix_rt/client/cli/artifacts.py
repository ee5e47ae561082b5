"""`tunix-rt artifacts …`: content-addressed blobs (model weights, tokenizers) in the registry.

tunix-rt artifacts upload model.tar --content-type application/x-tar
tunix-rt artifacts download artifacts/<sha256> -o model.tar
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import click
from tqdm import tqdm

from tunix_rt.client import names
from tunix_rt.client.cli.output import echo_fields, echo_json, format_time, json_option
from tunix_rt.client.cli.state import CliState, pass_state
from tunix_rt.v1 import artifact_pb2


@click.group()
def artifacts() -> None:
    """Artifacts: upload, download, show."""


def _bar(total: int, desc: str) -> tqdm:
    # disable=None: a bar on a terminal only.
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=None)


def _echo_artifact(artifact: artifact_pb2.Artifact) -> None:
    echo_fields(
        [
            ("name", artifact.name),
            ("size", f"{artifact.size_bytes} bytes"),
            ("content type", artifact.content_type or "-"),
            ("created", format_time(artifact.create_time)),
        ]
    )


@artifacts.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--content-type", help="Media type. Default: guessed from the file name.")
@json_option
@pass_state
def upload_artifact(state: CliState, file: Path, content_type: str | None, as_json: bool) -> None:
    """Upload FILE; prints the artifact name (`artifacts/<sha256>`)."""
    kind = content_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    with _bar(file.stat().st_size, "upload") as bar:
        response = state.registry().upload_artifact(file, content_type=kind, progress=bar.update)
    if as_json:
        echo_json(response)
        return
    note = " (already stored)" if response.deduplicated else ""
    click.echo(f"{response.artifact.name}{note}")


@artifacts.command("download")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Destination file. Default: the sha256, in the current directory.",
)
@pass_state
def download_artifact(state: CliState, name: str, output: Path | None) -> None:
    """Download artifact NAME (`artifacts/<sha256>` or the sha256), verified by its hash."""
    registry = state.registry()
    full = names.artifact(name)
    dest = output or Path(names.short_id(full))
    size = registry.get_artifact(full).size_bytes
    with _bar(size, "download") as bar:
        artifact = registry.download_artifact(full, dest, progress=bar.update)
    click.echo(f"wrote {artifact.size_bytes} bytes to {dest}")


@artifacts.command("show")
@click.argument("name")
@json_option
@pass_state
def show_artifact(state: CliState, name: str, as_json: bool) -> None:
    """Show an artifact's size, type and creation time."""
    artifact = state.registry().get_artifact(name)
    if as_json:
        echo_json(artifact)
    else:
        _echo_artifact(artifact)
