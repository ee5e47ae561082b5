"""Device peak FLOP/s (tunix_rt.training.peak_flops): the datasheet table and the CPU probe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunix_rt.training import devices, peak_flops

TERA = 1e12


@pytest.mark.parametrize(
    ("name", "fp32", "bf16"),
    [
        ("NVIDIA H100 80GB HBM3", 494.5, 989.5),
        ("NVIDIA H100 PCIe", 378.0, 756.5),
        ("NVIDIA H100 NVL", 417.5, 835.5),
        ("NVIDIA H200", 494.5, 989.5),
        ("NVIDIA A100-SXM4-40GB", 156.0, 312.0),
        ("NVIDIA A100 80GB PCIe", 156.0, 312.0),
        ("NVIDIA L40S", 183.0, 362.05),
        ("NVIDIA L4", 60.0, 121.0),
        ("NVIDIA A10G", 62.5, 125.0),
        ("NVIDIA GeForce RTX 4090", 82.6, 165.2),
        ("Tesla V100-SXM2-16GB", 15.7, 15.7),
        ("Tesla T4", 8.1, 8.1),
    ],
)
def test_known_gpus_get_their_dense_datasheet_peak(name: str, fp32: float, bf16: float) -> None:
    peak = peak_flops.gpu_peak(name)
    assert peak is not None
    assert peak.fp32 == pytest.approx(fp32 * TERA)
    assert peak.bf16 == pytest.approx(bf16 * TERA)
    assert peak.source.startswith("datasheet")
    assert peak.for_dtype(bfloat16=True) == peak.bf16


def test_an_unknown_gpu_has_no_peak() -> None:
    assert peak_flops.gpu_peak("Imaginary Accelerator 9000") is None


def test_the_cpu_probe_is_taken_once_per_process_and_shared_by_slots() -> None:
    per_core = peak_flops.cpu_probe()
    # A 1024² float32 matmul runs at a few GFLOP/s at the very least on any core we serve from.
    assert per_core > 1e9
    start = time.perf_counter()
    assert peak_flops.cpu_probe() == per_core
    assert time.perf_counter() - start < 0.01  # cached
    # Slots get the probed core times their cores, and together no more than the host.
    slots = devices.cpu_slots(2)
    assert slots[0].peak_flops_fp32 == pytest.approx(per_core * devices.slot_cores(2))
    assert sum(d.peak_flops_fp32 for d in slots) <= per_core * max(2, os.cpu_count() or 1)
    assert all(d.peak_flops_source.startswith("probe") for d in slots)
    # bfloat16 is probed where the CPU has it (AVX-512 BF16 / AMX: faster than float32), and
    # is float32's figure elsewhere.
    native = {"avx512_bf16", "amx_bf16"} & set(Path("/proc/cpuinfo").read_text().split())
    for slot in slots:
        if native:
            assert slot.peak_flops_bf16 > slot.peak_flops_fp32
            assert "bfloat16" in slot.peak_flops_source
        else:
            assert slot.peak_flops_bf16 == slot.peak_flops_fp32


def test_a_cpu_worker_is_handed_its_slots_peak() -> None:
    env = devices.worker_environment("cpu", ["cpu:0", "cpu:1"], 1)
    handed = json.loads(env[peak_flops.ENV])
    assert handed["count"] == 2
    slot = peak_flops.cpu_slot_peak(1)
    assert slot is not None and handed["fp32"] == pytest.approx(slot.fp32)
    assert peak_flops.ENV not in devices.worker_environment("gpu", ["gpu:0"], 1)


def test_a_child_handed_the_probe_reuses_it() -> None:
    """The Ray driver is started again on every reconnect: it reads the service's probe from its
    environment instead of probing (a probe takes ~2.4 s of CPU on the 2-core VM)."""
    code = (
        "from tunix_rt.training import peak_flops as p; "
        "print(p.cpu_probe(), p.cpu_probe(bfloat16=True))"
    )
    env = {**os.environ, **peak_flops.probe_environment(), "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # A probe of its own would measure other figures: equal ones were handed down.
    assert [float(v) for v in out.stdout.split()] == [
        peak_flops.cpu_probe(),
        peak_flops.cpu_probe(bfloat16=True),
    ]
