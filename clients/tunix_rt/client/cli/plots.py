"""Runs' metric histories as pictures: a PNG comparing runs, and TensorBoard event files.

The histories come from the registry (ListRunEvents), so any run can be drawn, finished or not,
whichever training service ran it. `tunix-rt runs plot` and `tunix-rt runs tensorboard` (in
`runs`) call these functions.

matplotlib is imported inside `plot_runs` only: it is slow to import and only this command needs it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tunix_rt.client import names
from tunix_rt.client.cli.tfevents import FILE_SUFFIX, EventFileWriter
from tunix_rt.v1 import run_pb2

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# What `runs plot` draws by default, one panel each, in this order.
DEFAULT_PLOT_METRICS = ("loss", "learning_rate", "eval_answer_accuracy", "eval_loss")
TITLES = {
    "loss": "training loss",
    "learning_rate": "learning rate",
    "eval_answer_accuracy": "eval answer accuracy",
    "eval_loss": "eval loss",
    "grad_norm": "gradient norm",
    "tokens_per_second": "tokens / s",
    "step_time_seconds": "step time (s)",
}


@dataclass(frozen=True)
class Point:
    step: int
    value: float
    # Seconds since the epoch.
    wall_time: float


@dataclass
class MetricHistory:
    """Every metric of one run, each as points in step order."""

    run: str
    metrics: dict[str, list[Point]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return names.short_id(self.run)


def metric_history(run: str, events: Iterable[run_pb2.RunEvent]) -> MetricHistory:
    """The metrics events of a run as per-metric series in step order.

    A run resumed from a checkpoint repeats the steps after it: the later event of a step wins, so
    each series is the curve the run finally followed. Events without metrics are skipped.
    """
    latest: dict[str, dict[int, Point]] = defaultdict(dict)
    for event in events:
        if not event.HasField("metrics"):
            continue
        wall_time = event.time.seconds + event.time.nanos / 1e9
        for metric, value in event.metrics.values.items():
            latest[metric][event.step] = Point(event.step, value, wall_time)
    return MetricHistory(
        run=run,
        metrics={m: [points[s] for s in sorted(points)] for m, points in sorted(latest.items())},
    )


def plot_runs(
    histories: Sequence[MetricHistory],
    output: Path,
    *,
    metrics: Sequence[str] = DEFAULT_PLOT_METRICS,
    title: str = "",
    dpi: int = 120,
) -> None:
    """Draws each metric against step in its own panel, one line per run with a legend, into
    `output` (the format follows its suffix: .png, .svg, .pdf)."""
    figure = draw_runs(histories, metrics=metrics, title=title)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=dpi)


def default_title(histories: Sequence[MetricHistory], datasets: Iterable[str]) -> str:
    """`run-a, run-b on dataset-x`: what a picture passed around must say it shows."""
    title = ", ".join(h.label for h in histories)
    named = sorted({names.short_id(d) for d in datasets if d})
    return title + (" on " + ", ".join(named) if named else "")


def draw_runs(
    histories: Sequence[MetricHistory],
    *,
    metrics: Sequence[str] = DEFAULT_PLOT_METRICS,
    title: str = "",
) -> Figure:
    """The figure `plot_runs` saves: one panel per metric, one line per run."""
    # The Agg canvas renders to a file without a display, and without pyplot's global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = 2 if len(metrics) > 1 else 1
    rows = math.ceil(len(metrics) / columns)
    figure = Figure(figsize=(6.4 * columns, 3.8 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        drawn = False
        for history in histories:
            points = [p for p in history.metrics.get(metric, []) if math.isfinite(p.value)]
            if not points:
                continue
            steps = [p.step for p in points]
            values = [p.value for p in points]
            # Sparse series (periodic evals) get markers, so a single point is still visible.
            marker = "o" if len(points) <= 50 else None
            ax.plot(steps, values, marker=marker, markersize=3, label=history.label)
            drawn = True
        ax.set_title(TITLES.get(metric, metric))
        ax.set_xlabel("step")
        if metric.endswith("accuracy"):
            # The whole 0-1 range: an axis fitted to the data turns a 3-point change into a
            # dramatic jump.
            ax.set_ylim(0.0, 1.0)
            ax.set_ylabel("fraction correct")
        ax.grid(True, alpha=0.3)
        if metric == "learning_rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        if drawn:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    return figure


def write_tensorboard(history: MetricHistory, directory: Path) -> tuple[Path, int]:
    """Writes every scalar metric of the run as one new event file in `directory` (tag = metric
    name, step = event step, wall time = event time), removing event files this function wrote
    there before so a rewrite does not double the points. Returns the file and the number of
    scalars written."""
    old = (
        sorted(directory.glob(f"events.out.tfevents.*{FILE_SUFFIX}")) if directory.is_dir() else []
    )
    # One event per (step, time): values recorded together stay together.
    grouped: dict[tuple[int, float], dict[str, float]] = defaultdict(dict)
    for metric, points in history.metrics.items():
        for point in points:
            grouped[(point.step, point.wall_time)][metric] = point.value
    count = 0
    with EventFileWriter(directory) as writer:
        for (step, wall_time), values in sorted(grouped.items()):
            writer.add_scalars(step, wall_time, values)
            count += len(values)
    for path in old:
        if path != writer.path:
            path.unlink(missing_ok=True)
    return writer.path, count
