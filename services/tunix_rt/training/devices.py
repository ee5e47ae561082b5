"""The device inventory of a training host, taken once at start.

CPU slots are configurable (a share of the host's cores each). Accelerators are found the way the
frameworks would see them, without initialising any framework in the service process (which would
grab GPU memory): GPUs from `nvidia-smi`, whose indices are what CUDA_VISIBLE_DEVICES takes.
Each device carries its peak FLOP/s (training.peak_flops): a GPU's from the datasheet table, a CPU
slot's from a ~0.5 s matmul probe taken here once per process, before the service serves.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tunix_rt.training import peak_flops
from tunix_rt.training.scheduler import Device


def cpu_slots(count: int) -> list[Device]:
    """`count` slots sharing the host's cores, each with the probed matmul peak of its cores
    (as build_manager shares them: cpu_count // count each)."""
    peak = peak_flops.cpu_slot_peak(slot_cores(count))
    return [
        Device(
            id=f"cpu:{n}",
            kind="cpu",
            platform="cpu",
            peak_flops_fp32=peak.fp32 if peak else 0.0,
            peak_flops_bf16=peak.bf16 if peak else 0.0,
            peak_flops_source=peak.source if peak else "",
        )
        for n in range(count)
    ]


def slot_cores(slot_count: int) -> int:
    """The host cores each of `slot_count` CPU slots gets."""
    return max(1, (os.cpu_count() or 1) // max(1, slot_count))


def nvidia_gpus(timeout: float = 10.0) -> list[Device]:
    """GPUs as `nvidia-smi` lists them; none when it is absent or fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        out = subprocess.run(
            [binary, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        index, name, memory_mib = (part.strip() for part in line.split(","))
        peak = peak_flops.gpu_peak(name)
        gpus.append(
            Device(
                id=f"gpu:{int(index)}",
                kind="gpu",
                platform="cuda",
                description=name,
                memory_bytes=int(float(memory_mib)) << 20,
                # bf16 tensor cores arrived with Ampere (A100, H100, RTX 30xx and later).
                supports_bfloat16=not any(old in name for old in ("V100", "T4", "P100", "K80")),
                peak_flops_fp32=peak.fp32 if peak else 0.0,
                peak_flops_bf16=peak.bf16 if peak else 0.0,
                peak_flops_source=peak.source if peak else "",
            )
        )
    return gpus


def inventory(cpu_slot_count: int, probe_gpus: bool = True) -> list[Device]:
    return (nvidia_gpus() if probe_gpus else []) + cpu_slots(cpu_slot_count)


def worker_environment(kind: str, ids: list[str], cores_per_slot: int) -> dict[str, str]:
    """Environment that makes a worker see only its devices, with no GPU memory preallocation."""
    indices = [device.split(":", 1)[1] for device in ids]
    if kind == "gpu":
        return {
            "CUDA_VISIBLE_DEVICES": ",".join(indices),
            "JAX_PLATFORMS": "cuda,cpu",
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        }
    threads = str(max(1, cores_per_slot * len(ids)))
    env = {
        "CUDA_VISIBLE_DEVICES": "",
        "JAX_PLATFORMS": "cpu",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        # The job's MFU denominator: the probe inventory took (cached); a GPU worker looks its
        # card up in the same table itself.
        **peak_flops.environment(peak_flops.cpu_slot_peak(cores_per_slot), len(ids)),
    }
    if len(ids) > 1:
        # Several CPU slots train data-parallel: XLA shows one host device per slot.
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={len(ids)}"
    return env
