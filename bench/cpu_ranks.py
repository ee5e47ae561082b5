"""A 2-core CPU job as one process or as two data-parallel ranks: the torch backend's own training,
same job, same global batch, alternating rounds in one run.

Run: `PYTHONPATH=clients:services .venv/bin/python bench/cpu_ranks.py [--preset llama3-small]
[--steps 40] [--rounds 2] [--precision mixed_bfloat16]`.

Both arms train on generated v2 traces (`tunix_rt.datagen`) with the demo's batch (8 packed rows
of 256 tokens). "one process" is `torch_backend.train` with all the host's threads (what a CPU job
is); "2 ranks" runs the backend's data-parallel path (`run_data_parallel`, as on GPUs) with two
gloo ranks of half the threads each: rows split between them, gradients all-reduced every step.
Tokens/s is the job's own metric (the global batch's tokens over the step time as rank 0 measures
it), median over the steps after the first 5. The final losses are printed too: the ranks follow
the one process's curve (to bfloat16's noise in mixed precision).

Why it exists: two independent 1-thread training processes ran at 2 x 5,100 tokens/s where one
2-thread process does 8,300, which suggested a CPU job of two slots should train as two ranks.
Measured with this script, it should not (docs/benchmarks.md): the all-reduce and the lock-step
eat the gain.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from tunix_rt import datagen
from tunix_rt.common.host import cpu_model
from tunix_rt.training.backends import preparation, torch_backend
from tunix_rt.training.backends.base import Example, SilentReporter, TrainData
from tunix_rt.training.backends.torch.parallel import run_data_parallel
from tunix_rt.training.spec import BaseModel, Hyperparameters, Registration, TrainSpec

SKIP = 5


class Collect(SilentReporter):
    """A Reporter that keeps the job's per-step metrics."""

    def __init__(self) -> None:
        self.steps: dict[int, dict[str, float]] = {}

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.steps.setdefault(step, {}).update(values)


def _data(rows: int) -> TrainData:
    examples = [Example.of_row(t) for t in datagen.generate(rows, 7)]
    return TrainData(train=examples, eval=examples[:8])


def _spec(a: argparse.Namespace) -> TrainSpec:
    hyper = Hyperparameters(
        learning_rate=2e-3,
        max_steps=a.steps,
        batch_size=8,
        max_seq_len=256,
        precision=a.precision,
        checkpoint_interval_steps=0,
        eval_interval_steps=0,
        eval_max_examples=1,
        eval_max_new_tokens=1,
    )
    return TrainSpec(
        job_id="bench",
        dataset="datasets/generated",
        base=BaseModel(preset=a.preset),
        backend="torch",
        hyper=hyper,
        lora=None,
        device_kind="cpu",
        device_count=1,
        priority=0,
        registration=Registration(model="models/bench"),
    )


def _rank(
    threads: int, spec: TrainSpec, data: TrainData, workdir: Path, parallel: Any, reporter: Any
) -> Any:
    torch.set_num_threads(threads)
    return torch_backend._train(spec, data, workdir, parallel, reporter)


def _run(a: argparse.Namespace, data: TrainData, ranks: int) -> tuple[float, float]:
    reporter = Collect()
    spec = _spec(a)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if ranks == 1:
            torch_backend.train(spec, data, workdir, reporter)
        else:  # as torch_backend.train does for several GPUs
            arch, base_dir = preparation.architecture(spec)
            preparation.load_tokenizer(data, workdir, arch, base_dir)
            threads = max(1, (os.cpu_count() or 1) // ranks)
            target = functools.partial(_rank, threads, spec, data, workdir)
            run_data_parallel(ranks, target, reporter)
    rates = [
        m["tokens_per_second"]
        for s, m in reporter.steps.items()
        if s > SKIP and "tokens_per_second" in m
    ]
    last = max(s for s, m in reporter.steps.items() if "loss" in m)
    return statistics.median(rates), reporter.steps[last]["loss"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="llama3-small")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--precision", default="mixed_bfloat16")
    a = p.parse_args()
    cores = os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(cores)  # the job's share: every core (as a worker gets)
    cpu = cpu_model()
    print(f"cpu: {cpu}, {cores} cores; {a.preset}, batch 8x256, {a.steps} steps, {a.precision}")
    data = _data(a.rows)
    results: dict[str, list[tuple[float, float]]] = {"one process": [], "2 ranks": []}
    for round_ in range(a.rounds):
        for name, ranks in (("one process", 1), ("2 ranks", 2)):
            rate, loss = _run(a, data, ranks)
            results[name].append((rate, loss))
            print(f"round {round_ + 1} {name}: {rate:,.0f} tokens/s, final loss {loss:.4f}")
    medians: dict[str, Any] = {k: statistics.median(r for r, _ in v) for k, v in results.items()}
    best = {k: max(r for r, _ in v) for k, v in results.items()}
    print(
        f"2 ranks ÷ one process: median {medians['2 ranks'] / medians['one process']:.2f}, "
        f"best {best['2 ranks'] / best['one process']:.2f}"
    )


if __name__ == "__main__":
    main()
