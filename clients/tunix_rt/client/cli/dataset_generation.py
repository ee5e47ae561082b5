"""`tunix-rt datasets generate`: draw reasoning traces with tunix_rt.datagen and import them
straight into the registry as a dataset, with a manifest.

tunix-rt datasets generate --rows 20000 --seed 7 --name reasoning-20k
tunix-rt datasets generate --rows 5000 --categories arithmetic --name arith-5k -o arith.jsonl

The rows stream from the generator through the same chunked import as `tunix-rt traces import`
(source = the dataset's name), so memory stays flat for any `--rows`; then the dataset is created
from that source, with the manifest in its description.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import grpc
from tqdm import tqdm

from tunix_rt import datagen
from tunix_rt.client import names
from tunix_rt.client.chunks import Progress
from tunix_rt.client.cli.output import echo_json, to_dict
from tunix_rt.client.cli.state import CliState, CommandFailed, pass_state
from tunix_rt.client.registry import RegistryClient
from tunix_rt.datagen.manifest import description, manifest_bytes
from tunix_rt.v1 import dataset_pb2
from tunix_rt.v1 import registry_service_pb2 as pb


@dataclass
class _Generated:
    """What streaming the rows into the registry produced and measured."""

    stream: datagen.TraceStream
    tally: datagen.Tally = field(default_factory=datagen.Tally)
    # Seconds spent drawing and serializing rows, apart from the import's own time.
    generate_s: float = 0.0


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value is not None else None


@click.command("generate")
@click.option(
    "--rows", type=click.IntRange(min=1), required=True, help="How many traces to generate."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generator.")
@click.option("--families", help="Comma-separated task types (default: all 20).")
@click.option("--categories", help="Comma-separated categories, instead of --families.")
@click.option(
    "--name", required=True, help="The dataset's id; also its traces' source and meta.dataset."
)
@click.option(
    "--eval-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.0,
    show_default=True,
    help="Share of traces in the dataset's eval split (held-out evaluation is a separate set).",
)
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option(
    "--trace-format",
    type=click.Choice(datagen.FORMATS),
    default=datagen.DEFAULT_FORMAT,
    show_default=True,
    help="How steps are written: v2 (running tallies, indexed letters) or v1 (the "
    "shipped files' format). Prompts and answers are the same for a seed.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the rows to this JSONL file, and its manifest beside it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and dataset as JSON.")
@pass_state
def generate_dataset(
    state: CliState,
    rows: int,
    seed: int,
    families: str | None,
    categories: str | None,
    name: str,
    eval_fraction: float,
    split_seed: int,
    trace_format: str,
    output: Path | None,
    as_json: bool,
) -> None:
    """Generate ROWS reasoning traces and create dataset NAME of them in the registry.

    Prompts are unique until a family runs out of new ones (a few unit-conversion families have
    a few hundred), then that family's rows repeat; the manifest counts unique and repeated
    prompts per family. No prompt of the held-out eval set reasoning-eval-v1 is ever generated.
    The manifest (row count, sha256 of the JSONL, generator, seed, counts) is kept in the
    dataset's description and, with -o, beside the file.

    Nothing is imported when an argument is bad or the dataset exists. If the import is cut
    short, the traces sent so far stay under source NAME: run the same command again to store
    the rest and create the dataset.
    """
    try:
        dataset_id = names.short_id(names.dataset(name))
    except ValueError as error:  # a blank name
        raise click.BadParameter(str(error), param_hint="--name") from None
    if families is not None and categories is not None:
        raise click.UsageError("give --families or --categories, not both")
    try:
        stream = datagen.stream(
            rows,
            seed,
            _names(families),
            categories=_names(categories),
            dataset=dataset_id,
            trace_format=trace_format,
        )
    except ValueError as error:
        option = "--families" if families is not None else "--categories"
        raise click.BadParameter(str(error), param_hint=option) from None
    registry = state.registry()
    _check_name_free(registry, dataset_id)
    command = _command_line(rows, seed, families, categories, dataset_id, eval_fraction, split_seed)
    command += f" --trace-format {trace_format}"
    generated = _Generated(stream)
    started = time.perf_counter()
    with ExitStack() as cleanup:
        partial = _open_partial(cleanup, output)
        result = _import(registry, generated, dataset_id, partial)
        manifest = datagen.generated_manifest(
            name=dataset_id,
            stream=stream,
            tally=generated.tally,
            held_out={"name": datagen.DEFAULT_HELD_OUT, "prompts": len(datagen.held_out_prompts())},
            created_by=command,
            file=output.name if output is not None else None,
        )
        manifest["split"] = {"eval_fraction": eval_fraction, "seed": split_seed}
        manifest["trace_format"] = trace_format
        dataset = _create(registry, dataset_id, manifest, rows, eval_fraction, split_seed)
        if output is not None and partial is not None:
            partial.close()
            _finish_file(output, manifest, dataset)
    elapsed = time.perf_counter() - started
    if as_json:
        echo_json({"manifest": manifest, "dataset": to_dict(dataset)})
        return
    _echo_summary(generated, result, dataset, elapsed, output)


def _check_name_free(registry: RegistryClient, dataset_id: str) -> None:
    """Fails before anything is imported when the dataset exists (or the registry refuses the
    name, with its own status message)."""
    try:
        registry.get_dataset(dataset_id)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return
        raise
    raise CommandFailed(
        f"dataset {names.dataset(dataset_id)} already exists; pick another --name "
        "(or delete it with `tunix-rt datasets delete`)"
    )


def _command_line(
    rows: int,
    seed: int,
    families: str | None,
    categories: str | None,
    dataset_id: str,
    eval_fraction: float,
    split_seed: int,
) -> str:
    """The command that makes the same dataset again, for the manifest (no output file: it does
    not change what is made)."""
    args = ["tunix-rt", "datasets", "generate", "--rows", str(rows), "--seed", str(seed)]
    if families is not None:
        args += ["--families", families]
    if categories is not None:
        args += ["--categories", categories]
    args += ["--name", dataset_id, "--eval-fraction", f"{eval_fraction:g}"]
    args += ["--split-seed", str(split_seed)]
    return shlex.join(args)


def _open_partial(cleanup: ExitStack, output: Path | None) -> IO[bytes] | None:
    """`output`'s `.part` file, removed again unless the command gets to rename it."""
    if output is None:
        return None
    partial = output.with_name(output.name + ".part")
    stream = cleanup.enter_context(partial.open("wb"))
    cleanup.callback(partial.unlink, missing_ok=True)
    return stream


