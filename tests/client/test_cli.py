"""The `tunix-rt` CLI against a real registry server: what users see, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from tunix_rt.client.registry import RegistryClient
from tunix_rt.v1 import model_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

from .sample_traces import good_lines, lines_with_bad, write_jsonl

# The `cli` fixture: runs `tunix-rt --registry ADDR ARGS…` and returns click's Result.
CliRun = Callable[..., Result]


def _import_good(cli: CliRun, tmp_path: Path, tag: str, count: int = 6) -> None:
    path = write_jsonl(tmp_path / f"{tag}.jsonl", good_lines(count, tag))
    result = cli("traces", "import", path, "--source", tag)
    assert result.exit_code == 0, result.output
    assert f"imported {count} of {count} traces" in result.stdout


def test_import_with_bad_lines_exits_1_naming_each_line(
    cli: CliRun, tmp_path: Path, tag: str
) -> None:
    lines, bad = lines_with_bad(tag)
    result = cli("traces", "import", write_jsonl(tmp_path / "bad.jsonl", lines), "--source", tag)
    assert result.exit_code == 1
    assert "imported 3 of 5 traces; 2 bad line(s)" in result.stdout
    reported = {
        int(line.split(":")[0].removeprefix("line ")) for line in result.stderr.splitlines()
    }
    assert reported == bad
    assert "Traceback" not in result.output


def test_a_line_with_several_errors_counts_as_one_bad_line(
    cli: CliRun, tmp_path: Path, tag: str
) -> None:
    lines = good_lines(2, tag)
    twice_wrong = json.loads(lines[0])
    twice_wrong["prompt"] = ""  # one rule
    twice_wrong["final_answer"] = ""  # and another
    lines.append(json.dumps(twice_wrong))
    result = cli("traces", "import", write_jsonl(tmp_path / "bad.jsonl", lines), "--source", tag)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) >= 2  # both errors, each naming line 3
    assert all(line.startswith("line 3:") for line in result.stderr.splitlines())
    assert "imported 2 of 3 traces; 1 bad line(s)" in result.stdout


def test_atomic_import_with_bad_lines_stores_nothing(cli: CliRun, tmp_path: Path, tag: str) -> None:
    lines, _ = lines_with_bad(tag)
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    result = cli("traces", "import", path, "--atomic", "--source", tag)
    assert result.exit_code == 1 and "nothing stored" in result.stdout
    listed = cli("traces", "list", "--source", tag, "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_import_source_defaults_to_the_file_name(cli: CliRun, tmp_path: Path, tag: str) -> None:
    path = write_jsonl(tmp_path / f"{tag}.jsonl", good_lines(2, tag))
    assert cli("traces", "import", path).exit_code == 0
    listed = json.loads(cli("traces", "list", "--source", path.name, "--json").stdout)
    assert len(listed) == 2


def test_traces_list_show_delete(cli: CliRun, tmp_path: Path, tag: str) -> None:
    _import_good(cli, tmp_path, tag, 4)
    table = cli("traces", "list", "--source", tag, "--limit", "3")
    assert table.exit_code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["ID", "SOURCE", "STEPS"] and len(rows) == 3
    listed = json.loads(
        cli("traces", "list", "--source", tag, "--meta", "index=1", "--json").stdout
    )
    (trace,) = listed
    trace_id = trace["name"].removeprefix("traces/")
    shown = cli("traces", "show", trace_id)
    assert shown.exit_code == 0 and "1. [calculation] 1 + 1 = 2" in shown.stdout
    assert cli("traces", "delete", trace_id).exit_code == 0
    gone = cli("traces", "show", trace["name"])
    assert gone.exit_code == 1 and gone.stderr.startswith("Error: NOT_FOUND")


def test_datasets_create_show_list_export(cli: CliRun, tmp_path: Path, tag: str) -> None:
    _import_good(cli, tmp_path, tag, 10)
    created = cli(
        "datasets", "create", tag, "--source", tag, "--eval-fraction", "0.2", "--seed", "5"
    )
    assert created.exit_code == 0, created.output
    assert f"datasets/{tag}" in created.stdout and "content hash" in created.stdout
    shown = cli("datasets", "show", f"datasets/{tag}")
    assert shown.exit_code == 0
    for text in ("traces:", "10 (train", "steps per trace", "STEP TYPE", "calculation", "CATEGORY"):
        assert text in shown.stdout
    data = json.loads(cli("datasets", "show", tag, "--json").stdout)
    assert data["stats"]["trace_count"] == "10"  # int64 in the JSON mapping is a string
    assert tag in cli("datasets", "list", "--limit", "0").stdout

    out = tmp_path / "export.jsonl"
    exported = cli("datasets", "export", tag, "-o", out)
    assert exported.exit_code == 0 and "wrote 10 records" in exported.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 10 and set(rows[0]) == {
        "trace_version",
        "prompt",
        "steps",
        "final_answer",
        "meta",
    }
    # A raw export is importable as it is, numbers in meta included.
    assert rows[0]["meta"]["index"] == int(rows[0]["meta"]["index"])
    again = cli("traces", "import", out, "--source", f"{tag}-again")
    assert again.exit_code == 0 and "imported 10 of 10" in again.stdout

    sft = cli(
        "datasets", "export", tag, "--split", "eval", "--format", "sft", "--chat-template", "chatml"
    )
    assert sft.exit_code == 0
    examples = [json.loads(line) for line in sft.stdout.splitlines()]
    assert examples and len(examples) == int(data["stats"]["eval_count"])
    assert all(e["split"] == "eval" and "Answer:" in e["target"] for e in examples)


def test_create_from_named_traces(cli: CliRun, tmp_path: Path, tag: str) -> None:
    _import_good(cli, tmp_path, tag, 3)
    names = [t["name"] for t in json.loads(cli("traces", "list", "--source", tag, "--json").stdout)]
    args = [arg for name in names for arg in ("--trace", name)]
    result = cli("datasets", "create", tag, *args, "--eval-fraction", "0", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stats"]["trace_count"] == "3"


def test_missing_dataset_is_exit_1_with_the_code(cli: CliRun, tag: str) -> None:
    result = cli("datasets", "show", tag)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: NOT_FOUND:") and "Traceback" not in result.output


def test_models_list_show_alias(cli: CliRun, registry: RegistryClient, tag: str) -> None:
    artifact = registry.upload_artifact(tag.encode()).artifact.name
    for _ in range(2):
        registry.stub.CreateModelVersion(
            pb.CreateModelVersionRequest(
                parent=f"models/{tag}",
                model_version=model_pb2.ModelVersion(artifact=artifact, metrics={"loss": 1.5}),
            ),
            timeout=30,
        )
    assert tag in cli("models", "list", "--limit", "0").stdout
    moved = cli("models", "alias", tag, "production", "1")
    assert moved.exit_code == 0 and f"models/{tag}@production -> 1" in moved.stdout
    shown = cli("models", "show", tag)
    assert shown.exit_code == 0 and "production->1" in shown.stdout and "loss=1.5" in shown.stdout
    version = json.loads(cli("models", "show", f"{tag}@production", "--json").stdout)
    assert version["name"] == f"models/{tag}/versions/1"
    assert cli("models", "alias", tag, "production", "2").stdout.strip().endswith("(was 1)")
    assert cli("models", "alias", tag, "production", "--delete").exit_code == 0
    assert cli("models", "show", f"{tag}@production").exit_code == 1


def test_artifacts_upload_and_download(cli: CliRun, tmp_path: Path, tag: str) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(tag.encode() * 1000)
    uploaded = cli("artifacts", "upload", source)
    assert uploaded.exit_code == 0
    name = uploaded.stdout.strip()
    assert name.startswith("artifacts/")
    assert "(already stored)" in cli("artifacts", "upload", source).stdout
    dest = tmp_path / "copy.bin"
    downloaded = cli("artifacts", "download", name, "-o", dest)
    assert downloaded.exit_code == 0 and dest.read_bytes() == source.read_bytes()


def test_leaderboard(cli: CliRun, registry: RegistryClient, tmp_path: Path, tag: str) -> None:
    _import_good(cli, tmp_path, tag, 4)
    assert cli("datasets", "create", tag, "--source", tag).exit_code == 0
    artifact = registry.upload_artifact(tag.encode()).artifact.name
    for score in (0.4, 0.9):
        response: pb.CreateModelVersionResponse = registry.stub.CreateModelVersion(
            pb.CreateModelVersionRequest(
                parent=f"models/{tag}", model_version=model_pb2.ModelVersion(artifact=artifact)
            ),
            timeout=30,
        )
        registry.stub.CreateEvaluation(
            pb.CreateEvaluationRequest(
                evaluation={
                    "model_version": response.model_version.name,
                    "dataset": f"datasets/{tag}",
                    "metrics": {"answer_accuracy": score},
                }
            ),
            timeout=30,
        )
    board = cli("leaderboard", "--dataset", tag, "--metric", "answer_accuracy")
    assert board.exit_code == 0, board.output
    _header, first, second = board.stdout.splitlines()
    assert first.split()[:3] == ["1", f"{tag}/versions/2", "0.9"]
    assert second.split()[:3] == ["2", f"{tag}/versions/1", "0.4"]
    assert _header.split()[:4] == ["RANK", "MODEL", "VERSION", "ANSWER_ACCURACY"]
    assert "ITEMS" in _header


def test_evaluation_and_in_training_accuracies_are_named_apart(
    cli: CliRun, registry: RegistryClient, tmp_path: Path, tag: str
) -> None:
    """A version's in-training `eval_*` metrics and an evaluation's answer accuracy each say
    what they were measured on; an evaluation's per-category results are a table."""
    _import_good(cli, tmp_path, tag, 4)
    assert cli("datasets", "create", tag, "--source", tag).exit_code == 0
    artifact = registry.upload_artifact(tag.encode()).artifact.name
    version = registry.stub.CreateModelVersion(
        pb.CreateModelVersionRequest(
            parent=f"models/{tag}",
            model_version=model_pb2.ModelVersion(
                artifact=artifact,
                metrics={"loss": 1.25, "eval_answer_accuracy": 0.078},
                provenance={"eval_examples": 64},
            ),
        ),
        timeout=30,
    ).model_version
    shown = cli("models", "show", f"{tag}/1")
    assert shown.exit_code == 0, shown.output
    assert "eval (in-training, 64 examples): eval_answer_accuracy=0.078" in shown.stdout
    assert "metrics:" in shown.stdout and "loss=1.25" in shown.stdout
    evaluation = registry.stub.CreateEvaluation(
        pb.CreateEvaluationRequest(
            evaluation={
                "model_version": version.name,
                "dataset": f"datasets/{tag}",
                "metrics": {
                    "answer_accuracy": 0.07,
                    "answer_accuracy/category=arithmetic": 0.0,
                    "answer_accuracy/category=counting": 0.18,
                    "answer_accuracy/difficulty=easy": 0.1,
                },
            }
        ),
        timeout=30,
    ).evaluation
    shown = cli("evaluations", "show", evaluation.name)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert any(line.startswith("answer accuracy (") and "0.07" in line for line in lines)
    assert "category=" not in shown.stdout  # the breakdown is a table, not one long line
    header = next(i for i, line in enumerate(lines) if line.startswith("BY "))
    assert lines[header].split() == ["BY", "VALUE", "ANSWER_ACCURACY"]
    assert [line.split() for line in lines[header + 1 : header + 4]] == [
        ["category", "arithmetic", "0"],
        ["category", "counting", "0.18"],
        ["difficulty", "easy", "0.1"],
    ]
