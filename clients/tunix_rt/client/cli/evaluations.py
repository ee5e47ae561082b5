"""`tunix-rt evaluations …` and `tunix-rt leaderboard`: recorded evaluations and their rankings.

tunix-rt evaluations list --dataset arith-v1
tunix-rt leaderboard --dataset arith-v1 --metric answer_accuracy
"""

from __future__ import annotations

import click

from tunix_rt.client import names
from tunix_rt.client.cli.datasets import SPLIT_NAMES, SPLITS
from tunix_rt.client.cli.output import (
    echo_breakdown,
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
from tunix_rt.client.cli.state import CliState, pass_state
from tunix_rt.v1 import dataset_pb2


def _split(value: dataset_pb2.DatasetSplit) -> str:
    # An evaluation without a split was made on the eval split (evaluation.proto).
    return SPLIT_NAMES.get(value, "eval")


@click.group()
def evaluations() -> None:
    """Evaluations of model versions on datasets: list, show."""


@evaluations.command("list")
@click.option("--model", help="Only this model (any version) or MODEL/VERSION.")
@click.option("--dataset", help="Only evaluations on this dataset.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: no limit."
)
@json_option
@pass_state
def list_evaluations(
    state: CliState, model: str | None, dataset: str | None, limit: int, as_json: bool
) -> None:
    """List evaluations, newest first."""
    found = state.registry().list_evaluations(model=model, dataset=dataset, limit=limit or None)
    if as_json:
        echo_json(list(found))
        return
    echo_table(
        ["EVALUATION", "MODEL VERSION", "DATASET", "SPLIT", "ITEMS", "METRICS", "CREATED"],
        (
            [
                names.short_id(e.name),
                e.model_version.removeprefix("models/"),
                names.short_id(e.dataset),
                _split(e.split),
                e.item_count,
                format_metrics(split_breakdown(e.metrics)[0]),
                format_time(e.create_time),
            ]
            for e in found
        ),
    )


@evaluations.command("show")
@click.argument("name")
@items_option(20)
@json_option
@pass_state
def show_evaluation(state: CliState, name: str, items: int, as_json: bool) -> None:
    """Show an evaluation's metrics and its first per-item results."""
    registry = state.registry()
    evaluation = registry.get_evaluation(name)
    rows = list(registry.list_evaluation_items(evaluation.name, limit=items)) if items else []
    overall, breakdown = split_breakdown(evaluation.metrics)
    echo_with_items(
        "evaluation",
        evaluation,
        [
            ("name", evaluation.name),
            ("model version", evaluation.model_version),
            ("dataset", evaluation.dataset),
            ("split", _split(evaluation.split)),
            ("items", evaluation.item_count),
            (
                f"answer accuracy ({evaluation.item_count} items)",
                format_number(overall.get("answer_accuracy", 0.0)),
            ),
            ("metrics", format_metrics(overall)),
            ("created", format_time(evaluation.create_time)),
        ],
        rows,
        ["ITEM", "CORRECT", "EXPECTED", "EXTRACTED", "PREDICTION"],
        lambda i: [
            shorten(i.item_id, 24),
            "yes" if i.correct else "no",
            shorten(i.expected, 16),
            shorten(i.extracted_answer, 16),
            shorten(i.prediction, 40),
        ],
        as_json=as_json,
    )
    if not as_json:
        echo_breakdown(breakdown)


@click.command()
@click.option("--dataset", required=True, help="The dataset the versions were evaluated on.")
@click.option("--metric", default="answer_accuracy", show_default=True, help="Rank by this metric.")
@click.option("--lower-is-better", is_flag=True, help="Rank ascending (e.g. for loss).")
@click.option(
    "--split",
    type=click.Choice(["any", "train", "eval"]),
    default="any",
    show_default=True,
    help="Only evaluations of this split.",
)
@click.option(
    "--limit", type=click.IntRange(min=0), default=20, show_default=True, help="0: no limit."
)
@json_option
@pass_state
def leaderboard(
    state: CliState,
    dataset: str,
    metric: str,
    lower_is_better: bool,
    split: str,
    limit: int,
    as_json: bool,
) -> None:
    """Model versions ranked by a metric on a dataset, best first."""
    entries = state.registry().leaderboard(
        dataset,
        metric,
        lower_is_better=lower_is_better,
        split=SPLITS.get(split, dataset_pb2.DATASET_SPLIT_UNSPECIFIED),
        limit=limit or None,
    )
    if as_json:
        echo_json(list(entries))
        return
    registry = state.registry()
    # Each entry's item count, so that its value is not taken for the training service's
    # in-training `eval_*` metrics of the same version (measured on fewer examples).
    rows = [(e, registry.get_evaluation(e.evaluation).item_count) for e in entries]
    echo_table(
        ["RANK", "MODEL VERSION", metric.upper(), "ITEMS", "EVALUATION", "CREATED"],
        (
            [
                e.rank,
                e.model_version.removeprefix("models/"),
                format_number(e.value),
                items,
                names.short_id(e.evaluation),
                format_time(e.create_time),
            ]
            for e, items in rows
        ),
    )