def _lines(generated: _Generated, partial: IO[bytes] | None, progress: Progress) -> Iterator[bytes]:
    """The rows as JSONL lines, counted and hashed by the tally, copied to `partial`."""
    rows = iter(generated.stream)
    while True:
        begin = time.perf_counter()
        trace = next(rows, None)
        line = generated.tally.line(trace) if trace is not None else b""
        generated.generate_s += time.perf_counter() - begin
        if trace is None:
            return
        if partial is not None:
            partial.write(line)
        progress(1)
        yield line


def _import(
    registry: RegistryClient, generated: _Generated, source: str, partial: IO[bytes] | None
) -> pb.ImportTracesResponse:
    """Streams the rows into the registry under `source`; fails unless every row was stored."""
    # disable=None: a bar on a terminal, silence when stderr is a pipe or a log file.
    with tqdm(total=generated.stream.n, unit="trace", desc="generate+import", disable=None) as bar:
        result = registry.import_traces(_lines(generated, partial, bar.update), source=source)
    if result.errors or result.imported_count != generated.stream.n:
        shown = "; ".join(f"line {e.line}: {e.field}: {e.message}" for e in result.errors[:3])
        raise CommandFailed(
            f"the registry stored {result.imported_count} of {generated.stream.n} generated "
            f"traces ({shown or 'no errors reported'}); no dataset was created, the stored "
            f"traces stay under source {source}"
        )
    return result


def _create(
    registry: RegistryClient,
    dataset_id: str,
    manifest: dict[str, Any],
    rows: int,
    eval_fraction: float,
    split_seed: int,
) -> dataset_pb2.Dataset:
    """The dataset of every trace of source `dataset_id`, which must be exactly the rows made."""
    summary = (
        f"{rows} generated reasoning traces, seed {manifest['seed']}, "
        f"{len(manifest['families'])} families ({manifest['generator']} "
        f"{manifest['generator_version']})"
    )
    dataset = registry.create_dataset(
        dataset_id,
        source=dataset_id,
        eval_fraction=eval_fraction,
        seed=split_seed,
        description=description(summary, manifest),
    )
    if dataset.stats.trace_count != rows:
        # The source held other traces before this run (an earlier run with other arguments):
        # a dataset of both would not be the one the manifest describes.
        registry.delete_dataset(dataset_id)
        raise CommandFailed(
            f"source {dataset_id} holds {dataset.stats.trace_count} traces, not the {rows} "
            "generated: it had traces before this run, so the dataset was not kept; delete "
            "those traces or pick another --name"
        )
    return dataset


def _finish_file(output: Path, manifest: dict[str, Any], dataset: dataset_pb2.Dataset) -> None:
    """Moves the complete JSONL into place and writes its manifest beside it, naming the
    registry dataset it was imported as."""
    output.with_name(output.name + ".part").replace(output)
    body = {**manifest, "registry_dataset": dataset.name, "content_hash": dataset.content_hash}
    manifest_path(output).write_bytes(manifest_bytes(body))


def manifest_path(output: Path) -> Path:
    """`name.manifest.json` beside `name.jsonl`, as the shipped datasets have it."""
    stem = output.name.removesuffix(".jsonl")
    return output.with_name(f"{stem}.manifest.json")


def _echo_summary(
    generated: _Generated,
    result: pb.ImportTracesResponse,
    dataset: dataset_pb2.Dataset,
    elapsed: float,
    output: Path | None,
) -> None:
    stats, tally = generated.stream.stats, generated.tally
    present = result.imported_count - result.new_count
    click.echo(
        f"generated {tally.rows} traces in {generated.generate_s:.1f} s: {stats.unique} unique "
        f"prompts, {stats.repeated} repeated; {stats.excluded_draws} draws held out "
        f"({datagen.DEFAULT_HELD_OUT})"
    )
    click.echo(
        f"imported {result.new_count} new, {present} already present; {elapsed:.1f} s in all"
    )
    counts = dataset.stats
    click.echo(
        f"created {dataset.name}: {counts.trace_count} traces (train {counts.train_count}, "
        f"eval {counts.eval_count}), content hash {dataset.content_hash}"
    )
    click.echo(f"sha256 of the JSONL: {tally.sha256}")
    if output is not None:
        click.echo(f"wrote {output} and {manifest_path(output)}")
