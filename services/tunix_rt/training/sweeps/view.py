"""A sweep as callers see it: the Sweep message made from its spec, its registry run (state,
times, the outcome recorded when it ended) and its trial records."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from tunix_rt.training.sweeps.record import Trials, trial_proto
from tunix_rt.training.sweeps.spec import ALGORITHM_ENUM, PRUNER_ENUM, Parameter, SweepSpec
from tunix_rt.v1 import run_pb2, sweep_pb2


def sweep_proto(
    spec: SweepSpec, run: run_pb2.Run | None, trials: Trials, live_states: dict[int, int]
) -> sweep_pb2.Sweep:
    """The Sweep message; `run` is None for a sweep only validated, `live_states` the job states
    of trials that have not ended."""
    sweep = sweep_pb2.Sweep(
        name=f"sweeps/{spec.sweep_id}",
        display_name=spec.display_name,
        base_training_job=spec.base_message(),
        search_space=[_parameter(p) for p in spec.parameters],
        objective=sweep_pb2.SweepObjective(
            metric=spec.metric,
            direction=sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE
            if spec.maximize
            else sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE,
        ),
        max_trials=spec.max_trials,
        parallel_trials=spec.parallel,
        algorithm=ALGORITHM_ENUM[spec.algorithm],
        pruner=PRUNER_ENUM[spec.pruner],
        seed=spec.seed,
        register_best_as=spec.register_best_as,
        best_alias=spec.best_alias,
        evaluate_best=spec.evaluate_best,
        trials=[trial_proto(t, live_states.get(t.number, 0)) for t in trials.ordered],
    )
    best = trials.best(spec.maximize)
    if best is not None:
        sweep.best_trial.CopyFrom(trial_proto(best))
    if run is None:
        return sweep
    outcome: dict[str, Any] = json_format.MessageToDict(run.config)
    sweep.best_model_version = str(outcome.get("best_model_version", ""))
    sweep.best_evaluation = str(outcome.get("best_evaluation", ""))
    sweep.state = run.state
    sweep.owner = run.owner
    sweep.last_sequence = run.last_sequence
    if run.HasField("error") and (run.error.code or run.error.message):
        sweep.error.CopyFrom(run.error)
    for field in ("create_time", "end_time", "update_time"):
        if run.HasField(field):
            getattr(sweep, field).CopyFrom(getattr(run, field))
    return sweep


def _parameter(p: Parameter) -> sweep_pb2.SweepParameter:
    message = sweep_pb2.SweepParameter(name=p.name)
    if p.kind == "float":
        message.float_range.CopyFrom(
            sweep_pb2.SweepParameter.FloatRange(min=p.low, max=p.high, log=p.log)
        )
    elif p.kind == "int":
        message.int_range.CopyFrom(
            sweep_pb2.SweepParameter.IntRange(min=int(p.low), max=int(p.high), log=p.log)
        )
    else:
        values = struct_pb2.ListValue()
        values.extend(list(p.choices))
        message.categorical.values.extend(values.values)
    return message
