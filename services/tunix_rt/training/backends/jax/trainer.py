"""Training with tunix's PeftTrainer: our loss, data order, metrics, evaluation and checkpoints.

How PeftTrainer (tunix 0.1.7) is driven, and why:

- Data comes through `DataHooks`: micro-batch `trainer.iter_steps` of the batcher. That counter
  is the trainer's own, restored from a checkpoint as `train_steps * accumulation`, so a resumed
  run continues with exactly the next batch without re-reading the skipped ones (the plain
  iterator path would replay and discard them). Returning None ends training, so `max_steps`
  stays None, which also keeps off tunix's progress bar (it reads metrics back from the logger).
- tunix logs a step's loss and grad norm one step late (after the next step is dispatched, so the
  host never waits on the device). `MetricsSink` receives them; `TrainingLoop.on_metrics` adds
  the learning rate (the optimizer's own schedule function), step time and tokens/s (from hook
  timestamps), fails a non-finite loss, and reports. What the loop decides at step s (an
  evaluation, a checkpoint) is held back until step s's metrics are out, so events stay in order.
- Checkpoints and evaluations run in `on_train_step_start`, between optimizer steps: step s is
  dispatched, s + 1 not yet. tunix's own interval saving is switched off (checkpoint.options)
  because it cannot attach our metadata or tell us a save happened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tunix.sft import hooks, metrics_logger, peft_trainer

from tunix_rt.training.backends.base import (
    CHECKPOINTING,
    TRAINING,
    NonFiniteLoss,
    Reporter,
    Stopped,
)
from tunix_rt.training.backends.evaluation import evaluate_between_steps
from tunix_rt.training.backends.jax import checkpoint
from tunix_rt.training.backends.jax.evaluation import Evaluator
from tunix_rt.training.backends.jax.loss import model_input
from tunix_rt.training.backends.jax.mesh import DATA_AXES
from tunix_rt.training.backends.jax.multiprocess import local_replica
from tunix_rt.training.backends.preparation import Plan as Plan  # re-exported: callers plan runs
from tunix_rt.training.packing import Batcher


class MetricsSink(metrics_logger.MetricsLogger):  # type: ignore[misc]
    """Receives what PeftTrainer logs; forwards each step's (loss, grad norm) once complete."""

    def __init__(self, on_step: Callable[[int, float, float], None]) -> None:
        super().__init__(None)  # no backends: no process-global jax.monitoring listeners
        self._on_step = on_step
        self._pending: dict[int, dict[str, float]] = {}

    def log(
        self, metrics_prefix: str, metric_name: str, scalar_value: Any, mode: Any, step: int
    ) -> None:
        if str(mode) != "train" or metric_name not in ("loss", "grad_norm"):
            return
        values = self._pending.setdefault(int(step), {})
        values[metric_name] = float(np.asarray(scalar_value))
        if len(values) == 2:
            del self._pending[int(step)]
            self._on_step(int(step), values["loss"], values["grad_norm"])

    def close(self) -> None:
        """Nothing to close (tunix's close clears every jax.monitoring listener of the process)."""


