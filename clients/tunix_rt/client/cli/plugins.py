"""What other installed distributions add to `tunix-rt`, found through entry points.

The client distribution can be installed alone; it imports nothing of the servers. The services
distribution (this repository's pyproject.toml) adds two things:

- entry-point group `tunix_rt.cli`: click commands (`serve` with `registry`, `training`,
  `inference`, and `up`, from services/tunix_rt/launcher/cli.py), added to the root group under
  their own names by `state.RootGroup` when a command it lacks or the list is first asked for.
  They run under the root group like any other command: its parameters (`registry`, `token`,
  `tls_ca`, `timeout`) are on the root context, and `Context.meta` holds the resolved addresses
  under `tunix_rt.<service>.address`.
- entry-point group `tunix_rt.model_interchange`, entry `huggingface`: a class whose instances are a
  `ModelInterchange`, the conversion between registered model archives and Hugging Face directories
  that `models export|import` need (services/tunix_rt/launcher/interchange.py says why the split
  is there).

Without them `tunix-rt` has no `serve` or `up`, and `models export|import` say what is missing.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

import click

COMMANDS_GROUP = "tunix_rt.cli"
INTERCHANGE_GROUP = "tunix_rt.model_interchange"
INTERCHANGE_NAME = "huggingface"


class ModelInterchange(Protocol):
    """Registered model archives to and from Hugging Face directories. Every method raises
    ValueError, with a message fit for the user, for a directory it cannot read or convert."""

    # The content type to upload the archives of `import_hf` with.
    content_type: str

    def unpack(self, archive: Path, target: Path) -> Path:
        """The model directory of a version's artifact (a file), unpacked at `target`."""
        ...

    def adapter_base(self, model_dir: Path) -> str | None:
        """None for a full model; for a LoRA adapter the base its config names ("" if none)."""
        ...

    def export_hf(self, model_dir: Path, directory: Path, base_dir: Path | None) -> None:
        """Writes `model_dir` to `directory` as a Hugging Face directory that transformers loads
        with no tunix-rt code; an adapter is merged into the model at `base_dir`."""
        ...

    def import_hf(self, directory: Path, scratch: Path, chat_template: str | None) -> bytes:
        """The archive to register for Hugging Face `directory`, built under `scratch`; the
        ValueError of a directory it refuses names one `field: problem` per line."""
        ...


def commands() -> list[click.Command]:
    """The commands installed distributions add, by name."""
    found = [entry.load() for entry in entry_points(group=COMMANDS_GROUP)]
    for command in found:
        if not isinstance(command, click.Command):
            raise TypeError(f"entry point of {COMMANDS_GROUP} is not a click command: {command!r}")
    return sorted(found, key=lambda command: command.name or "")


def model_interchange(command: str) -> ModelInterchange:
    """The installed model interchange; a ClickException (exit code 1) naming `command` when there
    is none."""
    for entry in entry_points(group=INTERCHANGE_GROUP, name=INTERCHANGE_NAME):
        interchange: ModelInterchange = entry.load()()
        return interchange
    raise click.ClickException(
        f"{command} needs the tunix-rt services distribution (Hugging Face interchange), "
        "which is not installed here"
    )
