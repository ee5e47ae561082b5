"""`tunix-rt models …`: registered models, their versions and aliases.

tunix-rt models list
tunix-rt models show my-model            # the model and its versions
tunix-rt models show my-model@production # one version
tunix-rt models alias my-model production 3
tunix-rt models export my-model@production ./hf-dir   # a Hugging Face directory
tunix-rt models import ./hf-dir --name my-model --alias imported
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from tunix_rt.client import names
from tunix_rt.client.cli.output import (
    echo_fields,
    echo_json,
    echo_table,
    format_metrics,
    format_time,
    in_training_label,
    json_option,
    plain_json,
    to_dict,
)
from tunix_rt.client.cli.plugins import ModelInterchange, model_interchange
from tunix_rt.client.cli.state import CliState, pass_state
from tunix_rt.client.registry import RegistryClient
from tunix_rt.v1 import model_pb2


@click.group()
def models() -> None:
    """Registered models: list, show, move aliases, resolve references."""


def _aliases(aliases: Mapping[str, int]) -> str:
    return ", ".join(f"{a}->{v}" for a, v in sorted(aliases.items())) or "-"


@models.command("list")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: no limit."
)
@json_option
@pass_state
def list_models(state: CliState, limit: int, as_json: bool) -> None:
    """List registered models by name."""
    found = state.registry().list_models(limit=limit or None)
    if as_json:
        echo_json(list(found))
        return
    echo_table(
        ["MODEL", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"],
        (
            [
                names.short_id(m.name),
                m.latest_version or "-",
                _aliases(m.aliases),
                format_time(m.update_time),
                m.description or "-",
            ]
            for m in found
        ),
    )


@models.command("show")
@click.argument("reference")
@json_option
@pass_state
def show_model(state: CliState, reference: str, as_json: bool) -> None:
    """Show a model and its versions, or one version (`NAME@ALIAS`, `NAME/VERSION`)."""
    registry = state.registry()
    if "@" in reference or names.model_version(reference):
        version = registry.resolve(reference)
        if as_json:
            echo_json(version)
        else:
            _echo_version(version)
        return
    model = registry.get_model(reference)
    versions = list(registry.list_model_versions(model.name))
    if as_json:
        echo_json({"model": to_dict(model), "versions": [to_dict(v) for v in versions]})
        return
    echo_fields(
        [
            ("name", model.name),
            ("description", model.description or "-"),
            ("aliases", _aliases(model.aliases)),
            ("latest version", model.latest_version or "-"),
            ("created", format_time(model.create_time)),
            ("updated", format_time(model.update_time)),
        ]
    )
    click.echo()
    echo_table(
        [
            "VERSION",
            "ALIASES",
            "METRICS (eval_*: IN-TRAINING)",
            "SOURCE RUN",
            "ARTIFACT",
            "CREATED",
        ],
        (
            [
                v.version,
                ", ".join(v.aliases) or "-",
                format_metrics(v.metrics),
                v.source_run or "-",
                names.short_id(v.artifact)[:12],
                format_time(v.create_time),
            ]
            for v in versions
        ),
    )


@models.command("alias")
@click.argument("model")
@click.argument("alias")
@click.argument("version", type=click.IntRange(min=1), required=False)
@click.option("--delete", is_flag=True, help="Remove the alias instead of moving it.")
@pass_state
def alias_model(state: CliState, model: str, alias: str, version: int | None, delete: bool) -> None:
    """Point ALIAS of MODEL at VERSION (moving it atomically), or remove it with --delete."""
    if delete and version is not None:
        raise click.UsageError("--delete takes no VERSION")
    if not delete and version is None:
        raise click.UsageError("missing VERSION (or pass --delete)")
    registry = state.registry()
    if version is None:
        registry.delete_alias(model, alias)
        click.echo(f"removed {names.model(model)}@{alias}")
        return
    response = registry.set_alias(model, alias, version)
    moved = f" (was {response.previous_version})" if response.previous_version else ""
    click.echo(f"{response.model.name}@{alias} -> {version}{moved}")


@models.command("resolve")
@click.argument("reference")
@pass_state
def resolve_model(state: CliState, reference: str) -> None:
    """Print the version name a reference (`NAME@ALIAS`, `NAME/VERSION`, `NAME`) points at now."""
    click.echo(state.registry().resolve(reference).name)


def _version_metrics(version: model_pb2.ModelVersion, provenance: Any) -> list[tuple[str, str]]:
    """A version's metrics, the training service's in-training evaluation (`eval_*`) apart and
    labelled with what it was measured on (an evaluation through `tunix-rt eval` is another
    thing: `tunix-rt evaluations list --model …`)."""
    trained = {k: v for k, v in version.metrics.items() if not k.startswith("eval_")}
    evaluated = {k: v for k, v in version.metrics.items() if k.startswith("eval_")}
    count = provenance.get("eval_examples") if isinstance(provenance, dict) else None
    fields = [("metrics", format_metrics(trained))]
    if evaluated:
        fields.append((f"eval {in_training_label(count)}", format_metrics(evaluated)))
    return fields


def _echo_version(version: model_pb2.ModelVersion) -> None:
    provenance = plain_json(to_dict(version).get("provenance", {}))
    echo_fields(
        [
            ("name", version.name),
            ("aliases", ", ".join(version.aliases) or "-"),
            ("artifact", version.artifact),
            ("source run", version.source_run or "-"),
            *_version_metrics(version, provenance),
            ("description", version.description or "-"),
            ("created", format_time(version.create_time)),
            ("provenance", json.dumps(provenance, ensure_ascii=False, sort_keys=True) or "-"),
        ]
    )


def _download_dir(
    registry: RegistryClient,
    interchange: ModelInterchange,
    version: model_pb2.ModelVersion,
    target: Path,
) -> Path:
    """The version's model directory, unpacked under `target`."""
    target.mkdir(parents=True, exist_ok=True)
    tar = target / "artifact.tar"
    registry.download_artifact(version.artifact, tar)
    directory = interchange.unpack(tar, target / "model")
    tar.unlink()
    return directory


