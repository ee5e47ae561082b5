"""A sweep as a picture (`tunix-rt sweep plot`): each trial's objective over time with the best so
far as a step line, then one panel per parameter with its values against the objective (log axes
for log-scale ranges). Pruned and failed trials are drawn with their last reported value, hollow.

matplotlib is imported inside `plot_sweep` only: it is slow to import and only this command needs
it.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format

from tunix_rt.v1 import run_pb2, sweep_pb2

MARKERS = {
    run_pb2.RUN_STATE_SUCCEEDED: ("o", "tab:blue", "succeeded"),
    run_pb2.RUN_STATE_PRUNED: ("v", "tab:orange", "pruned"),
    run_pb2.RUN_STATE_FAILED: ("x", "tab:red", "failed"),
}


def _seconds(trial: sweep_pb2.SweepTrial) -> float:
    stamp = trial.end_time if trial.end_time.seconds else trial.create_time
    return stamp.seconds + stamp.nanos / 1e9


def best_so_far(trials: list[sweep_pb2.SweepTrial], maximize: bool) -> list[tuple[float, float]]:
    """(seconds, best objective) each time a succeeded trial improved on the best, in time order."""
    points: list[tuple[float, float]] = []
    best: float | None = None
    for trial in sorted(trials, key=_seconds):
        if trial.state != run_pb2.RUN_STATE_SUCCEEDED or not trial.HasField("objective_value"):
            continue
        value = trial.objective_value
        if best is None or (value > best if maximize else value < best):
            best = value
            points.append((_seconds(trial), value))
    return points


def plot_sweep(sweep: sweep_pb2.Sweep, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in sweep.trials if t.HasField("objective_value")]
    maximize = sweep.objective.direction == sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE
    panels = 1 + len(sweep.search_space)
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    start = min((_seconds(t) for t in trials), default=0.0)
    over_time = axes[0][0]
    for state, (marker, color, label) in MARKERS.items():
        chosen = [t for t in trials if t.state == state]
        if chosen:
            over_time.scatter(
                [(_seconds(t) - start) / 60 for t in chosen],
                [t.objective_value for t in chosen],
                marker=marker,
                color=color,
                label=label,
            )
    steps = best_so_far(list(sweep.trials), maximize)
    if steps:
        xs = [(s - start) / 60 for s, _ in steps] + [
            max((_seconds(t) - start) / 60 for t in trials)
        ]
        ys = [v for _, v in steps] + [steps[-1][1]]
        over_time.step(xs, ys, where="post", color="black", label="best so far")
    over_time.set_xlabel("minutes since the first trial ended")
    over_time.set_ylabel(sweep.objective.metric)
    over_time.set_title(f"{sweep.name} ({'max' if maximize else 'min'})")
    over_time.legend(fontsize="small")
    for n, parameter in enumerate(sweep.search_space, start=1):
        axis = axes[0][n]
        for state, (marker, color, label) in MARKERS.items():
            chosen = [t for t in trials if t.state == state]
            values = [json_format.MessageToDict(t.params).get(parameter.name) for t in chosen]
            axis.scatter(
                [str(v) if parameter.HasField("categorical") else v for v in values],
                [t.objective_value for t in chosen],
                marker=marker,
                color=color,
                label=label,
            )
        domain = parameter.WhichOneof("domain")
        if domain and domain != "categorical" and getattr(parameter, domain).log:
            axis.set_xscale("log")
        axis.set_xlabel(parameter.name)
        axis.set_ylabel(sweep.objective.metric)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
