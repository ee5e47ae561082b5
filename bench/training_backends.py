"""Training backends side by side: a plain hand-written PyTorch loop, the torch backend's loop and
the JAX backend's loop; same model, same packed batches, one process, alternating rounds.

Run: `PYTHONPATH=clients:services .venv/bin/python bench/training_backends.py
[--preset llama3-2.5m] [--batch 8] [--seq 128] [--steps 30] [--rounds 2]`.

All three train the same architecture (the JAX one from its own init) on the same packed batches
of datasets/reasoning-train-v1.jsonl with the same loss (prompt-masked next-token cross-entropy
over a block-diagonal causal mask), AdamW and clipping, and read the loss back every step (a live
metric stream needs it). Tokens/s counts every position of the `[B, T]` batch; steady state skips
the first 5 steps. Printed: torch backend ÷ plain loop (the backend's overhead; aim ≥ 0.95) and
JAX backend ÷ torch backend (what the automatic backend choice rests on,
tunix_rt.training.backend_choice), for the best round and the median round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_throughput import load_examples  # type: ignore[import-not-found]
from training_throughput import ours as jax_backend_seconds

from tunix_rt.models import presets
from tunix_rt.models.tokenizer import TextTokenizer, train_tokenizer
from tunix_rt.models.torch import model as model_lib
from tunix_rt.training import packing
from tunix_rt.training.backends.adamw import make_schedule
from tunix_rt.training.backends.base import SilentReporter
from tunix_rt.training.backends.torch import trainer
from tunix_rt.training.backends.torch.loss import attention_mask
from tunix_rt.training.backends.torch.parallel import single
from tunix_rt.training.spec import Hyperparameters

WARMUP_STEPS = 5


class StepTimes(SilentReporter):
    """A Reporter that keeps the step times the torch backend's loop reports."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "step_time_seconds" in values:
            self.seconds[step] = values["step_time_seconds"]


def torch_backend_seconds(
    arch: presets.ArchitectureConfig,
    hyper: Hyperparameters,
    batcher: packing.Batcher,
    tokenizer: TextTokenizer,
    steps: int,
) -> float:
    """Steady-state seconds per step of the torch backend's TrainingLoop."""
    model = model_lib.create_model(model_lib.config_for(arch, tokenizer), hyper.seed)
    reporter = StepTimes()
    with tempfile.TemporaryDirectory() as workdir:
        loop = trainer.TrainingLoop(
            model=model,
            module=model,
            optimizer=trainer.make_optimizer(model, hyper),
            batcher=batcher,
            plan=trainer.Plan(steps, 1, 0, 0),
            schedule=make_schedule(hyper, steps, 0),
            max_grad_norm=hyper.max_grad_norm,
            reporter=reporter,
            evaluator=None,
            seed=hyper.seed,
            workdir=Path(workdir),
            parallel=single(),
            autocast=None,
        )
        loop.run(0)
    return statistics.mean(reporter.seconds[s] for s in range(WARMUP_STEPS + 1, steps + 1))


def plain_seconds(
    arch: presets.ArchitectureConfig,
    hyper: Hyperparameters,
    batcher: packing.Batcher,
    tokenizer: TextTokenizer,
    steps: int,
) -> float:
    """Steady-state seconds per step of the loop anyone would write by hand."""
    model = model_lib.create_model(model_lib.config_for(arch, tokenizer), hyper.seed).train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": hyper.weight_decay},
        {"params": other},
    ]
    optimizer = torch.optim.AdamW(
        groups,
        lr=hyper.learning_rate,
        betas=(0.9, 0.95),
        weight_decay=0.0,
    )
    stamps = []
    for index in range(steps):
        stamps.append(time.perf_counter())
        batch = batcher.batch(index)
        ids = torch.from_numpy(batch.tokens).long()
        labels = ids.masked_fill(~torch.from_numpy(batch.loss_mask), -100)[:, 1:]
        logits = model(
            input_ids=ids,
            attention_mask=attention_mask(torch.from_numpy(batch.segment_ids)),
            position_ids=torch.from_numpy(batch.positions).long(),
        ).logits[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), hyper.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
    stamps.append(time.perf_counter())
    return (stamps[steps] - stamps[WARMUP_STEPS]) / (steps - WARMUP_STEPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="llama3-2.5m")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-jax", action="store_true")
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
    print(
        f"{args.preset} ({presets.parameter_count(arch):,} params), batch {args.batch}x{args.seq}, "
        f"{args.steps} steps, torch {torch.__version__} with {torch.get_num_threads()} threads"
    )
    runners: dict[str, Any] = {
        "plain": lambda: plain_seconds(arch, hyper, batcher, tokenizer, args.steps),
        "torch": lambda: torch_backend_seconds(arch, hyper, batcher, tokenizer, args.steps),
    }
    if not args.skip_jax:
        runners["jax"] = lambda: jax_backend_seconds(arch, hyper, batcher, tokenizer, args.steps)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(args.rounds):
        for name, run in runners.items():
            seconds = run()
            rates[name].append(tokens / seconds)
            rate = tokens / seconds
            print(f"  round {round_} {name:5s} {seconds * 1e3:7.1f} ms/step {rate:8.0f} tokens/s")
    # On a shared host other processes' load swings single runs by up to 10x (torch's OpenMP
    # threads suffer most); the best round is the least disturbed one, the median the typical.
    for label, pick in (("best", max), ("median", statistics.median)):
        rate = {name: float(pick(values)) for name, values in rates.items()}
        line = ", ".join(f"{n} {v:.0f}" for n, v in rate.items())
        line += f"; torch backend / plain loop {rate['torch'] / rate['plain']:.3f}"
        if "jax" in rate:
            line += f"; jax backend / torch backend {rate['jax'] / rate['torch']:.3f}"
        print(f"tokens/s ({label}): {line}")


if __name__ == "__main__":
    main()
