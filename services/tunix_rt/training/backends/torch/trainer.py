"""The training loop of the torch backend: data order, accumulation, metrics, evaluation and
checkpoints between optimizer steps, exactly as the JAX backend's loop reports them.

Optimizer step s (1-based) consumes micro-batches `(s-1)*A .. s*A-1` of the batcher, so a resumed
run asks for the next batch directly. Each micro-batch's loss is its mean over target tokens and
the accumulated gradient is the mean over micro-batches (optax.MultiSteps' meaning). Per step it
reports `loss`, `learning_rate` (the rate this update used), `grad_norm` (global norm before
clipping), `step_time_seconds` and `tokens_per_second` (non-padding tokens), then progress, then
a checkpoint and/or an evaluation when due.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tunix_rt.training.backends.adamw import BETAS, EPS
from tunix_rt.training.backends.base import (
    CHECKPOINTING,
    TRAINING,
    NonFiniteLoss,
    Reporter,
    Stopped,
)
from tunix_rt.training.backends.evaluation import evaluate_between_steps
from tunix_rt.training.backends.preparation import Plan as Plan  # re-exported: callers plan runs
from tunix_rt.training.backends.torch import checkpoint
from tunix_rt.training.backends.torch.evaluation import Evaluator
from tunix_rt.training.backends.torch.loss import to_inputs, token_losses
from tunix_rt.training.backends.torch.parallel import Parallel
from tunix_rt.training.packing import Batcher
from tunix_rt.training.spec import Hyperparameters


def make_optimizer(model: Any, hyper: Hyperparameters) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; decoupled weight decay on matrices only (not on norm
    scales and biases), as the JAX backend's mask."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": hyper.weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=hyper.learning_rate, betas=BETAS, eps=EPS
    )


def params_finite(model: Any) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)


class TrainingLoop:
    """Runs optimizer steps from a start step to the plan's total (see the module docstring)."""

    def __init__(
        self,
        *,
        model: Any,  # the model to step (DDP-wrapped with several ranks)
        module: Any,  # the unwrapped model (checkpoints)
        optimizer: torch.optim.Optimizer,
        batcher: Batcher,
        plan: Plan,
        schedule: Callable[[int], float],
        max_grad_norm: float,
        reporter: Reporter,
        evaluator: Evaluator | None,  # None on ranks other than 0
        seed: int,
        workdir: Path,
        parallel: Parallel,
        autocast: torch.dtype | None,
    ) -> None:
        self.model, self.module, self.optimizer = model, module, optimizer
        self.batcher, self.plan, self.schedule = batcher, plan, schedule
        self.max_grad_norm, self.reporter, self.evaluator = max_grad_norm, reporter, evaluator
        self.seed, self.workdir, self.parallel, self.autocast = seed, workdir, parallel, autocast
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.last_loss = math.nan
        self.last_metrics: dict[str, float] = {}
        self._rates: list[float] = []  # tokens/s of every step but the first of this call

    def mean_tokens_per_second(self) -> float | None:
        """Training throughput over this call's steps, the first (warm-up) excluded."""
        return sum(self._rates) / len(self._rates) if self._rates else None

    def _step(self, step: int) -> dict[str, float]:
        """Optimizer step `step`: its micro-batches, clipping, the update; its metrics."""
        plan, parallel = self.plan, self.parallel
        learning_rate = self.schedule(step - 1)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        start = time.perf_counter()
        tokens, local_sum = 0, 0.0
        rows = slice(parallel.rank, None, parallel.world)
        first = (step - 1) * plan.accumulation
        for k in range(plan.accumulation):
            batch = self.batcher.batch(first + k)
            tokens += batch.num_tokens
            # Every rank knows the whole micro-batch's target count, so the loss is the global
            # token mean (DDP averages gradients over ranks: scale by the world size back).
            scale = parallel.world / max(1, batch.num_target_tokens) / plan.accumulation
            with parallel.no_sync(self.model, last=k == plan.accumulation - 1):
                total, _ = token_losses(
                    self.model, to_inputs(batch, parallel.device, rows), self.autocast
                )
                (total * scale).backward()  # type: ignore[no-untyped-call]
            local_sum += float(total.detach()) / max(1, batch.num_target_tokens)
        if self.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        else:
            norm = torch.nn.utils.get_total_norm(
                [p.grad for p in self.params if p.grad is not None]
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss = parallel.all_sum([local_sum])[0] / plan.accumulation
        grad_norm = float(norm)
        seconds = time.perf_counter() - start
        if not math.isfinite(loss):
            raise NonFiniteLoss(step, loss)
        return {
            "loss": loss,
            "learning_rate": learning_rate,
            "grad_norm": grad_norm,
            "step_time_seconds": seconds,
            "tokens_per_second": tokens / seconds,
        }

    def run(self, start_step: int) -> None:
        """Trains steps start_step+1 .. total; the final checkpoint unless one exists."""
        plan, reporter, accumulation = self.plan, self.reporter, self.plan.accumulation
        if start_step:  # resumed: say where from before the first new step's metrics
            epoch = self.batcher.epoch_after(start_step * accumulation - 1)
            reporter.progress(start_step, plan.total_steps, epoch)
        self.model.train()
        for step in range(start_step + 1, plan.total_steps + 1):
            if self.parallel.any(reporter.should_stop()):
                raise Stopped()
            values = self._step(step)
            if step > start_step + 1:
                self._rates.append(values["tokens_per_second"])
            self.last_loss, self.last_metrics = values["loss"], values
            reporter.metrics(step, values)
            reporter.progress(
                step, plan.total_steps, self.batcher.epoch_after(step * accumulation - 1)
            )
            if plan.due(step, plan.checkpoint_every):
                self.save_checkpoint(step)
            if plan.due(step, plan.eval_every):
                self.evaluate(step)
        if self.parallel.any(reporter.should_stop()):
            raise Stopped()
        total = plan.total_steps
        if total > 0 and checkpoint.latest_step(self.workdir) != total:
            self.save_checkpoint(total)

    def save_checkpoint(self, step: int) -> None:
        """Saves weights, optimizer state, data position and RNGs of `step` (rank 0); skipped
        with a log line when the weights are non-finite."""
        if not self.parallel.is_main:
            return
        if not params_finite(self.module):
            self.reporter.log(f"not checkpointing step {step}: non-finite weights", "WARNING")
            return
        self.reporter.phase(CHECKPOINTING)
        path = checkpoint.save(
            self.workdir,
            step,
            step * self.plan.accumulation,
            self.seed,
            self.module,
            self.optimizer,
        )
        self.reporter.phase(TRAINING)
        self.reporter.checkpoint(step, str(path), {"loss": self.last_loss})

    def evaluate(self, step: int) -> None:
        if self.evaluator is None:
            return
        values = evaluate_between_steps(self.evaluator, self.reporter)
        if values:
            self.reporter.metrics(step, values)
