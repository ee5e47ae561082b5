"""Peak FLOP/s of a training device: the denominator of MFU.

GPUs: the vendor's dense (not 2:4-sparse) tensor-core figure by model name, from the table below.
CPUs: measured, because the CPU model behind a host changes and no table covers it: float32
1024² matmuls in numpy on one BLAS thread for about 0.3 s, the best of several, once per process
(`cpu_probe` is cached); on a CPU with native bfloat16 (AVX-512 BF16 or AMX) the same in torch's
bfloat16 when torch is installed (2.3x float32 on a Zen 4 core), else bfloat16's peak is
float32's. The training service takes the probe at start
(devices.inventory) and hands each job its devices' peaks; a worker that got none measures or
looks up its own (`for_job`). Plain Python and numpy: no ML framework in the service process.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

# The environment variable through which the service hands a worker its devices' peak (JSON of
# `Peak.to_json` with `count`).
ENV = "TUNIX_RT_PEAK_FLOPS"
# This host's probe results a process hands its children (`probe_environment`), so a child that
# needs them (the Ray driver, started again on every reconnect) does not take the probe again:
# JSON of {"float32": ..., "bfloat16": ...} per-core FLOP/s.
PROBE_ENV = "TUNIX_RT_CPU_PROBE"
TERA = 1e12


@dataclass(frozen=True)
class Peak:
    """Peak dense FLOP/s of one device in float32 and in bfloat16, and where the figures come
    from."""

    fp32: float
    bf16: float
    source: str

    def for_dtype(self, bfloat16: bool) -> float:
        return self.bf16 if bfloat16 else self.fp32

    def to_json(self) -> dict[str, Any]:
        return {"fp32": self.fp32, "bf16": self.bf16, "source": self.source}


# NVIDIA H200 datasheet (SXM): TF32 989, BF16 1,979 with sparsity, so 494.5 / 989.5 dense.
# (substring of the `nvidia-smi` / torch device name, float32 TFLOP/s, bfloat16 TFLOP/s), dense.
# Most specific names first: the first match wins. float32 is the tensor-core TF32 figure where
# the card has one (what torch and XLA use for float32 matmuls by default on Ampere and later:
# torch.backends.cuda.matmul.allow_tf32 is off by default in torch, so a torch float32 job on an
# A100 or H100 reaches well under it; the figure is the hardware's, the gap is the job's).
_GPUS: tuple[tuple[str, float, float], ...] = (
    # H200 NVL: TF32 835 / BF16 1,671 with sparsity → 417.5 / 835.5 dense.
    ("H200 NVL", 417.5, 835.5),
    ("H200", 494.5, 989.5),
    # NVIDIA H100 datasheet: SXM TF32 989 / BF16 1,979 (sparse) → 494.5 / 989.5 dense;
    # PCIe TF32 756 / BF16 1,513 (sparse) → 378 / 756.5 dense; NVL 835 / 1,671 → 417.5 / 835.5.
    ("H100 NVL", 417.5, 835.5),
    ("H100 PCIe", 378.0, 756.5),
    ("H100", 494.5, 989.5),  # SXM (`NVIDIA H100 80GB HBM3`)
    # NVIDIA A100 datasheet: TF32 156, BF16 312 dense (40 GB and 80 GB, SXM and PCIe alike).
    ("A100", 156.0, 312.0),
    # NVIDIA L40S datasheet: TF32 183, BF16 362.05 dense (366 / 733 with sparsity).
    ("L40S", 183.0, 362.05),
    # NVIDIA L4 datasheet: TF32 120, BF16 242 with sparsity → 60 / 121 dense.
    ("L4", 60.0, 121.0),
    # NVIDIA A10 datasheet: TF32 62.5, BF16 125 dense (125 / 250 with sparsity). NVIDIA publishes
    # no A10G (AWS) datasheet; it is the same GA102 chip at lower clocks, so it gets the A10's
    # figures and its MFU reads slightly low.
    ("A10", 62.5, 125.0),
    # NVIDIA RTX 4090 (Ada whitepaper): FP32 82.6 (no TF32 speed-up over it for dense use in the
    # consumer part: TF32 82.6), BF16 tensor 165.2 dense with FP32 accumulate.
    ("4090", 82.6, 165.2),
    # NVIDIA V100 datasheet (SXM2): FP32 15.7, no bfloat16 (FP16 tensor 125): bf16 = fp32.
    ("V100", 15.7, 15.7),
    # NVIDIA T4 datasheet: FP32 8.1, no bfloat16 (FP16 tensor 65): bf16 = fp32.
    ("T4", 8.1, 8.1),
)


def gpu_peak(name: str) -> Peak | None:
    """The table's peak for a GPU model name (`NVIDIA H100 80GB HBM3`), None when unknown."""
    for needle, fp32, bf16 in _GPUS:
        if needle.lower() in name.lower():
            return Peak(fp32 * TERA, bf16 * TERA, f"datasheet ({needle}, dense)")
    return None


