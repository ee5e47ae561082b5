"""Following a sweep (`tunix-rt sweep follow`, `sweep create --follow`): the trials as its event
stream tells them — state, parameters, objective, step — and the best so far.

On a terminal the trials' table is redrawn in place after every event (ANSI: cursor up, clear to
the end of the screen; each line cut to the terminal's width so none wraps and the redraw stays
exact, and to its height, keeping the best and the latest trials). Elsewhere (a pipe, a log
file, CI) each event is one plain line on stderr, and the final table is printed on stdout when
the sweep ends. `--live` / `--lines` choose either way regardless.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field

import click
from google.protobuf import json_format

from tunix_rt.client import names
from tunix_rt.client.cli.follow import STATE_NAMES
from tunix_rt.client.cli.output import echo_table, table_lines
from tunix_rt.client.cli.state import CommandFailed
from tunix_rt.client.training import TrainingClient
from tunix_rt.v1 import run_pb2, sweep_pb2

HEADERS = ("TRIAL", "STATE", "PARAMS", "OBJECTIVE", "STEP", "REASON")
CURSOR_UP_AND_CLEAR = "\x1b[{n}F\x1b[J"  # to the start of the line n up, then clear below


def format_params(trial: sweep_pb2.SweepTrial) -> str:
    values = json_format.MessageToDict(trial.params)
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def format_value(trial: sweep_pb2.SweepTrial) -> str:
    return f"{trial.objective_value:.4g}" if trial.HasField("objective_value") else "-"


def trial_rows(trials: list[sweep_pb2.SweepTrial], best: int | None) -> list[list[str]]:
    return [
        [
            f"{t.number}{' *' if t.number == best else ''}",
            STATE_NAMES.get(t.state, "-"),
            format_params(t),
            format_value(t),
            str(t.last_step or "-"),
            t.reason or "-",
        ]
        for t in trials
    ]


@dataclass
class TrialBoard:
    """The trials of a sweep folded from its events. A trial's state in the stream stays QUEUED
    until it ends; one that has reported a value is shown running."""

    metric: str
    maximize: bool
    trials: dict[int, sweep_pb2.SweepTrial] = field(default_factory=dict)
    best: int | None = None
    state: str = "running"
    notes: list[str] = field(default_factory=list)  # the sweep's state changes and log lines

    def apply(self, event: sweep_pb2.SweepEvent) -> str:
        """Folds one event in; the event as one plain line."""
        payload = event.WhichOneof("payload")
        if payload == "state_change":
            state_change = event.state_change
            self.state = STATE_NAMES.get(state_change.to_state, "-")
            reason = state_change.reason
            line = f"sweep {self.state}" + (f": {reason}" if reason else "")
            self.notes.append(line)
            return line
        if payload == "log":
            self.notes.append(event.log.message)
            return event.log.message
        change = event.trial_change
        trial = sweep_pb2.SweepTrial()
        trial.CopyFrom(change.trial)
        kind = change.kind
        if kind == sweep_pb2.SWEEP_TRIAL_CHANGE_KIND_REPORTED:
            trial.state = run_pb2.RUN_STATE_RUNNING
            what = f"step {change.step}: {self.metric} {change.value:.4g}"
        elif kind == sweep_pb2.SWEEP_TRIAL_CHANGE_KIND_ENDED:
            what = STATE_NAMES.get(trial.state, "-") + (f": {trial.reason}" if trial.reason else "")
            self._consider(trial)
        else:
            what = "created"
        self.trials[trial.number] = trial
        return (
            f"trial {trial.number} {STATE_NAMES.get(trial.state, '-')} [{format_params(trial)}] "
            f"{what}  ({self.best_text()})"
        )

    def _consider(self, trial: sweep_pb2.SweepTrial) -> None:
        if trial.state != run_pb2.RUN_STATE_SUCCEEDED or not trial.HasField("objective_value"):
            return
        current = self.trials.get(self.best) if self.best is not None else None
        value = trial.objective_value
        if current is None or (
            value > current.objective_value if self.maximize else value < current.objective_value
        ):
            self.best = trial.number

    def best_text(self) -> str:
        if self.best is None:
            return "best so far: -"
        return f"best so far: trial {self.best}, {format_value(self.trials[self.best])}"

    def frame(self, sweep: str, width: int, height: int = 1000) -> list[str]:
        """What the terminal shows: the sweep's line, the trials' table, its last note; cut to
        the terminal's size (a redraw can only reach lines still on the screen), keeping the
        best trial and the latest ones."""
        done = sum(t.state not in (run_pb2.RUN_STATE_QUEUED, run_pb2.RUN_STATE_RUNNING)
                   for t in self.trials.values())  # fmt: skip
        head = f"{sweep}  {self.state}  {done}/{len(self.trials)} trials ended  {self.best_text()}"
        numbers = sorted(self.trials)
        room = max(1, height - 5)  # the head, the table's header, a note, "…", the prompt
        if len(numbers) > room:
            latest = numbers[-(room - 1) :] if room > 1 else []
            kept = sorted({*latest, *([self.best] if self.best is not None else [])})
            numbers = kept[-room:]
        rows = trial_rows([self.trials[n] for n in numbers], self.best)
        hidden = len(self.trials) - len(numbers)
        lines = [head, *table_lines(HEADERS, rows)]
        lines += [f"… and {hidden} earlier trials (tunix-rt sweep show {sweep})"] if hidden else []
        lines += self.notes[-1:]
        return [line[: max(1, width - 1)] for line in lines]


class LiveTable:
    """Redraws a frame in place on a terminal."""

    def __init__(self) -> None:
        self.drawn = 0

    def draw(self, lines: list[str]) -> None:
        prefix = CURSOR_UP_AND_CLEAR.format(n=self.drawn) if self.drawn else ""
        # color=True: click strips ANSI codes from what is not a terminal, and --live asked.
        click.echo(prefix + "\n".join(lines), color=True)
        self.drawn = len(lines)


def follow_sweep(client: TrainingClient, name: str, live: bool | None = None) -> None:
    """Follows the sweep to its end: a live table on a terminal (or with `live`), else a line per
    event (stderr) and the trials' table at the end (stdout); exit 1 unless it succeeds."""
    if live is None:
        live = sys.stdout.isatty()
    sweep = client.get_sweep(name)
    board = TrialBoard(
        sweep.objective.metric,
        sweep.objective.direction == sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE,
    )
    table = LiveTable()
    short = names.short_id(sweep.name)
    for event in client.stream_sweep(name):
        line = board.apply(event)
        if live:
            size = shutil.get_terminal_size()
            table.draw(board.frame(short, size.columns, size.lines))
        else:
            click.echo(line, err=True)
    done = client.get_sweep(name)
    best = done.best_trial.number if done.HasField("best_trial") else None
    if not live:
        echo_table(HEADERS, trial_rows(list(done.trials), best))
    if done.state != run_pb2.RUN_STATE_SUCCEEDED:
        raise CommandFailed(f"{short} ended {STATE_NAMES[done.state]}")
    if done.best_model_version:
        click.echo(f"best: {done.best_model_version}")
