"""A sweep's spec: the Sweep message validated into a frozen SweepSpec (stored as JSON in the
sweep run's config), and each trial's TrainingJob: the base job with the trial's parameters set.

Every violation is collected and reported at once, each naming its field
(`sweep.search_space[1].name`), as one INVALID_ARGUMENT. Whether a trial's job itself is valid is
the job validation's to say (the manager validates the trials at the ends of every range).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2

from tunix_rt.common.errors import FieldViolation, InvalidArgument
from tunix_rt.v1 import sweep_pb2, training_job_pb2

P = "sweep."
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_TRIALS, DEFAULT_TRIALS = 1000, 10
# The eval metrics every trainer reports at each evaluation (backends/evaluation.py).
OBJECTIVES = ("eval_loss", "eval_answer_accuracy")
# Searchable hyperparameters (Hyperparameters message fields) and their types.
HYPER: dict[str, type] = {
    "learning_rate": float,
    "warmup_steps": int,
    "min_learning_rate_ratio": float,
    "weight_decay": float,
    "batch_size": int,
    "gradient_accumulation_steps": int,
    "max_seq_len": int,
    "max_steps": int,
    "num_epochs": float,
    "seed": int,
    "max_grad_norm": float,
    "eval_max_examples": int,
    "eval_max_new_tokens": int,
    "chat_template": str,
}
LORA: dict[str, type] = {"lora_rank": int, "lora_alpha": float, "lora_dropout": float}
ALIASES = {"lr": "learning_rate"}
ARCH = "arch."
_ALGORITHMS = {
    sweep_pb2.SWEEP_ALGORITHM_UNSPECIFIED: "tpe",
    sweep_pb2.SWEEP_ALGORITHM_TPE: "tpe",
    sweep_pb2.SWEEP_ALGORITHM_RANDOM: "random",
    sweep_pb2.SWEEP_ALGORITHM_GRID: "grid",
    sweep_pb2.SWEEP_ALGORITHM_CMA_ES: "cma_es",
}
_PRUNERS = {
    sweep_pb2.SWEEP_PRUNER_UNSPECIFIED: "none",
    sweep_pb2.SWEEP_PRUNER_NONE: "none",
    sweep_pb2.SWEEP_PRUNER_MEDIAN: "median",
    sweep_pb2.SWEEP_PRUNER_SUCCESSIVE_HALVING: "successive_halving",
    sweep_pb2.SWEEP_PRUNER_HYPERBAND: "hyperband",
}
ALGORITHM_ENUM = {name: value for value, name in _ALGORITHMS.items() if value}
PRUNER_ENUM = {name: value for value, name in _PRUNERS.items() if value}


@dataclass(frozen=True)
class Parameter:
    """One searched parameter: `kind` float or int with [low, high] (log scale or not), or
    categorical with `choices`."""

    name: str  # canonical: a HYPER or LORA key, or arch.{key}
    kind: str  # float | int | categorical
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep; JSON round-trips through `to_json`/`from_json`."""

    sweep_id: str
    display_name: str
    base_job: dict[str, Any]  # the base TrainingJob as JSON (proto field names)
    parameters: tuple[Parameter, ...]
    metric: str
    maximize: bool
    max_trials: int
    parallel: int
    algorithm: str  # tpe | random | grid | cma_es
    pruner: str  # none | median | successive_halving | hyperband
    seed: int
    register_best_as: str  # models/{model}, or ""
    best_alias: str
    evaluate_best: bool
    # A trial's steps between evaluations and its total steps, as the base job sets them; 0 when
    # it leaves them to the trainer (the pruners then start from Optuna's own defaults).
    eval_interval: int = 0
    max_steps: int = 0

    @property
    def dataset(self) -> str:
        dataset = str(self.base_job.get("dataset", ""))
        return dataset if dataset.startswith("datasets/") else f"datasets/{dataset}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepSpec:
        # The run's config is a Struct: its numbers come back as floats.
        parameters = tuple(
            Parameter(**{**p, "choices": _typed_choices(p["name"], p.get("choices", ()))})
            for p in data["parameters"]
        )
        ints = ("max_trials", "parallel", "seed", "eval_interval", "max_steps")
        return cls(
            **{
                **data,
                "parameters": parameters,
                **{k: int(data.get(k, 0)) for k in ints},
            }
        )

    def base_message(self) -> training_job_pb2.TrainingJob:
        return json_format.ParseDict(self.base_job, training_job_pb2.TrainingJob())

    def trial_id(self, number: int) -> str:
        return f"{self.sweep_id}-trial-{number}"


