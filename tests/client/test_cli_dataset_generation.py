"""`tunix-rt datasets generate` through a real registry: rows stream into the registry and
become a dataset with its manifest; the same arguments give the same hashes in another registry;
bad input is refused before anything is imported."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.support import LoopThread
from tunix_rt import datagen
from tunix_rt.client.cli import main
from tunix_rt.client.registry import RegistryClient

from .conftest import SERVER_TIMEOUT_S

CliRun = Callable[..., Result]


@pytest.fixture
def other_registry(tmp_path: Path) -> Iterator[str]:
    """A second registry with its own empty database, for comparing runs."""
    from tunix_rt.registry import server

    loop = LoopThread()
    try:
        running = loop.run(server.start_registry(data_dir=tmp_path / "other"), SERVER_TIMEOUT_S)
        try:
            yield str(running.address)
        finally:
            loop.run(running.stop(1.0), SERVER_TIMEOUT_S)
    finally:
        loop.close()


def _source_count(registry: RegistryClient, source: str) -> int:
    return sum(1 for _ in registry.list_traces(source=source, limit=None))


def _generate(address: str, *args: str | Path) -> Result:
    argv = ["--registry", address, "datasets", "generate", *(str(a) for a in args)]
    return CliRunner().invoke(main, argv)


def test_generate_imports_the_rows_and_creates_the_dataset_with_its_manifest(
    registry_address: str, other_registry: str, registry: RegistryClient, tag: str, tmp_path: Path
) -> None:
    out = tmp_path / f"{tag}.jsonl"
    args = ["--rows", "2000", "--seed", "5", "--name", tag, "--eval-fraction", "0.05"]
    result = _generate(registry_address, *args, "--split-seed", "3", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"created datasets/{tag}: 2000 traces (train 1900, eval 100)" in result.stdout
    assert "generated 2000 traces" in result.stdout and "2000 unique prompts" in result.stdout

    data = out.read_bytes()
    # The same rows as the library makes, with the dataset's name in their meta.
    assert data == datagen.to_jsonl(datagen.generate(2000, 5, dataset=tag))
    dataset = registry.get_dataset(tag)
    assert dataset.stats.trace_count == 2000
    manifest = datagen.manifest_from_description(dataset.description)
    assert manifest is not None
    assert manifest["rows"] == 2000 and manifest["seed"] == 5
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["held_out"]["name"] == "reasoning-eval-v1"
    assert manifest["held_out"]["prompts"] == 200
    assert manifest["counts"]["task_type"] == {f.task_type: 100 for f in datagen.FAMILIES}
    assert manifest["split"] == {"eval_fraction": 0.05, "seed": 3}
    assert manifest["created_by"].startswith("tunix-rt datasets generate --rows 2000 --seed 5")
    beside = json.loads((tmp_path / f"{tag}.manifest.json").read_text())
    assert beside == {
        **manifest,
        "file": out.name,
        "registry_dataset": f"datasets/{tag}",
        "content_hash": dataset.content_hash,
    }
    assert not list(tmp_path.glob("*.part"))
    assert _source_count(registry, tag) == 2000

    # The same arguments in another registry: the same rows, manifest and dataset hash.
    again = _generate(other_registry, *args, "--split-seed", "3", "--json")
    assert again.exit_code == 0, again.output
    printed = json.loads(again.stdout)
    assert printed["manifest"]["sha256"] == manifest["sha256"]
    assert printed["dataset"]["content_hash"] == dataset.content_hash
    assert {k: v for k, v in printed["manifest"].items() if k != "file"} == {
        k: v for k, v in manifest.items() if k != "file"
    }


def test_families_and_categories_pick_what_is_generated(
    cli: CliRun, registry: RegistryClient, tag: str
) -> None:
    result = cli("datasets", "generate", "--rows", "60", "--families", "addition, convert_time",
                 "--name", tag)  # fmt: skip
    assert result.exit_code == 0, result.output
    traces = list(registry.list_traces(source=tag, limit=None))
    assert len(traces) == 60
    assert {t.meta["task_type"] for t in traces} == {"addition", "convert_time"}
    assert {t.meta["dataset"] for t in traces} == {tag}

    result = cli("datasets", "generate", "--rows", "40", "--categories", "string",
                 "--name", f"{tag}-s", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)["manifest"]
    assert manifest["counts"]["category"] == {"string": 40}
    assert len(manifest["families"]) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0"], "0 is not in the range x>=1"),
        (["--rows", "-5"], "not in the range"),
        (["--rows", "10", "--families", "addition,nope"], "nope; known: addition"),
        (["--rows", "10", "--categories", "poetry"], "poetry; known: arithmetic, counting"),
        (["--rows", "10", "--families", "addition", "--categories", "string"], "not both"),
        (["--rows", "10", "--name", " "], "Invalid value for --name: an empty datasets name"),
    ],
)
def test_bad_arguments_are_usage_errors(
    cli: CliRun, registry: RegistryClient, tag: str, args: list[str], message: str
) -> None:
    result = cli("datasets", "generate", "--name", tag, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert _source_count(registry, tag) == 0


def test_a_name_in_use_or_refused_imports_nothing(
    cli: CliRun, registry: RegistryClient, tag: str
) -> None:
    assert cli("datasets", "generate", "--rows", "20", "--name", tag).exit_code == 0
    again = cli("datasets", "generate", "--rows", "30", "--seed", "9", "--name", tag)
    assert again.exit_code == 1
    assert f"dataset datasets/{tag} already exists" in again.stderr
    assert _source_count(registry, tag) == 20

    bad = cli("datasets", "generate", "--rows", "20", "--name", f"{tag} bad!")
    assert bad.exit_code == 1 and "INVALID_ARGUMENT" in bad.stderr
    assert _source_count(registry, f"{tag} bad!") == 0


def test_a_rerun_resumes_and_a_source_with_other_traces_is_refused(
    cli: CliRun, registry: RegistryClient, tag: str
) -> None:
    # As if an earlier run had stored its traces and stopped before creating the dataset.
    assert cli("datasets", "generate", "--rows", "20", "--name", tag).exit_code == 0
    registry.delete_dataset(tag)
    resumed = cli("datasets", "generate", "--rows", "20", "--name", tag)
    assert resumed.exit_code == 0, resumed.output
    assert "imported 0 new, 20 already present" in resumed.stdout
    assert registry.get_dataset(tag).stats.trace_count == 20

    # Other arguments under the same source would mix two generations: refused, not kept.
    registry.delete_dataset(tag)
    mixed = cli("datasets", "generate", "--rows", "20", "--seed", "1", "--name", tag)
    assert mixed.exit_code == 1
    assert f"source {tag} holds 40 traces, not the 20 generated" in mixed.stderr
    assert tag not in {d.name.split("/")[-1] for d in registry.list_datasets(limit=None)}
