"""The `--param` and `--objective` syntax of `tunix-rt sweep create`, parsed without a service,
and how `sweep follow` draws the events it is given."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from google.protobuf import json_format

from tunix_rt.client.cli import main
from tunix_rt.client.cli.sweep_follow import LiveTable, TrialBoard
from tunix_rt.client.sweeps import parse_objective, parse_param
from tunix_rt.v1 import run_pb2, sweep_pb2


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


def trial_event(
    sequence: int,
    kind: str,
    number: int,
    state: run_pb2.RunState = run_pb2.RUN_STATE_QUEUED,
    objective: float | None = None,
    step: int = 0,
    value: float = 0.0,
) -> sweep_pb2.SweepEvent:
    """A StreamSweep trial change as the service sends it (the trial after the change)."""
    trial = sweep_pb2.SweepTrial(number=number, state=state, objective_value=objective)
    trial.params.update({"learning_rate": 0.001 * (number + 1)})
    change = sweep_pb2.SweepTrialChange(
        kind=f"SWEEP_TRIAL_CHANGE_KIND_{kind}",
        trial=trial,
        step=step,
        value=value,
    )
    return sweep_pb2.SweepEvent(sequence=sequence, trial_change=change)


def test_the_board_shows_each_trial_and_the_best_so_far() -> None:
    board = TrialBoard("eval_loss", maximize=False)
    events = [
        trial_event(1, "CREATED", 0),
        trial_event(2, "CREATED", 1),
        trial_event(3, "REPORTED", 0, step=4, value=2.5),
        trial_event(4, "ENDED", 0, state=run_pb2.RUN_STATE_SUCCEEDED, objective=2.25),
        trial_event(5, "ENDED", 1, state=run_pb2.RUN_STATE_SUCCEEDED, objective=3.0),
    ]
    lines = [board.apply(e) for e in events]
    assert lines[0] == "trial 0 queued [learning_rate=0.001] created  (best so far: -)"
    assert lines[2].startswith("trial 0 running [") and "step 4: eval_loss 2.5" in lines[2]
    assert lines[4].endswith("succeeded  (best so far: trial 0, 2.25)")
    frame = board.frame("lr", width=200)
    assert frame[0] == "lr  running  2/2 trials ended  best so far: trial 0, 2.25"
    assert frame[1].split() == ["TRIAL", "STATE", "PARAMS", "OBJECTIVE", "STEP", "REASON"]
    assert frame[2].split()[:3] == ["0", "*", "succeeded"] and len(frame) == 4
    assert all(len(line) < 20 for line in board.frame("lr", width=20))
    for n in range(2, 12):
        board.apply(trial_event(4 + n, "CREATED", n))
    short = board.frame("lr", width=200, height=8)
    assert len(short) <= 8 and short[2].startswith("0 *") and short[-2].startswith("11 ")
    assert short[-1] == "… and 9 earlier trials (tunix-rt sweep show lr)"


def test_the_live_table_redraws_over_its_last_frame(capsys: pytest.CaptureFixture[str]) -> None:
    table = LiveTable()
    table.draw(["a", "b", "c"])
    table.draw(["d"])
    assert capsys.readouterr().out == "a\nb\nc\n\x1b[3F\x1b[Jd\n"