def _base_reference(base: str, version: model_pb2.ModelVersion) -> str:
    """The base model version an adapter version was trained on: the adapter's `base` when it
    names a registered version, else the training spec in the provenance."""
    if base.startswith("models/"):
        return base
    provenance = plain_json(to_dict(version).get("provenance", {}))
    from_spec = str(provenance.get("config", {}).get("base", {}).get("model_version", ""))
    if not from_spec:
        raise click.ClickException(
            f"{version.name} is a LoRA adapter but names no registered base version"
        )
    return from_spec


@models.command("export")
@click.argument("reference")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def export_model(state: CliState, reference: str, directory: Path) -> None:
    """Write version REFERENCE (`NAME@ALIAS`, `NAME/VERSION`, `NAME`) as a Hugging Face directory
    that transformers loads with no tunix-rt code (a LoRA adapter is merged into its base)."""
    interchange = model_interchange("models export")
    registry = state.registry()
    version = registry.resolve(reference)
    with tempfile.TemporaryDirectory(prefix="tunix-rt-export-") as scratch:
        model_dir = _download_dir(registry, interchange, version, Path(scratch) / "version")
        try:
            adapter_base = interchange.adapter_base(model_dir)
            base_dir = None
            if adapter_base is not None:
                base = registry.resolve(_base_reference(adapter_base, version))
                base_dir = _download_dir(registry, interchange, base, Path(scratch) / "base")
                click.echo(f"merging the adapter into {base.name}", err=True)
            interchange.export_hf(model_dir, directory, base_dir)
        except ValueError as error:  # e.g. registered before the registry checked special ids
            raise click.ClickException(f"cannot export {version.name}: {error}") from None
    click.echo(f"exported {version.name} to {directory}")


@models.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", "model", required=True, help="The registered model to add a version to.")
@click.option("--alias", "aliases", multiple=True, help="Point this alias at the new version.")
@click.option(
    "--chat-template",
    default=None,
    help="Chat template the model was trained with (default: the directory's, else plain).",
)
@click.option("--description", default="", help="The version's description.")
@pass_state
def import_model(
    state: CliState,
    directory: Path,
    model: str,
    aliases: tuple[str, ...],
    chat_template: str | None,
    description: str,
) -> None:
    """Register a Hugging Face checkpoint DIRECTORY (config.json, *.safetensors, tokenizer.json)
    as a new version of model NAME (created when missing)."""
    interchange = model_interchange("models import")
    with tempfile.TemporaryDirectory(prefix="tunix-rt-import-") as scratch:
        try:
            data = interchange.import_hf(directory, Path(scratch), chat_template)
        except ValueError as error:
            lines = "\n".join(f"  {line}" for line in str(error).splitlines())
            raise click.ClickException(f"not a valid model directory:\n{lines}") from None
    registry = state.registry()
    artifact = registry.upload_artifact(data, content_type=interchange.content_type).artifact
    version = registry.create_model_version(
        model,
        artifact.name,
        provenance={"imported_from": str(directory.resolve()), "source": "huggingface"},
        aliases=aliases,
        description=description,
    )
    click.echo(version.name)
