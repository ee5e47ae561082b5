"""BatchPredict and Evaluate through real registry and inference servers on loopback: items from
a dataset split and from an eval set imported with the CLI, progress while it runs, evaluations
recorded with per-item results and on the leaderboard, and the regression gate passing and failing
(recorded on the evaluation; the CLI exits non-zero)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.rpc import code_pb2

from tests.inference.conftest import JAX_WARNINGS, MINI, make_model_dir, register_model
from tests.support import LoopThread
from tunix_rt.client.cli import main
from tunix_rt.inference.server import RunningInference, start_inference
from tunix_rt.registry.server import RunningRegistry, start_registry
from tunix_rt.v1 import (
    dataset_pb2,
    eval_set_pb2,
    evaluation_pb2,
    inference_pb2,
    inference_service_pb2,
    inference_service_pb2_grpc,
    registry_service_pb2_grpc,
    regression_gate_pb2,
)
from tunix_rt.v1 import registry_service_pb2 as rpb

# The shipped eval set (datasets/README.md, "Eval-set files"), as a user would import it.
EVAL_SET_FILE = Path(__file__).resolve().parents[2] / "datasets" / "reasoning-evalset-v1.jsonl"
SAMPLING = inference_pb2.SamplingParams(max_new_tokens=12, seed=0)

pytestmark = JAX_WARNINGS


@dataclass
class Servers:
    loop: LoopThread
    registry: RunningRegistry
    inference: RunningInference
    registry_stub: Any
    inference_stub: Any
    dataset: str
    model: str  # `models/{id}`
    versions: list[str]  # two random-weight versions; version 1 is `production`


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    loop = LoopThread()
    data_dir = tmp_path_factory.mktemp("eval")
    registry = loop.run(start_registry(data_dir=data_dir / "registry"))
    inference = loop.run(
        start_inference(registry_address=registry.address, data_dir=data_dir / "inference")
    )
    new_registry: Any = registry_service_pb2_grpc.RegistryServiceStub
    new_inference: Any = inference_service_pb2_grpc.InferenceServiceStub
    registry_channel = grpc.insecure_channel(registry.address)
    inference_channel = grpc.insecure_channel(inference.address)
    registry_stub = new_registry(registry_channel)
    registry_stub.ImportTraces(
        iter(
            [
                rpb.ImportTracesRequest(
                    options=rpb.ImportOptions(source="mini"), data=MINI.read_bytes()
                )
            ]
        )
    )
    dataset = registry_stub.CreateDataset(
        rpb.CreateDatasetRequest(
            dataset_id="mini", filter={"source": "mini"}, split={"eval_fraction": 0.2, "seed": 0}
        )
    ).dataset.name
    versions = [
        register_model(
            registry_stub, make_model_dir(data_dir / f"m{n}", seed=n), "tiny", aliases
        ).name
        for n, aliases in ((1, ("production",)), (2, ()))
    ]
    yield Servers(
        loop,
        registry,
        inference,
        registry_stub,
        new_inference(inference_channel),
        dataset,
        "models/tiny",
        versions,
    )
    registry_channel.close()
    inference_channel.close()
    loop.run(inference.stop(0))
    loop.run(registry.stop(0))
    loop.close()


def dataset_source(servers: Servers, max_items: int = 6) -> inference_pb2.ItemSource:
    return inference_pb2.ItemSource(
        dataset=inference_pb2.DatasetSplitSource(dataset=servers.dataset), max_items=max_items
    )


def run_evaluate(servers: Servers, **fields: Any) -> list[inference_service_pb2.EvaluateResponse]:
    fields.setdefault("sampling", SAMPLING)
    request = inference_service_pb2.EvaluateRequest(**fields)
    return list(servers.inference_stub.Evaluate(request, timeout=300))


def cli(servers: Servers, *args: str) -> Any:
    return CliRunner().invoke(
        main,
        ["--registry", servers.registry.address, *args],
        env={"TUNIX_RT_INFERENCE": servers.inference.address},
    )


def all_items(stub: Any, evaluation: str) -> list[evaluation_pb2.EvaluationItem]:
    return list(
        stub.ListEvaluationItems(
            rpb.ListEvaluationItemsRequest(evaluation=evaluation, page_size=1000)
        ).items
    )


def test_batch_predict_streams_every_item(servers: Servers) -> None:
    responses = list(
        servers.inference_stub.BatchPredict(
            inference_service_pb2.BatchPredictRequest(
                model=servers.versions[0], source=dataset_source(servers, 5), sampling=SAMPLING
            ),
            timeout=300,
        )
    )
    assert sorted(r.prediction.index for r in responses) == list(range(5))
    assert {r.total_count for r in responses} == {5}
    assert {r.model_version for r in responses} == {servers.versions[0]}
    for r in responses:
        item = r.prediction.item
        assert item.item_id.startswith("traces/") and item.prompt and item.expected
        assert dict(item.meta)["split"] == "eval"
        assert r.prediction.summary.usage.completion_tokens > 0


def test_an_item_too_long_for_the_context_fails_alone(servers: Servers) -> None:
    # 100,000 chars (the most an eval set item holds) cannot fit 512 tokens: refused by its
    # length, without tokenizing it, like a prompt of Generate (issue 10, finding 6).
    items = [
        eval_set_pb2.EvalSetItem(item_id="long", prompt="x" * 100_000, expected_answer="1"),
        eval_set_pb2.EvalSetItem(item_id="short", prompt="What is 2 + 3?", expected_answer="5"),
    ]
    servers.registry_stub.CreateEvalSet(
        rpb.CreateEvalSetRequest(eval_set_id="too-long", items=items)
    )
    responses = list(
        servers.inference_stub.BatchPredict(
            inference_service_pb2.BatchPredictRequest(
                model=servers.versions[0],
                source=inference_pb2.ItemSource(eval_set="evalSets/too-long"),
                sampling=SAMPLING,
            ),
            timeout=300,
        )
    )
    by_id = {r.prediction.item.item_id: r.prediction for r in responses}
    assert by_id["long"].error.code == code_pb2.INVALID_ARGUMENT
    assert re.search(
        r"prompt is \d+ chars.*context length is 512 tokens", by_id["long"].error.message
    )
    assert not by_id["short"].HasField("error")
    assert by_id["short"].summary.usage.completion_tokens > 0


def test_evaluate_dataset_records_items_and_leaderboard(servers: Servers) -> None:
    responses = run_evaluate(
        servers,
        model="tiny@production",
        source=dataset_source(servers),
        metrics=["mean_completion_tokens", "tokens_per_second"],
        include_items=True,
    )
    kinds = [r.WhichOneof("response") for r in responses]
    assert kinds[-1] == "result" and kinds.count("item") == 6
    progress = [r.progress for r in responses if r.HasField("progress")]
    assert progress[0].phase == inference_pb2.EVALUATION_PHASE_LOADING
    evaluating = [p for p in progress if p.phase == inference_pb2.EVALUATION_PHASE_EVALUATING]
    assert evaluating[-1].completed_count == 6 and evaluating[-1].total_count == 6
    assert progress[-1].phase == inference_pb2.EVALUATION_PHASE_RECORDING
    result = responses[-1].result
    evaluation = result.evaluation
    assert evaluation.name.startswith("evaluations/")
    assert evaluation.model_version == servers.versions[0]
    assert evaluation.dataset == servers.dataset and evaluation.item_count == 6
    assert {"answer_accuracy", "mean_completion_tokens", "tokens_per_second"} <= set(
        evaluation.metrics
    )
    items = all_items(servers.registry_stub, evaluation.name)
    assert len(items) == 6 and all(i.prediction for i in items)
    board = servers.registry_stub.GetLeaderboard(
        rpb.GetLeaderboardRequest(dataset=servers.dataset, metric="answer_accuracy")
    ).entries
    assert evaluation.name in [e.evaluation for e in board]
    # A repeat with the same request id returns the recorded evaluation.
    again = run_evaluate(
        servers, model="tiny@production", source=dataset_source(servers), request_id="once"
    )[-1].result.evaluation
    assert (
        run_evaluate(
            servers, model="tiny@production", source=dataset_source(servers), request_id="once"
        )[-1].result.evaluation.name
        == again.name
    )


def test_eval_set_import_predict_and_eval_via_cli(servers: Servers, tmp_path: Path) -> None:
    lines = EVAL_SET_FILE.read_text(encoding="utf-8").splitlines()[:5]
    path = tmp_path / "evalset-head.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported = cli(servers, "evalsets", "import", str(path), "--name", "v2-head")
    assert imported.exit_code == 0, imported.output
    assert "evalSets/v2-head: 5 items" in imported.output

    predicted = cli(
        servers, "predict", servers.versions[1], "--eval-set", "v2-head", "--max-new-tokens", "8"
    )
    assert predicted.exit_code == 0, predicted.output
    assert "/5 correct" in predicted.output

    evaluated = cli(
        servers,
        "eval",
        servers.versions[1],
        "--eval-set",
        "v2-head",
        "--max-new-tokens",
        "8",
        "--seed",
        "0",
        "--json",
    )
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.stdout)
    evaluation = result["evaluation"]
    assert evaluation["dataset"] == "evalSets/v2-head"
    assert any(k.startswith("answer_accuracy/category=") for k in evaluation["metrics"])
    items = all_items(servers.registry_stub, evaluation["name"])
    assert [i.item_id for i in items] == [json.loads(line)["id"] for line in lines]
    board = cli(servers, "leaderboard", "--dataset", "evalSets/v2-head", "--json")
    assert board.exit_code == 0, board.output
    assert evaluation["name"] in board.output


def test_gate_passes_against_the_production_baseline(servers: Servers) -> None:
    responses = run_evaluate(
        servers,
        model=servers.versions[1],
        source=dataset_source(servers, 4),
        regression_gate=regression_gate_pb2.RegressionGate(
            baseline="tiny@production",
            thresholds=[
                regression_gate_pb2.MetricThreshold(metric="answer_accuracy", max_regression=1.0)
            ],
        ),
    )
    phases = {r.progress.phase for r in responses if r.HasField("progress")}
    assert inference_pb2.EVALUATION_PHASE_EVALUATING_BASELINE in phases  # no usable one yet
    result = responses[-1].result
    assert result.regression_gate.passed
    assert result.regression_gate.baseline_model_version == servers.versions[0]
    assert result.regression_gate.baseline_evaluation.startswith("evaluations/")
    recorded = servers.registry_stub.GetEvaluation(
        rpb.GetEvaluationRequest(name=result.evaluation.name)
    ).evaluation
    assert recorded.regression_gate == result.regression_gate


def test_gate_fails_recorded_and_cli_exits_non_zero(servers: Servers) -> None:
    # A baseline evaluation that no random model can match: accuracy 1.0 on the same items.
    perfect = servers.registry_stub.CreateEvaluation(
        rpb.CreateEvaluationRequest(
            evaluation=evaluation_pb2.Evaluation(
                model_version=servers.versions[0],
                dataset=servers.dataset,
                split=dataset_pb2.DATASET_SPLIT_EVAL,
                metrics={"answer_accuracy": 1.0},
            )
        )
    ).evaluation
    outcome = cli(
        servers,
        "eval",
        servers.versions[1],
        "--dataset",
        "mini",
        "--max-items",
        "3",
        "--max-new-tokens",
        "8",
        "--baseline-evaluation",
        perfect.name,
        "--max-regression",
        "answer_accuracy=0.02",
        "--no-progress",
    )
    assert outcome.exit_code == 1, outcome.output
    assert "FAILED" in outcome.output and "regression gate failed" in outcome.output
    newest = servers.registry_stub.ListEvaluations(
        rpb.ListEvaluationsRequest(model=servers.versions[1], dataset=servers.dataset)
    ).evaluations[0]
    assert newest.HasField("regression_gate") and not newest.regression_gate.passed
    assert newest.regression_gate.baseline_evaluation == perfect.name
    gated = newest.regression_gate.comparisons[0]
    assert gated.metric == "answer_accuracy" and gated.gated and not gated.passed


def test_bad_requests_name_the_field(servers: Servers) -> None:
    def code_of(**fields: Any) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as caught:
            run_evaluate(servers, **fields)
        code: grpc.StatusCode = caught.value.code()
        return code

    source = dataset_source(servers)
    assert (
        code_of(model="tiny/2", source=source, metrics=["nope"]) == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert code_of(model="missing/1", source=source) == grpc.StatusCode.NOT_FOUND
    assert (
        code_of(model="tiny/2", source=inference_pb2.ItemSource(eval_set="evalSets/none"))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        code_of(
            model="tiny/2",
            source=source,
            regression_gate=regression_gate_pb2.RegressionGate(baseline="tiny@production"),
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    dry = run_evaluate(servers, model="tiny/2", source=dataset_source(servers, 2), dry_run=True)
    assert dry[-1].result.evaluation.name == "" and dry[-1].result.evaluation.item_count == 2


def test_gate_directions_and_thresholds() -> None:
    from tunix_rt.inference import gate

    spec = regression_gate_pb2.RegressionGate(
        baseline="m@production",
        thresholds=[
            regression_gate_pb2.MetricThreshold(metric="answer_accuracy", max_regression=0.02),
            regression_gate_pb2.MetricThreshold(
                metric="mean_latency_seconds", max_relative_regression=0.5
            ),
        ],
    )
    base = {"answer_accuracy": 0.50, "mean_latency_seconds": 1.0, "loss": 2.0}
    ok = gate.compare(spec, base, {"answer_accuracy": 0.49, "mean_latency_seconds": 1.4, "loss": 1})
    assert ok.passed
    assert [c.metric for c in ok.comparisons] == [
        "answer_accuracy",
        "mean_latency_seconds",
        "loss",
    ]
    assert ok.comparisons[1].direction == regression_gate_pb2.METRIC_DIRECTION_LOWER_IS_BETTER
    assert ok.comparisons[2].regression == -1.0 and not ok.comparisons[2].gated
    slower = gate.compare(spec, base, {"answer_accuracy": 0.6, "mean_latency_seconds": 1.6})
    assert not slower.passed and not slower.comparisons[1].passed
    worse = gate.compare(spec, base, {"answer_accuracy": 0.47, "mean_latency_seconds": 1.0})
    assert not worse.passed and worse.comparisons[0].regression == pytest.approx(0.03)
    missing = gate.compare(spec, base, {"mean_latency_seconds": 1.0})
    assert not missing.passed


def test_a_gate_needs_room_for_one_model_only(servers: Servers, tmp_path: Path) -> None:
    # A budget that holds one of the two versions: the baseline is evaluated (and evicted)
    # before the candidate is loaded, never both at once.
    from tunix_rt.inference.engines.loader import estimate_memory_bytes

    one = estimate_memory_bytes(make_model_dir(tmp_path / "size", seed=1))
    small = servers.loop.run(
        start_inference(
            registry_address=servers.registry.address,
            data_dir=tmp_path / "small",
            memory_budget_bytes=int(one * 1.5),
        )
    )
    channel = grpc.insecure_channel(small.address)
    new_stub: Any = inference_service_pb2_grpc.InferenceServiceStub
    stub = new_stub(channel)
    try:
        request = inference_service_pb2.EvaluateRequest(
            model=servers.versions[1],
            source=dataset_source(servers, 3),
            sampling=inference_pb2.SamplingParams(max_new_tokens=9, seed=3),
            regression_gate=regression_gate_pb2.RegressionGate(
                baseline="tiny@production",
                thresholds=[
                    regression_gate_pb2.MetricThreshold(
                        metric="answer_accuracy", max_regression=1.0
                    )
                ],
            ),
            dry_run=True,
        )
        responses = list(stub.Evaluate(request, timeout=300))
        phases = {r.progress.phase for r in responses if r.HasField("progress")}
        # Sampled differently from every recorded baseline evaluation: evaluated afresh.
        assert inference_pb2.EVALUATION_PHASE_EVALUATING_BASELINE in phases
        assert responses[-1].result.regression_gate.passed
    finally:
        channel.close()
        servers.loop.run(small.stop(0))
