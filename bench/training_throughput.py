"""Trainer throughput: our JAX path (tunix PeftTrainer driven by backends/jax/trainer.py) against
a hand-written `jax.jit` + optax loop, same model, batches, loss and optimizer, in one process.

Run: `PYTHONPATH=clients:services .venv/bin/python bench/training_throughput.py
[--preset llama3-2.5m] [--batch 8] [--seq 128] [--steps 40] [--rounds 2]`.

Both loops train from the same initial weights on the same packed batches of
datasets/reasoning-train-v1.jsonl and sync the loss to the host every step (a live metric stream
needs it). Tokens/s counts every position of the `[B, T]` batch, padding included, for both;
steady state skips the first 5 steps (compilation). Rounds alternate so machine noise hits both;
the printed ratio (ours / hand-written, median over rounds) is what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import optax
from flax import nnx

from tunix_rt.models import presets
from tunix_rt.models.jax import linear_grad
from tunix_rt.models.jax import model as model_lib
from tunix_rt.models.tokenizer import TextTokenizer, train_tokenizer
from tunix_rt.training import packing
from tunix_rt.training.backends.adamw import make_schedule
from tunix_rt.training.backends.base import Example, SilentReporter
from tunix_rt.training.backends.jax import trainer
from tunix_rt.training.backends.jax.evaluation import Evaluator
from tunix_rt.training.backends.jax.loss import make_loss_fn, model_input
from tunix_rt.training.backends.jax.optimizer import make_optimizer
from tunix_rt.training.spec import Hyperparameters

ROOT = Path(__file__).resolve().parent.parent
WARMUP_STEPS = 5


class StepTimes(SilentReporter):
    """A Reporter that keeps the step times our trainer reports."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "step_time_seconds" in values:
            self.seconds[step] = values["step_time_seconds"]


def load_examples(limit: int) -> list[Example]:
    rows = [json.loads(line) for line in (ROOT / "datasets/reasoning-train-v1.jsonl").open()]
    return [Example.of_row(r, "traces/bench") for r in rows[:limit]]


def ours(
    arch: presets.ArchitectureConfig,
    hyper: Hyperparameters,
    batcher: packing.Batcher,
    tokenizer: TextTokenizer,
    steps: int,
) -> float:
    """Steady-state seconds per step of our trainer."""
    model = model_lib.create_model(arch, hyper.seed)
    linear_grad.install(model)  # as the JAX backend builds a model it fully fine-tunes
    schedule = make_schedule(hyper, steps, 0)
    reporter = StepTimes()
    with tempfile.TemporaryDirectory() as workdir:
        loop = trainer.TrainingLoop(
            batcher=batcher,
            plan=trainer.Plan(steps, 1, 0, 0),
            schedule=schedule,
            reporter=reporter,
            evaluator=Evaluator(model, tokenizer, [], [], hyper.batch_size, hyper.max_seq_len, 1),
            seed=hyper.seed,
            lora=False,
            workdir=Path(workdir),
        )
        trainer.run(
            model=model,
            optimizer=make_optimizer(hyper, schedule),
            loss_fn=make_loss_fn(),
            loop=loop,
            checkpoint_dir=Path(workdir) / "checkpoints",
        )
    # The last step's time includes the final checkpoint's wait; leave it out.
    times = [reporter.seconds[s] for s in range(WARMUP_STEPS + 1, steps)]
    return statistics.mean(times)


def hand_written(
    arch: presets.ArchitectureConfig, hyper: Hyperparameters, batcher: packing.Batcher, steps: int
) -> float:
    """Steady-state seconds per step of a plain jax.jit + optax loop."""
    model = model_lib.create_model(arch, hyper.seed)
    tx = make_optimizer(hyper, make_schedule(hyper, steps, 0))
    parts: Any = nnx.split(model, nnx.Param, ...)
    graphdef, params, rest = parts
    opt_state = tx.init(params)
    loss_fn = make_loss_fn()

    def step(params: Any, opt_state: Any, batch: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
        def loss_of(p: Any) -> Any:
            return loss_fn(nnx.merge(graphdef, p, rest), **model_input(batch))

        loss, grads = jax.value_and_grad(loss_of)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, optax.global_norm(grads)

    jitted = jax.jit(step, donate_argnums=(0, 1))
    stamps = []
    for index in range(steps):
        stamps.append(time.perf_counter())
        batch = batcher.batch(index).as_model_input()
        params, opt_state, loss, _ = jitted(params, opt_state, batch)
        float(loss)  # the per-step host sync a metric stream needs
    stamps.append(time.perf_counter())
    return (stamps[steps - 1] - stamps[WARMUP_STEPS]) / (steps - 1 - WARMUP_STEPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="llama3-2.5m")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    arch = presets.get(args.preset).config
    hyper = Hyperparameters(batch_size=args.batch, max_seq_len=args.seq, learning_rate=1e-3)
    examples = load_examples(2000)
    tokenizer = train_tokenizer(
        [t for e in examples for t in (e.prompt, e.target)], arch.vocab_size
    )
    encoded, _ = packing.encode_examples(examples, tokenizer, args.seq)
    batcher = packing.make_batcher("packed", encoded, args.batch, args.seq, 0, tokenizer.pad_id())
    tokens = args.batch * args.seq
    params = presets.parameter_count(arch)
    device = jax.devices()[0]
    print(
        f"{args.preset} ({params:,} params), batch {args.batch}x{args.seq}, {args.steps} steps, "
        f"{jax.device_count()} {device.platform} device(s) ({device.device_kind})"
    )
    rates: dict[str, list[float]] = {"ours": [], "hand": []}
    for round_ in range(args.rounds):
        for name in ("ours", "hand"):
            if name == "ours":
                seconds = ours(arch, hyper, batcher, tokenizer, args.steps)
            else:
                seconds = hand_written(arch, hyper, batcher, args.steps)
            rates[name].append(tokens / seconds)
            rate = tokens / seconds
            print(f"  round {round_} {name:5s} {seconds * 1e3:7.1f} ms/step {rate:8.0f} tokens/s")
    ratio = statistics.median(rates["ours"]) / statistics.median(rates["hand"])
    print(
        f"tokens/s: ours {statistics.median(rates['ours']):.0f}, hand-written "
        f"{statistics.median(rates['hand']):.0f}, ratio {ratio:.3f}"
    )


if __name__ == "__main__":
    main()