# The probe, run in a child Python with one BLAS thread (argv: seconds, size, dtype; prints
# FLOP/s). float32 in numpy; bfloat16 in torch's oneDNN matmul, only where the CPU has bfloat16
# instructions (elsewhere torch emulates it, slower than float32, and nobody should pick it):
# it prints 0 when there is nothing to measure.
_PROBE = """
import importlib.util, sys, time
seconds, size, dtype = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if dtype == "float32":
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
else:
    flags = open("/proc/cpuinfo").read().split() if sys.platform == "linux" else []
    if not importlib.util.find_spec("torch") or not {"avx512_bf16", "amx_bf16"} & set(flags):
        print(0.0)
        raise SystemExit
    import torch
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(torch.bfloat16)
    b = torch.randn(size, size, generator=gen).to(torch.bfloat16)
a @ b
best, deadline = float("inf"), time.perf_counter() + seconds
while time.perf_counter() < deadline:
    start = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - start)
print(2.0 * size**3 / best)
"""
_ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@functools.cache
def cpu_probe(seconds: float = 0.3, size: int = 1024, bfloat16: bool = False) -> float:
    """One core's float32 (or, with `bfloat16`, native bfloat16: 0 where the CPU or the
    environment has none) matmul FLOP/s: the best of repeated `size`² matmuls over about
    `seconds` on one BLAS thread (after a warm-up); 0 when the probe fails. Cached per process.

    One thread, then times the cores, rather than every thread at once: on a shared host a
    multi-threaded BLAS call waits for its slowest thread at every barrier, so a busy neighbour
    makes it read far under the hardware (measured: 64 GFLOP/s on 2 threads against 83 on one),
    and a job on one slot then reports an MFU above 1. The best of many short (1024², ~25 ms)
    matmuls catches a quiet moment; 1024² already runs at BLAS's full rate on one core. A child
    process because BLAS fixes its thread count when it loads, and this one may have loaded it.
    """
    dtype = "bfloat16" if bfloat16 else "float32"
    if handed := os.environ.get(PROBE_ENV):
        return float(json.loads(handed)[dtype])
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(seconds), str(size), dtype],
            env={**os.environ, **_ONE_THREAD},
            capture_output=True,
            text=True,
            timeout=30 + 10 * seconds,
            check=True,
        ).stdout
        return float(out.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0.0


def probe_environment() -> dict[str, str]:
    """This host's probe results (taken here once) for a child process's environment."""
    return {PROBE_ENV: json.dumps({"float32": cpu_probe(), "bfloat16": cpu_probe(bfloat16=True)})}


def cpu_slot_peak(cores_per_slot: int) -> Peak | None:
    """One CPU slot's peak: the probed core's times the slot's cores; None when the probe
    failed. bfloat16's is probed only on CPUs with bfloat16 instructions (a job that asks for
    mixed_bfloat16 there computes in it); elsewhere it is float32's."""
    per_core = cpu_probe()
    if per_core <= 0:
        return None
    cores = min(os.cpu_count() or 1, cores_per_slot)
    bf16_core = cpu_probe(bfloat16=True)
    source = "probe (numpy float32 1024² matmul on 1 core"
    if bf16_core > 0:
        source += ", torch bfloat16 likewise"
    else:
        bf16_core = per_core
    return Peak(per_core * cores, bf16_core * cores, f"{source}, x{cores})")


def environment(peak: Peak | None, count: int) -> dict[str, str]:
    """The worker environment entry that hands a job of `count` devices their peak."""
    if peak is None:
        return {}
    return {ENV: json.dumps({**peak.to_json(), "count": count})}


def for_job(kind: str, count: int, device_name: str, processes: int = 1) -> tuple[Peak | None, int]:
    """A job's per-device peak and its device count: the service's (ENV: this process's
    devices, times the job's `processes` that each hold as many, such as the ranks of a
    multi-node CPU job), else looked up by `device_name` (a GPU; `count` of them) or probed here
    (CPU)."""
    given = os.environ.get(ENV)
    if given:
        data = json.loads(given)
        peak = Peak(float(data["fp32"]), float(data["bf16"]), str(data["source"]))
        return peak, int(data["count"]) * processes
    if kind == "gpu":
        return gpu_peak(device_name), count
    threads = os.environ.get("OMP_NUM_THREADS", "")
    return cpu_slot_peak(int(threads) if threads.isdigit() else os.cpu_count() or 1), 1
