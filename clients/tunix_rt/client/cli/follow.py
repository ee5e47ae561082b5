"""Following a training job live: a progress bar, its state changes and log lines, its outcome.

`tunix-rt train --follow` and `tunix-rt jobs follow` share this. On a terminal the job is a tqdm bar
(step/total, loss, tokens/s, ETA) with events printed above it; elsewhere (a log file, CI) it is a
progress line at most every PROGRESS_LINE_INTERVAL_S seconds plus the events. The events come from
TrainingClient.stream_metrics, which already hides falling behind and reconnects.

Progress and events go to stderr; the outcome (the registered version, the final eval accuracy)
goes to stdout, so `tunix-rt jobs follow JOB > result.txt` keeps just the result.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from datetime import UTC, datetime
from typing import TextIO

import click
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from tqdm import tqdm

from tunix_rt.client import names
from tunix_rt.client.cli.output import in_training_label
from tunix_rt.client.cli.state import CommandFailed
from tunix_rt.client.training import TERMINAL_STATES, TrainingClient
from tunix_rt.v1 import run_pb2, training_job_pb2

# Without a terminal, a progress line at most this often (eval results and events always print).
PROGRESS_LINE_INTERVAL_S = 10.0
# While the total step count is unknown, ask the service for it at most this often.
TOTAL_POLL_INTERVAL_S = 5.0
# The ETA is the mean rate over this many recent metric events (by their own timestamps, so history
# replayed in a burst gives the rate the job trained at, not the rate it was read at).
RATE_WINDOW = 50
# Exit code when the user stops following with Ctrl-C (128 + SIGINT); the job goes on.
EXIT_INTERRUPTED = 130

STATE_NAMES = {
    run_pb2.RUN_STATE_UNSPECIFIED: "-",
    run_pb2.RUN_STATE_QUEUED: "queued",
    run_pb2.RUN_STATE_RUNNING: "running",
    run_pb2.RUN_STATE_SUCCEEDED: "succeeded",
    run_pb2.RUN_STATE_FAILED: "failed",
    run_pb2.RUN_STATE_CANCELLED: "cancelled",
    run_pb2.RUN_STATE_PRUNED: "pruned",
}
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def _seconds(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def _clock(stamp: timestamp_pb2.Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "--:--:--"
    return datetime.fromtimestamp(_seconds(stamp), UTC).strftime("%H:%M:%S")


def format_duration(seconds: float) -> str:
    """`1:02:03` or `02:03`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def describe_status(status: status_pb2.Status) -> str:
    """A job's error in one line: its message, and the reason and metadata of its ErrorInfo (a
    non-finite loss names its step there)."""
    notes = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            extra = ", ".join(f"{k}={v}" for k, v in sorted(info.metadata.items()))
            notes.append(info.reason + (f" {extra}" if extra else ""))
    text = status.message or "no reason given"
    return " ".join((text + (f" [{'; '.join(notes)}]" if notes else "")).split())


