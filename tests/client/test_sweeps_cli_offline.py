"""The `--param` and `--objective` syntax of `tunix-rt sweep create`, parsed without a service."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from google.protobuf import json_format

from tunix_rt.client.cli import main
from tunix_rt.client.sweeps import parse_objective, parse_param
from tunix_rt.v1 import sweep_pb2


def int_range(low: str, high: str, **log: bool) -> dict[str, object]:
    return {"min": low, "max": high, **log}


PARSED = [
    ("lr=log:1e-4:3e-2", {"name": "lr", "floatRange": {"min": 1e-4, "max": 3e-2, "log": True}}),
    ("weight_decay=float:0:0.1", {"name": "weight_decay", "floatRange": {"max": 0.1}}),
    ("lora_rank=int:4:64", {"name": "lora_rank", "intRange": int_range("4", "64")}),
    ("lora_rank=logint:4:64", {"name": "lora_rank", "intRange": int_range("4", "64", log=True)}),
    ("batch_size=choice:8,16", {"name": "batch_size", "categorical": {"values": [8, 16]}}),
    ("chat_template=choice:plain,chatml", {"name": "chat_template", "categorical": {"values": ["plain", "chatml"]}}),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_params_parse(text: str, expected: dict[str, object]) -> None:
    assert json_format.MessageToDict(parse_param(text)) == expected


@pytest.mark.parametrize(
    "text", ["lr", "lr=log", "lr=log:1e-4", "lr=log:a:b", "lr=normal:0:1", "=int:1:2"]
)
def test_bad_params_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"lr|int"):
        parse_param(text)


def test_objectives_parse_with_a_direction_or_by_the_metric_name() -> None:
    assert parse_objective("eval_answer_accuracy:max").direction == (
        sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE
    )
    assert parse_objective("eval_loss").direction == sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE
    with pytest.raises(ValueError):
        parse_objective("eval_loss:lowest")


def test_a_bad_param_is_usage_error_before_any_call() -> None:
    args = ["--training", "127.0.0.1:1", "sweep", "create", "--dataset", "d", "--model", "/m"]
    result = CliRunner().invoke(main, [*args, "--param", "lr=log:1", "--objective", "eval_loss"])
    assert result.exit_code == 2, result.output
    assert "MIN:MAX" in result.output
