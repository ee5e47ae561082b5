"""A sweep's search (Optuna, in memory) as the controller drives it: every algorithm proposes
values inside the space, and a search rebuilt from recorded trials neither walks a grid twice
nor forgets what its pruner saw."""

from __future__ import annotations

import pytest

from tunix_rt.training.sweeps.record import TrialRecord
from tunix_rt.training.sweeps.search import Search
from tunix_rt.training.sweeps.spec import Parameter, SweepSpec
from tunix_rt.v1 import run_pb2

SUCCEEDED, PRUNED = run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_PRUNED
LR = Parameter("learning_rate", "float", 1e-5, 1e-1, log=True)
BATCH = Parameter("batch_size", "categorical", choices=(2, 4, 8))
RANK = Parameter("lora_rank", "int", 2, 4)


def spec(*parameters: Parameter, **fields: object) -> SweepSpec:
    values: dict[str, object] = {
        "sweep_id": "s",
        "display_name": "",
        "base_job": {"dataset": "datasets/d"},
        "parameters": parameters,
        "metric": "eval_loss",
        "maximize": False,
        "max_trials": 6,
        "parallel": 2,
        "algorithm": "tpe",
        "pruner": "none",
        "seed": 0,
        "register_best_as": "",
        "best_alias": "",
        "evaluate_best": False,
        "eval_interval": 4,
        "max_steps": 16,
    }
    values.update(fields)
    return SweepSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["tpe", "random", "cma_es"])
def test_every_algorithm_proposes_inside_the_space(algorithm: str) -> None:
    search = Search(spec(LR, BATCH, RANK, algorithm=algorithm))
    for number in range(8):
        params = search.ask(number)
        assert 1e-5 <= params["learning_rate"] <= 1e-1
        assert params["batch_size"] in (2, 4, 8) and params["lora_rank"] in (2, 3, 4)
        search.tell(number, SUCCEEDED, params["learning_rate"])


def test_a_rebuilt_grid_is_not_walked_twice() -> None:
    grid = spec(BATCH, RANK, algorithm="grid", max_trials=9)
    first = Search(grid)
    records = []
    for number in range(4):
        params = first.ask(number)
        record = TrialRecord(number, params, f"s-trial-{number}")
        if number < 3:  # three ended, one still running when the service stopped
            first.tell(number, SUCCEEDED, 1.0)
            record.state, record.value = SUCCEEDED, 1.0
        records.append(record)
    rebuilt = Search(grid, replayed=len(records))
    rebuilt.rebuild(records)
    seen = {tuple(sorted(r.params.items())) for r in records}
    for number in range(4, 9):
        params = rebuilt.ask(number)
        key = tuple(sorted(params.items()))
        assert key not in seen, params
        seen.add(key)
    assert len(seen) == 9


def test_a_rebuilt_search_prunes_as_before() -> None:
    halving = spec(LR, pruner="successive_halving")
    records = []
    search = Search(halving)
    # Trial 0 reached step 4 at loss 2.0 and finished; trial 1 is running.
    for number, value in ((0, 2.0), (1, 1.5)):
        params = search.ask(number)
        assert not search.report(number, 4, value)
        records.append(TrialRecord(number, params, f"s-trial-{number}", reports={4: value}))
    search.tell(0, SUCCEEDED, 1.0)
    records[0].state, records[0].value = SUCCEEDED, 1.0
    rebuilt = Search(halving, replayed=2)
    rebuilt.rebuild(records)
    rebuilt.ask(2)
    assert rebuilt.report(2, 4, 3.0)  # worse than both at the first rung: pruned
    rebuilt.tell(2, PRUNED, None)
    rebuilt.ask(3)
    assert not rebuilt.report(3, 4, 1.0)  # the best so far at that rung: goes on