class ProgressView:
    """Step, loss, throughput and ETA of a job, drawn as a tqdm bar on a terminal or as throttled
    lines elsewhere; events are printed above the bar."""

    def __init__(self, label: str, total: int, stream: TextIO, *, tty: bool) -> None:
        self.label = label
        self.total = total
        self.step = 0
        self.stream = stream
        self.metrics: dict[str, float] = {}
        self._times: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)
        self._last_line = -math.inf
        self._bar: tqdm | None = None
        if tty:
            self._bar = tqdm(
                total=total or None,
                desc=label,
                unit="step",
                file=stream,
                dynamic_ncols=True,
                bar_format=BAR_FORMAT,
                leave=True,
            )

    def set_total(self, total: int) -> None:
        if total and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()

    def eta_seconds(self) -> float | None:
        """Seconds to the last step at the recent rate; None until it can be estimated."""
        if not self.total or len(self._times) < 2:
            return None
        (t0, s0), (t1, s1) = self._times[0], self._times[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return max(0, self.total - self.step) * (t1 - t0) / (s1 - s0)

    def summary(self) -> str:
        parts = []
        if "loss" in self.metrics:
            parts.append(f"loss={self.metrics['loss']:.4g}")
        if "tokens_per_second" in self.metrics:
            parts.append(f"{format_rate(self.metrics['tokens_per_second'])} tok/s")
        if "mfu" in self.metrics:
            parts.append(f"MFU {100 * self.metrics['mfu']:.1f}%")
        eta = self.eta_seconds()
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        return ", ".join(parts)

    def metrics_event(self, event: run_pb2.RunEvent) -> None:
        values = dict(event.metrics.values)
        self.metrics.update(values)
        if event.step:
            self.step = event.step
            self._times.append((_seconds(event.time), event.step))
        evals = {k: v for k, v in sorted(values.items()) if k.startswith("eval_")}
        if evals:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in evals.items())
            self.message(f"{_clock(event.time)} step {event.step} in-training eval: {shown}")
        if self._bar is not None:
            self._bar.set_postfix_str(self.summary(), refresh=False)
            self._bar.update(self.step - self._bar.n)
            return
        now = time.monotonic()
        if evals or now - self._last_line >= PROGRESS_LINE_INTERVAL_S or self.step == self.total:
            self._last_line = now
            self.message(self.progress_line())

    def progress_line(self) -> str:
        done = f"step {self.step}/{self.total}" if self.total else f"step {self.step}"
        if self.total:
            done += f" ({100 * self.step / self.total:.0f}%)"
        summary = self.summary()
        return f"{self.label}: {done}" + (f", {summary}" if summary else "")

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            click.echo(text, file=self.stream)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class JobFollower:
    """Follows one job to its end: `run` returns the job as it ended."""

    def __init__(
        self,
        client: TrainingClient,
        name: str,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        # The sequence to continue from after an interruption.
        self.next_sequence = 1
        self.view: ProgressView | None = None
        self._last_poll = -math.inf

    def run(self, from_sequence: int = 1) -> training_job_pb2.TrainingJob:
        job = self.client.get_job(self.name)
        self.name = job.name
        self.next_sequence = max(1, from_sequence)
        self.view = view = ProgressView(
            names.short_id(job.name), job.total_steps, self.stream, tty=self.tty
        )
        view.step = job.step
        try:
            while True:
                if job.state in TERMINAL_STATES and self.next_sequence > job.last_sequence:
                    # Nothing left to show (a later sequence would wait forever).
                    return job
                for event in self.client.stream_metrics(
                    job.name, self.next_sequence, on_resume=self._resumed
                ):
                    self.next_sequence = event.sequence + 1
                    self._show(event)
                job = self.client.get_job(job.name)
                view.set_total(job.total_steps)
                if job.state in TERMINAL_STATES:
                    return job
                # The stream ended though the job goes on (its service handed it over, or
                # restarted): continue from where it stopped.
                time.sleep(1.0)
        finally:
            view.close()

    def _resumed(self, why: str, next_sequence: int) -> None:
        if self.view is not None:
            self.view.message(f"stream {why}; continuing from event {next_sequence}")

    def _show(self, event: run_pb2.RunEvent) -> None:
        view = self.view
        assert view is not None
        kind = event.WhichOneof("payload")
        if kind == "metrics":
            if not view.total and time.monotonic() - self._last_poll >= TOTAL_POLL_INTERVAL_S:
                self._last_poll = time.monotonic()
                view.set_total(self.client.get_job(self.name).total_steps)
            view.metrics_event(event)
        elif kind == "state_change":
            change = event.state_change
            to_state = STATE_NAMES.get(change.to_state, "-")
            text = f"{_clock(event.time)} " + (
                f"{STATE_NAMES.get(change.from_state, '-')} -> {to_state}"
                if change.from_state
                else to_state  # the first event: submitted
            )
            view.message(text + (f": {change.reason}" if change.reason else ""))
            if change.to_state == run_pb2.RUN_STATE_RUNNING and not view.total:
                view.set_total(self.client.get_job(self.name).total_steps)
        elif kind == "log":
            view.message(f"{_clock(event.time)} {event.log.level or 'INFO'} {event.log.message}")
        elif kind == "checkpoint_saved":
            view.message(f"{_clock(event.time)} checkpoint {event.checkpoint_saved.checkpoint}")


def report_outcome(job: training_job_pb2.TrainingJob) -> None:
    """Prints how a finished job ended: on success its registered version and final eval
    accuracy (stdout); on failure or cancellation raises CommandFailed (exit code 1)."""
    job_id = names.short_id(job.name)
    if job.state == run_pb2.RUN_STATE_SUCCEEDED:
        click.echo(f"{job_id} succeeded")
        click.echo(f"registered: {job.registered_model_version or '-'}")
        accuracy = job.latest_metrics.get("eval_answer_accuracy")
        if accuracy is not None:
            hyper = job.hyperparameters
            count = hyper.eval_max_examples if hyper.HasField("eval_max_examples") else None
            click.echo(
                f"eval answer accuracy {in_training_label(count, at_most=True)}: "
                f"{accuracy.value:.4g} (step {accuracy.step})"
            )
        if job.evaluation:
            click.echo(f"evaluation: {job.evaluation}")
        if job.HasField("evaluation_error"):
            click.echo(
                f"warning: evaluation failed: {describe_status(job.evaluation_error)}", err=True
            )
        return
    verb = {
        run_pb2.RUN_STATE_FAILED: "failed",
        run_pb2.RUN_STATE_CANCELLED: "was cancelled",
        run_pb2.RUN_STATE_PRUNED: "was pruned",
    }
    if job.state in verb:
        raise CommandFailed(f"{job_id} {verb[job.state]}: {describe_status(job.error)}")
    raise CommandFailed(f"{job_id} is {STATE_NAMES.get(job.state, '-')}, not finished")


def follow_job(client: TrainingClient, name: str, *, from_sequence: int = 1) -> None:
    """The body of `train --follow` and `jobs follow`: follow, then report the outcome. Ctrl-C
    stops following (exit code 130) and says how to pick up where it stopped."""
    follower = JobFollower(client, name)
    try:
        job = follower.run(from_sequence)
    except KeyboardInterrupt:
        job_id = names.short_id(follower.name)
        click.echo(
            f"\nstopped following {job_id}; the job goes on. Continue with: "
            f"tunix-rt jobs follow {job_id} --from-sequence {follower.next_sequence}",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    report_outcome(job)
