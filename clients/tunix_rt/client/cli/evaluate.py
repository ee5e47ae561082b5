"""`tunix-rt evalsets …`, `tunix-rt predict` and `tunix-rt eval`: eval sets in the registry, batch
prediction and evaluation through the inference service.

tunix-rt evalsets import datasets/reasoning-evalset-v1.jsonl --name reasoning-eval
tunix-rt predict my-model@production --eval-set reasoning-eval --max-items 5
tunix-rt eval my-model/3 --dataset arith-v1 --baseline my-model@production \\
    --max-regression answer_accuracy=0.02

`eval` exits with code 1 when the regression gate fails (the evaluation is still recorded).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from google.protobuf import struct_pb2
from tqdm import tqdm

from tunix_rt.client import names
from tunix_rt.client.cli.datasets import SPLITS
from tunix_rt.client.cli.inference import inference_client
from tunix_rt.client.cli.output import (
    echo_breakdown,
    echo_fields,
    echo_json,
    echo_table,
    echo_with_items,
    format_metrics,
    format_number,
    format_time,
    items_option,
    json_option,
    shorten,
    split_breakdown,
)
from tunix_rt.client.cli.state import CliState, CommandFailed, pass_state
from tunix_rt.client.registry import eval_set_name
from tunix_rt.v1 import (
    dataset_pb2,
    eval_set_pb2,
    inference_pb2,
    inference_service_pb2,
    regression_gate_pb2,
)
from tunix_rt.v1.inference_service_pb2_grpc import InferenceServiceStub

# Item meta read from eval-set JSONL rows besides id, prompt and expected answer.
META_FIELDS = ("section", "category", "difficulty")
_PHASES = {
    inference_pb2.EVALUATION_PHASE_LOADING: "loading",
    inference_pb2.EVALUATION_PHASE_EVALUATING_BASELINE: "baseline",
    inference_pb2.EVALUATION_PHASE_EVALUATING: "evaluating",
    inference_pb2.EVALUATION_PHASE_RECORDING: "recording",
}


def _inference_stub(state: CliState) -> InferenceServiceStub:
    # The global `--inference ADDR` (or $TUNIX_RT_INFERENCE) client, with the global token and CA.
    return inference_client(state).stub


# Eval sets.


def read_eval_set_file(path: Path) -> list[eval_set_pb2.EvalSetItem]:
    """Items of an eval-set JSONL file (`id`, `prompt`, `expected_answer` and optional
    `section`, `category`, `difficulty` and `meta`); a bad line fails naming its number."""
    items = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                meta = struct_pb2.Struct()
                meta.update({k: row[k] for k in META_FIELDS if row.get(k) is not None})
                meta.update(row.get("meta") or {})
                items.append(
                    eval_set_pb2.EvalSetItem(
                        item_id=str(row.get("id") or row.get("item_id") or ""),
                        prompt=str(row["prompt"]),
                        expected_answer=str(row.get("expected_answer", "")),
                        meta=meta,
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise CommandFailed(f"{path}:{number}: not an eval-set row: {exc}") from None
    return items


@click.group("evalsets")
def evalsets() -> None:
    """Eval sets: prompts with expected answers to evaluate models on."""


@evalsets.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The new eval set's id.")
@click.option("--description", default="", help="What the eval set holds.")
@json_option
@pass_state
def import_eval_set(
    state: CliState, file: Path, name: str, description: str, as_json: bool
) -> None:
    """Import an eval-set JSONL file (the format datasets/README.md describes) as a new eval set."""
    items = read_eval_set_file(file)
    eval_set = state.registry().create_eval_set(name, items, description=description)
    if as_json:
        echo_json(eval_set)
        return
    click.echo(f"{eval_set.name}: {eval_set.item_count} items")


@evalsets.command("list")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: no limit."
)
@json_option
@pass_state
def list_eval_sets(state: CliState, limit: int, as_json: bool) -> None:
    """List eval sets, newest first."""
    found = state.registry().list_eval_sets(limit=limit or None)
    if as_json:
        echo_json(list(found))
        return
    echo_table(
        ["EVAL SET", "ITEMS", "DESCRIPTION", "CREATED"],
        (
            [
                names.short_id(e.name),
                e.item_count,
                shorten(e.description, 40),
                format_time(e.create_time),
            ]
            for e in found
        ),
    )


@evalsets.command("show")
@click.argument("name")
@items_option(10)
@json_option
@pass_state
def show_eval_set(state: CliState, name: str, items: int, as_json: bool) -> None:
    """Show an eval set and its first items."""
    registry = state.registry()
    eval_set = registry.get_eval_set(name)
    rows = list(registry.list_eval_set_items(eval_set.name, limit=items)) if items else []
    echo_with_items(
        "eval_set",
        eval_set,
        [
            ("name", eval_set.name),
            ("items", eval_set.item_count),
            ("description", eval_set.description),
            ("counts", ", ".join(f"{k}: {v}" for k, v in sorted(eval_set.counts.items()))),
            ("created", format_time(eval_set.create_time)),
        ],
        rows,
        ["ITEM", "PROMPT", "EXPECTED"],
        lambda i: [i.item_id, shorten(i.prompt, 50), shorten(i.expected_answer, 16)],
        as_json=as_json,
    )


# Predict and eval.


def _source(
    dataset: str | None, eval_set: str | None, split: str, max_items: int
) -> inference_pb2.ItemSource:
    if bool(dataset) == bool(eval_set):
        raise click.UsageError("give exactly one of --dataset and --eval-set")
    if eval_set:
        return inference_pb2.ItemSource(eval_set=eval_set_name(eval_set), max_items=max_items)
    return inference_pb2.ItemSource(
        dataset=inference_pb2.DatasetSplitSource(
            dataset=names.dataset(dataset or ""),
            split=SPLITS.get(split, dataset_pb2.DATASET_SPLIT_EVAL),
        ),
        max_items=max_items,
    )


def _sampling(max_new_tokens: int, temperature: float, seed: int | None) -> Any:
    sampling = inference_pb2.SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    if seed is not None:
        sampling.seed = seed
    return sampling


def source_options(function: Any) -> Any:
    for option in reversed(
        [
            click.option("--dataset", help="Predict on a split of this dataset."),
            click.option("--eval-set", "eval_set", help="Predict on this eval set."),
            click.option(
                "--split",
                type=click.Choice(["train", "eval"]),
                default="eval",
                show_default=True,
                help="The dataset split.",
            ),
            click.option(
                "--max-items",
                type=click.IntRange(min=0),
                default=0,
                help="Only the first N items (0: all).",
            ),
            click.option(
                "--max-new-tokens",
                type=click.IntRange(min=0),
                default=0,
                help="Tokens to generate per item (0: the service's default, 128).",
            ),
            click.option(
                "--temperature", type=click.FloatRange(min=0), default=0.0, help="0: greedy."
            ),
            click.option("--seed", type=int, default=None, help="The sampling seed."),
        ]
    ):
        function = option(function)
    return function


@click.command("predict")
@click.argument("model")
@source_options
@json_option
@pass_state
def predict(
    state: CliState,
    model: str,
    dataset: str | None,
    eval_set: str | None,
    split: str,
    max_items: int,
    max_new_tokens: int,
    temperature: float,
    seed: int | None,
    as_json: bool,
) -> None:
    """Predict every item of a dataset split or eval set with MODEL (nothing is recorded)."""
    request = inference_service_pb2.BatchPredictRequest(
        model=model,
        source=_source(dataset, eval_set, split, max_items),
        sampling=_sampling(max_new_tokens, temperature, seed),
    )
    stream = _inference_stub(state).BatchPredict(request)
    predictions = sorted((r.prediction for r in stream), key=lambda p: p.index)
    if as_json:
        echo_json(predictions)
        return
    correct = sum(1 for p in predictions if p.item.correct)
    echo_table(
        ["#", "ITEM", "CORRECT", "EXPECTED", "ANSWER", "PREDICTION"],
        (
            [
                p.index,
                shorten(p.item.item_id, 24),
                "yes" if p.item.correct else "no",
                shorten(p.item.expected, 16),
                shorten(p.item.extracted_answer, 16),
                shorten(p.item.prediction.replace("\n", " "), 40)
                if not p.HasField("error")
                else f"error: {shorten(p.error.message, 36)}",
            ]
            for p in predictions
        ),
    )
    click.echo(f"{correct}/{len(predictions)} correct")


def _thresholds(
    absolute: tuple[str, ...], relative: tuple[str, ...]
) -> list[regression_gate_pb2.MetricThreshold]:
    by_metric: dict[str, regression_gate_pb2.MetricThreshold] = {}
    for values, kind in ((absolute, "max_regression"), (relative, "max_relative_regression")):
        for value in values:
            metric, sep, number = value.rpartition("=")
            try:
                limit = float(number)
            except ValueError:
                limit = -1.0
            if not sep or not metric or limit < 0:
                raise click.BadParameter(
                    f"{value!r} is not METRIC=LIMIT with a limit of at least 0",
                    param_hint=f"--{kind.replace('_', '-')}",
                )
            threshold = by_metric.setdefault(
                metric, regression_gate_pb2.MetricThreshold(metric=metric)
            )
            setattr(threshold, kind, limit)
    return list(by_metric.values())


def _follow(
    responses: Iterator[inference_service_pb2.EvaluateResponse], show_progress: bool
) -> inference_pb2.EvaluationResult:
    """Draws a progress bar from the stream and returns its result."""
    bar: Any = None  # a tqdm bar
    phase = None
    result = None
    try:
        for response in responses:
            kind = response.WhichOneof("response")
            if kind == "result":
                result = response.result
            elif kind == "progress" and show_progress:
                progress = response.progress
                if progress.phase != phase or bar is None:
                    if bar is not None:
                        bar.close()
                    phase = progress.phase
                    bar = tqdm(
                        total=progress.total_count or None,
                        desc=_PHASES.get(progress.phase, "evaluating"),
                        unit="item",
                        file=sys.stderr,
                        leave=False,
                    )
                if progress.total_count and bar.total != progress.total_count:
                    bar.total = progress.total_count
                bar.n = progress.completed_count
                accuracy = progress.metrics.get("answer_accuracy")
                if accuracy is not None:
                    bar.set_postfix(accuracy=f"{accuracy:.3f}", refresh=False)
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
    if result is None:
        raise CommandFailed("the evaluation ended without a result")
    return result


@click.command("eval")
@click.argument("model")
@source_options
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Another metric besides answer_accuracy (exact_match, mean_completion_tokens, "
    "mean_latency_seconds, tokens_per_second); repeatable.",
)
@click.option("--baseline", help="Gate against this version or alias (e.g. my-model@production).")
@click.option(
    "--baseline-evaluation", help="Compare with this recorded evaluation of the baseline."
)
@click.option(
    "--max-regression",
    multiple=True,
    metavar="METRIC=LIMIT",
    help="Fail when METRIC worsens by more than LIMIT (its own units); repeatable.",
)
@click.option(
    "--max-relative-regression",
    multiple=True,
    metavar="METRIC=FRACTION",
    help="Fail when METRIC worsens by more than FRACTION of the baseline; repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Record nothing.")
@click.option("--request-id", default="", help="Idempotency key: a repeat returns the result.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@json_option
@pass_state
def eval_command(
    state: CliState,
    model: str,
    dataset: str | None,
    eval_set: str | None,
    split: str,
    max_items: int,
    max_new_tokens: int,
    temperature: float,
    seed: int | None,
    metrics: tuple[str, ...],
    baseline: str | None,
    baseline_evaluation: str | None,
    max_regression: tuple[str, ...],
    max_relative_regression: tuple[str, ...],
    dry_run: bool,
    request_id: str,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Evaluate MODEL on a dataset split or eval set and record the result; with --baseline,
    apply a regression gate and exit 1 when it fails."""
    request = inference_service_pb2.EvaluateRequest(
        model=model,
        source=_source(dataset, eval_set, split, max_items),
        metrics=metrics,
        sampling=_sampling(max_new_tokens, temperature, seed),
        dry_run=dry_run,
        request_id=request_id,
    )
    thresholds = _thresholds(max_regression, max_relative_regression)
    if baseline or baseline_evaluation:
        request.regression_gate.CopyFrom(
            regression_gate_pb2.RegressionGate(
                baseline=baseline or "",
                baseline_evaluation=names.evaluation(baseline_evaluation)
                if baseline_evaluation
                else "",
                thresholds=thresholds
                or [regression_gate_pb2.MetricThreshold(metric="answer_accuracy")],
            )
        )
    elif thresholds:
        raise click.UsageError("--max-regression needs --baseline or --baseline-evaluation")
    result = _follow(_inference_stub(state).Evaluate(request), not no_progress)
    if as_json:
        echo_json(result)
    else:
        _echo_result(result)
    if result.HasField("regression_gate") and not result.regression_gate.passed:
        raise CommandFailed("the regression gate failed")