def params_finite(model: nnx.Module) -> bool:
    """Checked on this process's replicas: no collective, so rank 0 alone may ask (a job spread
    over processes replicates its parameters, multiprocess.py)."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return bool(all(bool(jnp.all(jnp.isfinite(local_replica(x)))) for x in leaves))


class TrainingLoop(hooks.TrainingHooks, hooks.DataHooks):  # type: ignore[misc]
    """PeftTrainer's hooks: data order, timing, stop requests, evaluation and checkpoints."""

    def __init__(
        self,
        *,
        batcher: Batcher,
        plan: Plan,
        schedule: Callable[[Any], Any],
        reporter: Reporter,
        evaluator: Evaluator,
        seed: int,
        lora: bool,
        workdir: Path,
        place: Callable[[dict[str, np.ndarray]], Any] | None = None,
    ) -> None:
        """`place`: puts a batch on the devices (a job spread over processes builds its global
        arrays, multiprocess.global_batch)."""
        self.batcher, self.plan, self.schedule = batcher, plan, schedule
        self.place = place
        self.reporter, self.evaluator = reporter, evaluator
        self.seed, self.lora, self.workdir = seed, lora, workdir
        self.start_step = 0
        self.last_loss = math.nan
        self.last_metrics: dict[str, float] = {}
        self._tokens: dict[int, int] = {}  # micro-batch index -> non-padding tokens
        self._step_start: dict[int, float] = {}  # optimizer step -> perf_counter at its start
        self._step_end: dict[int, float] = {}
        self._held: dict[int, list[Callable[[], None]]] = {}  # step -> events after its metrics
        self._rates: list[float] = []  # tokens/s of every step but the first (compilation)

    # -- DataHooks -------------------------------------------------------------------------------

    def load_next_train_batch(self, train_ctx: Any) -> dict[str, np.ndarray] | None:
        index = int(train_ctx.iter_steps)
        if index >= self.plan.total_steps * self.plan.accumulation:
            return None
        batch = self.batcher.batch(index)
        self._tokens[index] = batch.num_tokens
        arrays = batch.as_model_input()
        return arrays if self.place is None else self.place(arrays)

    def load_next_eval_batch(self, train_ctx: Any) -> None:
        return None  # tunix's evaluation is unused: ours also generates

    # -- TrainingHooks ---------------------------------------------------------------------------

    def on_train_start(self, train_ctx: Any) -> None:
        self.start_step = int(train_ctx.train_steps)
        if self.start_step:  # resumed: say where from before the first new step's metrics
            epoch = self.batcher.epoch_after(self.start_step * self.plan.accumulation - 1)
            self.reporter.progress(self.start_step, self.plan.total_steps, epoch)

    def on_train_step_start(self, train_ctx: Any) -> None:
        if self.reporter.should_stop():
            raise Stopped()
        if train_ctx.iter_steps % self.plan.accumulation:
            return  # a later micro-batch of the same optimizer step
        done = int(train_ctx.train_steps)
        now = time.perf_counter()
        if done > self.start_step:
            plan = self.plan
            if plan.due(done, plan.eval_every) or plan.due(done, plan.checkpoint_every):
                for leaf in jax.tree.leaves(nnx.state(train_ctx.model)):
                    leaf.block_until_ready()  # time the step, not the wait
                now = time.perf_counter()
            self._step_end[done] = now
            if plan.due(done, plan.checkpoint_every):
                self.save_checkpoint(train_ctx, done)
            if plan.due(done, plan.eval_every):
                self.evaluate(done)
            now = time.perf_counter()
        self._step_start[done + 1] = now

    def on_train_step_end(self, train_ctx: Any, train_step: int, train_loss: float) -> None:
        """Unused: called one step late; metrics arrive through MetricsSink."""

    def on_eval_step_start(self, train_ctx: Any) -> None:
        """Unused: tunix's evaluation is off."""

    def on_eval_step_end(self, train_ctx: Any, eval_loss: float) -> None:
        """Unused: tunix's evaluation is off."""

    def on_train_end(self, train_ctx: Any) -> None:
        """After the last step has finished on the device: its time and the final checkpoint."""
        done = int(train_ctx.train_steps)
        if done > self.start_step:
            self._step_end[done] = time.perf_counter()
        if self.reporter.should_stop():
            raise Stopped()
        if done > 0 and train_ctx.checkpoint_manager.latest_step() != done:
            self.save_checkpoint(train_ctx, done)

    # -- what happens between steps --------------------------------------------------------------

    def _hold(self, step: int, event: Callable[[], None]) -> None:
        self._held.setdefault(step, []).append(event)

    def save_checkpoint(self, train_ctx: Any, step: int) -> None:
        """Saves params, optimizer state and metadata of `step`; skipped (with a log line) when
        the weights are already non-finite: the loss check fails the job a moment later."""
        if not params_finite(train_ctx.model):
            self.reporter.log(f"not checkpointing step {step}: non-finite weights", "WARNING")
            return
        self.reporter.phase(CHECKPOINTING)
        train_ctx.checkpoint_manager.save(
            step,
            train_ctx.model,
            train_ctx.optimizer,
            save_only_lora_params=self.lora,
            force=True,
            custom_metadata=checkpoint.metadata(step, int(train_ctx.iter_steps), self.seed),
        )
        self.reporter.phase(TRAINING)
        path = str(checkpoint.step_path(self.workdir, step))
        self._hold(step, lambda: self.reporter.checkpoint(step, path, {"loss": self.last_loss}))

    def evaluate(self, step: int) -> None:
        values = evaluate_between_steps(self.evaluator, self.reporter)
        if values:
            self._hold(step, lambda: self.reporter.metrics(step, values))

    def mean_tokens_per_second(self) -> float | None:
        """Training throughput over this call's steps, compilation excluded."""
        return sum(self._rates) / len(self._rates) if self._rates else None

    def on_metrics(self, step: int, loss: float, grad_norm: float) -> None:
        """Step `step`'s loss and grad norm from tunix (see the module docstring)."""
        if not math.isfinite(loss):
            raise NonFiniteLoss(step, loss)
        accumulation = self.plan.accumulation
        first = (step - 1) * accumulation
        tokens = sum(self._tokens.pop(i, 0) for i in range(first, first + accumulation))
        values = {
            "loss": loss,
            "learning_rate": float(self.schedule(step - 1)),
            "grad_norm": grad_norm,
        }
        start, end = self._step_start.pop(step, None), self._step_end.pop(step, None)
        if start is not None and end is not None and end > start:
            values["step_time_seconds"] = end - start
            values["tokens_per_second"] = tokens / (end - start)
            if step > self.start_step + 1:
                self._rates.append(values["tokens_per_second"])
        self.last_loss, self.last_metrics = loss, values
        self.reporter.metrics(step, values)
        epoch = self.batcher.epoch_after(step * accumulation - 1)
        self.reporter.progress(step, self.plan.total_steps, epoch)
        for event in self._held.pop(step, []):
            event()


