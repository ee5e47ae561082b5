"""MFU in every job's stream, through a real registry and training service: the device inventory
carries each CPU slot's probed peak, a tiny job's steps carry model FLOPs per token, achieved
FLOP/s and MFU on either backend, provenance records the count and the peak, and `jobs follow`,
`runs show` and `runs tensorboard` show them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from google.protobuf import json_format

from tests.training.conftest import Stack
from tests.training.helpers import TERMINAL, history, submit, tiny_job, wait_for
from tunix_rt.client.cli import main
from tunix_rt.models import flops, presets
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2
from tunix_rt.v1 import training_service_pb2 as tpb


def cli(stack: Stack, *args: str) -> Result:
    argv = ["--registry", stack.registry.address, "--training", stack.training.address]
    return CliRunner().invoke(main, [*argv, "--timeout", "60", *args])


def step_metrics(stack: Stack, run: str) -> list[dict[str, float]]:
    """The values of the run's training-step metric events, in order."""
    return [
        dict(e.metrics.values)
        for e in history(stack.registry_stub, run)
        if e.HasField("metrics") and "tokens_per_second" in e.metrics.values
    ]


def cpu_slot_peak(stack: Stack) -> float:
    devices = stack.training_stub.ListDevices(tpb.ListDevicesRequest()).devices
    slot = next(d for d in devices if d.id == "cpu:0")
    assert slot.peak_flops_source.startswith("probe")
    assert slot.peak_flops_fp32 > 1e9 and slot.peak_flops_bf16 > 0
    return float(slot.peak_flops_fp32)


def check_stream(stack: Stack, job_id: str, steps: int) -> dict[str, Any]:
    """Asserts the run's MFU metrics and provenance; returns the provenance."""
    done = wait_for(stack.training_stub, f"trainingJobs/{job_id}", TERMINAL)
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
    measured = step_metrics(stack, f"runs/{job_id}")
    assert len(measured) == steps
    expected = flops.training_flops(presets.get("llama3-tiny").config, 128).per_token
    # Announced once, with the first measured step; it never changes within a job.
    assert measured[0]["model_flops_per_token"] == expected
    assert all("model_flops_per_token" not in values for values in measured[1:])
    peak = cpu_slot_peak(stack)  # cpu:1 — one slot, float32 on CPU
    for values in measured:
        achieved = values["achieved_flops_per_second"]
        assert achieved == pytest.approx(expected * values["tokens_per_second"], rel=1e-9)
        assert 0 < values["mfu"] <= 1
        assert values["mfu"] == pytest.approx(achieved / peak, rel=1e-9)
    version = stack.registry_stub.GetModelVersion(
        rpb.GetModelVersionRequest(name=done.registered_model_version)
    ).model_version
    provenance = json_format.MessageToDict(version.provenance)
    assert provenance["model_flops_per_token"] == expected
    assert provenance["peak_flops_per_second"] == pytest.approx(peak)
    assert provenance["peak_flops_dtype"] == "float32"
    assert provenance["peak_flops_source"].startswith("probe")
    assert 0 < provenance["mean_mfu"] <= 1
    return provenance


def test_a_torch_job_streams_mfu_and_the_cli_shows_it(stack: Stack, tmp_path: Path) -> None:
    submit(stack.training_stub, tiny_job(stack.dataset, "torch", max_steps=6), "mfu-torch")
    check_stream(stack, "mfu-torch", 6)
    followed = cli(stack, "jobs", "follow", "mfu-torch")
    assert followed.exit_code == 0, followed.output
    assert "step 6/6" in followed.output and "MFU " in followed.output
    shown = cli(stack, "runs", "show", "mfu-torch")
    assert shown.exit_code == 0, shown.output
    mfu_line = next(line for line in shown.stdout.splitlines() if line.startswith("MFU"))
    assert "%" in mfu_line and "FLOP/s" in mfu_line
    listed = cli(stack, "devices")
    assert "FLOP/s" in listed.stdout
    exported = cli(stack, "runs", "tensorboard", "mfu-torch", str(tmp_path))
    assert exported.exit_code == 0, exported.output
    events = Path(exported.stdout.strip()).read_bytes()
    for tag in (b"mfu", b"achieved_flops_per_second", b"model_flops_per_token"):
        assert tag in events


@pytest.mark.slow
def test_a_jax_job_streams_the_same_mfu_metrics(stack: Stack) -> None:
    submit(stack.training_stub, tiny_job(stack.dataset, "jax", max_steps=6), "mfu-jax")
    provenance = check_stream(stack, "mfu-jax", 6)
    assert provenance["backend"] == "jax"