def _echo_result(result: inference_pb2.EvaluationResult) -> None:
    evaluation = result.evaluation
    overall, breakdown = split_breakdown(evaluation.metrics)
    echo_fields(
        [
            ("evaluation", evaluation.name or "(dry run: not recorded)"),
            ("model version", evaluation.model_version),
            ("evaluated on", evaluation.dataset),
            ("items", evaluation.item_count),
            ("errors", result.error_count),
            (
                f"answer accuracy ({evaluation.item_count} items)",
                format_number(overall.get("answer_accuracy", 0.0)),
            ),
            ("metrics", format_metrics(overall)),
        ]
    )
    echo_breakdown(breakdown)
    if result.HasField("regression_gate"):
        gate = result.regression_gate
        click.echo()
        click.echo(
            f"regression gate: {'PASSED' if gate.passed else 'FAILED'} against "
            f"{gate.baseline_model_version} ({names.short_id(gate.baseline_evaluation) or '-'})"
        )
        echo_table(
            ["METRIC", "BASELINE", "CANDIDATE", "REGRESSION", "GATED", "OK"],
            (
                [
                    c.metric,
                    format_number(c.baseline_value),
                    format_number(c.candidate_value),
                    format_number(c.regression),
                    "yes" if c.gated else "",
                    "yes" if c.passed else "NO",
                ]
                for c in gate.comparisons
                if c.gated or "/" not in c.metric
            ),
        )