def _typed_choices(name: str, choices: Any) -> tuple[Any, ...]:
    """Categorical values of an integer parameter as ints again (a Struct made them floats)."""
    if {**HYPER, **LORA}.get(name) is not int:
        return tuple(choices)
    return tuple(int(v) if isinstance(v, float) else v for v in choices)


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def spec_from_sweep(sweep: sweep_pb2.Sweep, sweep_id: str) -> SweepSpec:
    """Validates a submitted sweep; raises InvalidArgument naming every bad field at once."""
    violations: list[FieldViolation] = []

    def check(ok: bool, field: str, description: str) -> None:
        if not ok:
            violations.append(FieldViolation(P + field, description))

    check(len(sweep.display_name) <= 256, "display_name", "must be at most 256 chars")
    base = sweep.base_training_job
    check(sweep.HasField("base_training_job"), "base_training_job", "is required")
    check(len(sweep.search_space) > 0, "search_space", "must hold at least one parameter")
    parameters: list[Parameter] = []
    for n, param in enumerate(sweep.search_space):
        parameter = _parameter(param, base, f"search_space[{n}]", check)
        if parameter is not None:
            if any(p.name == parameter.name for p in parameters):
                check(False, f"search_space[{n}].name", "names a parameter already searched")
            parameters.append(parameter)
    metric = sweep.objective.metric
    check(
        metric in OBJECTIVES,
        "objective.metric",
        f"must be a metric the trainer reports at each evaluation: {', '.join(OBJECTIVES)}",
    )
    direction = sweep.objective.direction
    check(
        direction
        in (
            sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE,
            sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE,
        ),
        "objective.direction",
        "must be MAXIMIZE or MINIMIZE",
    )
    check(0 <= sweep.max_trials <= MAX_TRIALS, "max_trials", f"must be in [0, {MAX_TRIALS}]")
    check(sweep.parallel_trials >= 0, "parallel_trials", "must be at least 0")
    algorithm = _ALGORITHMS.get(sweep.algorithm)
    check(algorithm is not None, "algorithm", "is unknown")
    pruner = _PRUNERS.get(sweep.pruner)
    check(pruner is not None, "pruner", "is unknown")
    max_trials = sweep.max_trials or DEFAULT_TRIALS
    if algorithm == "grid":
        for n, p in enumerate(parameters):
            check(
                p.kind != "float",
                f"search_space[{n}]",
                "a grid takes categorical or integer parameters only",
            )
        # Past its size a grid has nothing new to propose.
        max_trials = min(max_trials, grid_size(parameters))
    model, alias = _registration(sweep, check)
    if violations:
        raise InvalidArgument.fields(violations)
    hyper = base.hyperparameters
    return SweepSpec(
        sweep_id=sweep_id,
        display_name=sweep.display_name,
        base_job=json_format.MessageToDict(base, preserving_proto_field_name=True),
        parameters=tuple(parameters),
        metric=metric,
        maximize=direction == sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE,
        max_trials=max_trials,
        parallel=sweep.parallel_trials or 1,
        algorithm=algorithm or "tpe",
        pruner=pruner or "none",
        seed=sweep.seed,
        register_best_as=f"models/{model}" if model else "",
        best_alias=(alias or "best") if model else "",
        evaluate_best=sweep.evaluate_best,
        eval_interval=hyper.eval_interval_steps if hyper.HasField("eval_interval_steps") else 0,
        max_steps=hyper.max_steps if hyper.WhichOneof("training_length") == "max_steps" else 0,
    )


