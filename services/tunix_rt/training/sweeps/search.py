"""The Optuna study of one sweep: its sampler and pruner, the distributions of its parameters, and
its rebuild from recorded trials.

The study lives in memory (ask-and-tell; no Optuna storage): the sweep's run history is the
durable record, and a restarted service replays it here, in trial order: each recorded trial is
asked again with its parameters fixed (enqueue_trial), its recorded values are reported and shown
to the pruner (whose bookkeeping, such as successive halving's rungs, lives on the trials), and an
ended trial is told its end. The sampler is seeded with the sweep's seed plus the number of
replayed trials, so a restarted sweep does not propose its first parameters again; a grid keeps
its seed (it orders the grid's points) and each replayed trial is marked with its point.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from tunix_rt.training.sweeps.record import TrialRecord
from tunix_rt.training.sweeps.spec import SweepSpec
from tunix_rt.v1 import run_pb2

# Optuna logs every trial at INFO; the sweep's own events say the same.
optuna.logging.set_verbosity(optuna.logging.WARNING)

_ENDED: dict[int, TrialState] = {
    run_pb2.RUN_STATE_SUCCEEDED: TrialState.COMPLETE,
    run_pb2.RUN_STATE_PRUNED: TrialState.PRUNED,
    run_pb2.RUN_STATE_FAILED: TrialState.FAIL,
    run_pb2.RUN_STATE_CANCELLED: TrialState.FAIL,
}


def distributions(spec: SweepSpec) -> dict[str, BaseDistribution]:
    found: dict[str, BaseDistribution] = {}
    for p in spec.parameters:
        if p.kind == "float":
            found[p.name] = FloatDistribution(p.low, p.high, log=p.log)
        elif p.kind == "int":
            found[p.name] = IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            found[p.name] = CategoricalDistribution(p.choices)
    return found


def grid(spec: SweepSpec) -> dict[str, list[Any]]:
    return {
        p.name: list(p.choices)
        if p.kind == "categorical"
        else list(range(int(p.low), int(p.high) + 1))
        for p in spec.parameters
    }


def sampler(spec: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.algorithm == "grid":
        return optuna.samplers.GridSampler(grid(spec), seed=seed)
    if spec.algorithm == "cma_es":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    # TPE models the good and bad trials once a few random ones exist: Optuna's default of 10
    # random trials would leave a small sweep entirely random.
    startup = min(10, max(2, spec.max_trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """The sweep's pruner. Resources are optimizer steps: the base job's eval interval is the
    first rung (Optuna's estimate from the first finished trial when the job leaves it to the
    trainer) and its max_steps the last."""
    if spec.pruner == "median":
        # Judge against the median once a few trials have finished (Optuna's default of 5
        # would leave a small sweep unpruned).
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, spec.max_trials // 4)))
    if spec.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.eval_interval or "auto")
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.eval_interval or 1, max_resource=spec.max_steps or "auto"
        )
    return optuna.pruners.NopPruner()


class Search:
    """Asks for parameters, takes reports and results; trials are keyed by the sweep's trial
    number (Optuna's own numbering is not relied on)."""

    def __init__(self, spec: SweepSpec, replayed: int = 0) -> None:
        self.spec = spec
        self.distributions = distributions(spec)
        # A grid's seed orders its points, which replayed trials refer to: it stays the same.
        offset = 0 if spec.algorithm == "grid" else replayed
        self._sampler = sampler(spec, spec.seed + offset)
        self.study = optuna.create_study(
            direction="maximize" if spec.maximize else "minimize",
            sampler=self._sampler,
            pruner=pruner(spec),
        )
        self._live: dict[int, optuna.trial.Trial] = {}

    def rebuild(self, trials: list[TrialRecord]) -> None:
        """Replays recorded trials in number order (see the module docstring)."""
        for trial in trials:
            self.study.enqueue_trial(trial.params, skip_if_exists=False)
            self._ask(trial.number)
            self._mark_grid(trial.number, trial.params)
            for step, value in sorted(trial.reports.items()):
                self.report(trial.number, step, value)
            if trial.ended:
                self.tell(trial.number, trial.state, trial.value)

    def ask(self, number: int) -> dict[str, Any]:
        """New parameters for trial `number`."""
        return self._ask(number)

    def _ask(self, number: int) -> dict[str, Any]:
        trial = self.study.ask(self.distributions)
        self._live[number] = trial
        return {name: _plain(trial.params[name]) for name in self.distributions}

    def report(self, number: int, step: int, value: float) -> bool:
        """Records the objective at `step`; whether the pruner stops the trial there."""
        trial = self._live[number]
        trial.report(value, step)
        return trial.should_prune()

    def tell(self, number: int, state: int, value: float | None) -> None:
        """Ends trial `number`: SUCCEEDED with its final value, PRUNED, or failed."""
        trial = self._live.pop(number, None)
        if trial is None:
            return
        optuna_state = _ENDED.get(state, TrialState.FAIL)
        if optuna_state == TrialState.COMPLETE and value is None:
            optuna_state = TrialState.FAIL  # succeeded without reporting the objective
        try:
            self.study.tell(
                trial, value if optuna_state == TrialState.COMPLETE else None, state=optuna_state
            )
        except RuntimeError:
            # GridSampler calls Study.stop once its grid is walked, which only works inside
            # Study.optimize; the trial is stored all the same, and the sweep, which never has
            # more trials than the grid has points, ends on its own count.
            if not isinstance(self._sampler, optuna.samplers.GridSampler):
                raise

    # The grid sampler knows which points were tried by a system attribute of each trial; a
    # replayed trial carries its point's index, so the grid is not walked twice.

    def _grid_index(self, params: dict[str, Any]) -> int | None:
        if not isinstance(self._sampler, optuna.samplers.GridSampler):
            return None
        # GridSampler numbers the points of its (seeded, shuffled) grid, each a tuple of values
        # in the order of the sorted parameter names; no public API gives that numbering.
        points: list[tuple[Any, ...]] = self._sampler._all_grids
        key = tuple(params[name] for name in sorted(params))
        return points.index(key) if key in points else None

    def _mark_grid(self, number: int, params: dict[str, Any]) -> None:
        index = self._grid_index(params)
        if index is not None:
            trial = self._live[number]
            storage = self.study._storage  # no public API sets a system attribute
            storage.set_trial_system_attr(trial._trial_id, "grid_id", index)
            storage.set_trial_system_attr(trial._trial_id, "search_space", grid(self.spec))


def _plain(value: Any) -> Any:
    """numpy scalars from a sampler as plain Python, for JSON."""
    return value.item() if hasattr(value, "item") else value