class ReadOnlyCheckpoints:
    """A rank's checkpoint manager in a job spread over processes where it is not rank 0: it
    reads checkpoints (restore, latest step) but never writes one."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def save(self, *args: Any, **kwargs: Any) -> bool:
        return False


def run(
    *,
    model: nnx.Module,
    optimizer: optax.GradientTransformation,
    loss_fn: Callable[..., Any],
    loop: TrainingLoop,
    checkpoint_dir: Path,
    data_axes: tuple[str, ...] = DATA_AXES,
    rank: int | None = None,
) -> int:
    """Trains `model` in place (resuming from `checkpoint_dir` when it holds a checkpoint) until
    the loop's plan is done; returns the step training resumed from (0 for a fresh start).
    `data_axes`: the mesh axes the batch is split over; `rank`: this process's in a job spread
    over processes (checkpoint.options)."""
    config = peft_trainer.TrainingConfig(
        eval_every_n_steps=1 << 62,  # tunix's evaluation is unused
        max_steps=None,  # the data hook ends the stream
        gradient_accumulation_steps=loop.plan.accumulation if loop.plan.accumulation > 1 else None,
        checkpoint_root_directory=str(checkpoint_dir),
        checkpointing_options=checkpoint.options(rank),
        pbar_description=None,
        data_sharding_axis=data_axes,
        # One step in flight: the hook that starts step s + 1 runs once step s has finished, so
        # its timestamp ends step s exactly (with 2, steps after a sync point look near-free and
        # the next ones absorb their time). The host work this no longer overlaps (building a
        # batch, dispatch) is ~1 ms against steps of 100+ ms on CPU.
        max_inflight_computations=1,
    )
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if rank is not None:
        checkpoint.save_alone(rank)
    sink = MetricsSink(loop.on_metrics)
    trainer = peft_trainer.PeftTrainer(model, optimizer, config, metrics_logger=sink)
    trainer.with_loss_fn(loss_fn).with_gen_model_input_fn(model_input)
    trainer.with_training_hooks(loop)
    trainer.with_data_hooks(loop)
    if rank:  # it has restored what rank 0 saved; only rank 0 saves (tunix also saves at the end)
        trainer.checkpoint_manager = ReadOnlyCheckpoints(trainer.checkpoint_manager)
    start = int(trainer.train_steps)
    try:
        trainer.train(())
    except BaseException:
        trainer.checkpoint_manager.close()  # nothing pending: saves are synchronous
        raise
    return start