def _registration(sweep: sweep_pb2.Sweep, check: Any) -> tuple[str, str]:
    """(the model id the trials register into, the best trial's alias), checked."""
    model = sweep.register_best_as.removeprefix("models/")
    check(
        not model or re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", model) is not None,
        "register_best_as",
        "must be 'models/{model}'",
    )
    alias = sweep.best_alias
    check(
        not alias
        or (re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", alias) is not None and alias != "latest"),
        "best_alias",
        "must be 1-64 letters, digits, '-' or '_', starting with a letter (not 'latest')",
    )
    check(not alias or bool(model), "best_alias", "needs register_best_as")
    return model, alias


def _parameter(
    param: sweep_pb2.SweepParameter,
    base: training_job_pb2.TrainingJob,
    field: str,
    check: Any,
) -> Parameter | None:
    """One parameter, or None (with its violations checked) when it is bad."""
    name = canonical_name(param.name)
    kind = _type_of(name, base)
    if kind is None:
        known = ", ".join([*HYPER, *LORA, "arch.{key}"])
        check(False, f"{field}.name", f"is not a parameter of the training job; one of {known}")
        return None
    domain = param.WhichOneof("domain")
    if domain is None:
        check(False, field, "give one of float_range, int_range, categorical")
        return None
    if domain == "categorical":
        values: list[Any] = [json_format.MessageToDict(v) for v in param.categorical.values]
        check(bool(values), f"{field}.categorical.values", "must hold at least one value")
        check(
            len({repr(v) for v in values}) == len(values),
            f"{field}.categorical.values",
            "must not repeat a value",
        )
        for i, value in enumerate(values):
            check(
                _fits(value, kind),
                f"{field}.categorical.values[{i}]",
                f"must be a {kind.__name__ if kind is not object else 'number, string or bool'}",
            )
        if kind is int:
            values = [int(float(v)) for v in values if _fits(v, int)]
        return Parameter(name, "categorical", choices=tuple(values))
    bounds = param.float_range if domain == "float_range" else param.int_range
    if domain == "float_range":
        check(kind in (float, object), f"{field}.float_range", f"{name} is not a real number")
        finite = math.isfinite(bounds.min) and math.isfinite(bounds.max)
        check(finite, f"{field}.float_range", "min and max must be finite")
    else:
        check(kind in (int, float, object), f"{field}.int_range", f"{name} is not a number")
    check(bounds.min <= bounds.max, f"{field}.{domain}.max", "must be at least min")
    check(
        not bounds.log or bounds.min > 0,
        f"{field}.{domain}.min",
        "must be greater than 0 on a log scale",
    )
    return Parameter(
        name,
        "float" if domain == "float_range" else "int",
        low=float(bounds.min),
        high=float(bounds.max),
        log=bounds.log,
    )


def _type_of(name: str, base: training_job_pb2.TrainingJob) -> type | None:
    """The value type of a parameter of `base` (object: any, for an architecture override);
    None when the job has no such parameter."""
    if name in HYPER:
        return HYPER[name]
    if name in LORA:
        return LORA[name] if base.WhichOneof("tuning") == "lora" else None
    if name.startswith(ARCH) and len(name) > len(ARCH):
        return object if base.WhichOneof("base_model") == "preset" else None
    return None


def _fits(value: Any, kind: type) -> bool:
    if kind is object:
        return isinstance(value, (int, float, str, bool))
    if kind is str:
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return kind is float or float(value).is_integer()


def grid_size(parameters: tuple[Parameter, ...] | list[Parameter]) -> int:
    size = 1
    for p in parameters:
        size *= len(p.choices) if p.kind == "categorical" else int(p.high - p.low) + 1
    return size


def trial_job(spec: SweepSpec, number: int, params: dict[str, Any]) -> training_job_pb2.TrainingJob:
    """Trial `number`'s job: the base job with `params` set, labelled with its sweep and trial,
    registering into `register_best_as` (without aliases: the sweep aliases the best) if set."""
    job = spec.base_message()
    for name, value in params.items():
        if name in HYPER:
            setattr(job.hyperparameters, name, HYPER[name](value))
        elif name in LORA:
            setattr(job.lora, name.removeprefix("lora_"), LORA[name](value))
        else:
            key = name.removeprefix(ARCH)
            overrides = json_format.MessageToDict(job.architecture_overrides)
            overrides[key] = value
            job.architecture_overrides.Clear()
            job.architecture_overrides.update(overrides)
    job.labels["sweep"] = spec.sweep_id
    job.labels["sweep_trial"] = str(number)
    if not job.display_name:
        job.display_name = f"{spec.display_name or spec.sweep_id} trial {number}"
    if spec.register_best_as:
        job.registration.model = spec.register_best_as
        del job.registration.aliases[:]
    if spec.evaluate_best:  # its settings are for the best trial alone, once the sweep ends
        job.ClearField("completion_evaluation")
    described = ", ".join(f"{k}={v}" for k, v in params.items())
    job.registration.description = (
        f"sweep {spec.sweep_id} trial {number}: {described}"
        if not job.registration.description
        else job.registration.description
    )
    return job


def params_struct(params: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(params)
    return message
