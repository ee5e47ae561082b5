"""MFU of the torch backend's training loop on this CPU: a small and a larger model, float32 and
bfloat16 autocast, side by side in one process (alternating rounds).

Run: `PYTHONPATH=clients:services .venv/bin/python bench/training_mfu.py [--steps 8]
[--rounds 2] [--threads N]`.

The figures are the ones a job streams (training.backends.mfu): model FLOPs per trained token
(models.flops: 3x the forward matmuls and attention over the row) times the loop's
`tokens_per_second` (non-padding tokens), over the CPU peak the training service records
(training.peak_flops: the best float32 1024² numpy matmul on one core, times the threads used
here). bfloat16 is measured with the same float32 peak (the CPU has no faster bfloat16 matmul
that torch uses: see the result), so its MFU compares directly with float32's. Models:
llama3-2.5m (2 layers, d=256) and llama3-2.5m widened to 8 layers x d=512 (MLP 2048, 8 heads
of 64), both at batch 8 x 128 packed from datasets/reasoning-train-v1.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_throughput import load_examples  # type: ignore[import-not-found]

from tunix_rt.common.host import cpu_model
from tunix_rt.models import presets
from tunix_rt.models.tokenizer import train_tokenizer
from tunix_rt.models.torch import model as model_lib
from tunix_rt.training import packing, peak_flops
from tunix_rt.training.backends.adamw import make_schedule
from tunix_rt.training.backends.base import SilentReporter
from tunix_rt.training.backends.mfu import FlopsMeter, MfuReporter
from tunix_rt.training.backends.torch import trainer
from tunix_rt.training.backends.torch.parallel import single
from tunix_rt.training.spec import Hyperparameters

WARMUP_STEPS = 3


class Steps(SilentReporter):
    """A Reporter keeping each step's metrics (behind MfuReporter, as in a job)."""

    def __init__(self) -> None:
        self.values: list[dict[str, float]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "tokens_per_second" in values:
            self.values.append(values)


def measure(
    arch: presets.ArchitectureConfig,
    batcher: packing.Batcher,
    tokenizer: Any,
    steps: int,
    meter: FlopsMeter,
    autocast: torch.dtype | None,
) -> tuple[float, float]:
    """(median tokens/s, median MFU) of the steady-state steps of the torch backend's loop."""
    hyper = Hyperparameters(batch_size=8, max_seq_len=128, learning_rate=1e-3)
    model = model_lib.create_model(model_lib.config_for(arch, tokenizer), 0)
    recorded = Steps()
    with tempfile.TemporaryDirectory() as workdir:
        trainer.TrainingLoop(
            model=model,
            module=model,
            optimizer=trainer.make_optimizer(model, hyper),
            batcher=batcher,
            plan=trainer.Plan(steps, 1, 0, 0),
            schedule=make_schedule(hyper, steps, 0),
            max_grad_norm=1.0,
            reporter=MfuReporter(recorded, meter),
            evaluator=None,
            seed=0,
            workdir=Path(workdir),
            parallel=single(),
            autocast=autocast,
        ).run(0)
    steady = recorded.values[WARMUP_STEPS:]
    return (
        statistics.median(v["tokens_per_second"] for v in steady),
        statistics.median(v["mfu"] for v in steady),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    small = presets.get("llama3-2.5m").config
    large = dataclasses.replace(small, num_layers=8, hidden_size=512, intermediate_size=2048,
                                num_heads=8, num_kv_heads=8, head_dim=64)  # fmt: skip
    examples = load_examples(1000)
    tokenizer = train_tokenizer([t for e in examples for t in (e.prompt, e.target)], 1024)
    encoded, _ = packing.encode_examples(examples, tokenizer, 128)
    batcher = packing.make_batcher("packed", encoded, 8, 128, 0, tokenizer.pad_id())
    slot = peak_flops.cpu_slot_peak(args.threads)
    assert slot is not None, "the CPU probe failed"
    cpu = cpu_model()
    load = os.getloadavg()[0]
    print(
        f"{cpu}, {os.cpu_count()} cores (load average {load:.1f}), torch {torch.__version__} "
        f"with {args.threads} threads; peak {slot.fp32 / 1e9:.0f} GFLOP/s ({slot.source})"
    )
    runs: dict[str, list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        for name, arch in (("llama3-2.5m", small), ("8 layers x 512", large)):
            meter = FlopsMeter.of(arch, 128, None, kind="cpu", device_count=1,
                                  device_name=cpu, bfloat16=False)  # fmt: skip
            meter = dataclasses.replace(meter, peak=slot)
            for dtype_name, autocast in (("float32", None), ("bfloat16", torch.bfloat16)):
                rate, mfu = measure(arch, batcher, tokenizer, args.steps, meter, autocast)
                key = f"{name} {dtype_name}"
                runs.setdefault(key, []).append((rate, mfu))
                print(
                    f"  round {round_} {key:26s} {meter.flops_per_token / 1e6:7.1f} MFLOP/token "
                    f"{rate:8.0f} tokens/s  MFU {100 * mfu:5.1f} %",
                    flush=True,
                )
    print("best round (the least disturbed on a shared host):")
    for name in ("llama3-2.5m", "8 layers x 512"):
        f32 = max(runs[f"{name} float32"])
        b16 = max(runs[f"{name} bfloat16"])
        print(
            f"  {name}: float32 {f32[0]:.0f} tokens/s, MFU {100 * f32[1]:.1f} %; bfloat16 "
            f"autocast {b16[0]:.0f} tokens/s, MFU {100 * b16[1]:.1f} %; bf16/fp32 "
            f"{b16[0] / f32[0]:.2f}"
        )


if __name__ == "__main__":
    main()
