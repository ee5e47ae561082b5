"""Training through the service against calling the trainer directly, in one run.

Run: `.venv/bin/python bench/training_service.py [--preset llama3-tiny] [--steps 300] [--rounds 2]`.

- direct: a fresh Python process (like a worker) reads the same SFT examples from a file and calls
  `tunix_rt.training.backends.jax_backend.train` — imports, compilation and training included.
- service: CreateTrainingJob on a real training service (with a real registry) until the job is
  SUCCEEDED — queueing, the worker process, dataset export, training, metric streaming, artifact
  upload and model registration included.
The ratio direct ÷ service is the share of the service's wall time that is training itself
(1.0 = no overhead). Rounds alternate between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import LoopThread  # noqa: E402
from tests.training.conftest import import_dataset  # noqa: E402
from tests.training.helpers import TERMINAL, submit, tiny_job, wait_for  # noqa: E402
from tunix_rt.registry.server import start_registry  # noqa: E402
from tunix_rt.training.job_spec import spec_from_job  # noqa: E402
from tunix_rt.training.server import start_training  # noqa: E402
from tunix_rt.training.worker import read_data  # noqa: E402
from tunix_rt.v1 import registry_service_pb2_grpc, run_pb2, training_service_pb2_grpc  # noqa: E402

DIRECT = """
import json, sys, time, pathlib
start = time.perf_counter()
from tunix_rt.training.backends import jax_backend
from tunix_rt.training.backends.base import Example, TrainData
from tunix_rt.training.spec import TrainSpec

class Quiet:
    def metrics(self, step, values): pass
    def log(self, message, level="INFO"): pass
    def phase(self, phase): pass
    def progress(self, step, total_steps, epoch): pass
    def checkpoint(self, step, path, metrics): pass
    def should_stop(self): return False

spec = TrainSpec.from_json(json.loads(pathlib.Path(sys.argv[1]).read_text()))
raw = json.loads(pathlib.Path(sys.argv[2]).read_text())
data = TrainData([Example(**e) for e in raw["train"]], [Example(**e) for e in raw["eval"]])
jax_backend.train(spec, data, pathlib.Path(sys.argv[3]), Quiet())
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="llama3-tiny")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'clients'}:{ROOT / 'services'}"}
    env.update({"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""})
    loop = LoopThread()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        registry = loop.run(start_registry(data_dir=tmp / "registry"))
        training = loop.run(
            start_training(
                registry_address=registry.address,
                data_dir=tmp / "training",
                cpu_slots=1,
                probe_gpus=False,
            )
        )
        new_reg: Any = registry_service_pb2_grpc.RegistryServiceStub
        new_train: Any = training_service_pb2_grpc.TrainingServiceStub
        reg_stub = new_reg(grpc.insecure_channel(registry.address))
        stub = new_train(grpc.insecure_channel(training.address))
        dataset = import_dataset(reg_stub, "bench", ROOT / "datasets" / "reasoning-train-v1.jsonl")

        def job() -> Any:
            spec = tiny_job(
                dataset, max_steps=args.steps, batch_size=8, checkpoint_interval_steps=0
            )
            spec.preset = args.preset
            return spec

        base = spec_from_job(job(), "direct", "cpu", 1)
        data = read_data(reg_stub, base)
        (tmp / "data.json").write_text(
            json.dumps(
                {"train": [e.__dict__ for e in data.train], "eval": [e.__dict__ for e in data.eval]}
            )
        )
        direct_times, service_times = [], []
        for n in range(args.rounds):
            spec_path = tmp / f"spec-{n}.json"
            spec_path.write_text(base.dumps())
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    DIRECT,
                    str(spec_path),
                    str(tmp / "data.json"),
                    str(tmp / f"direct-{n}"),
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            direct_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            submitted = submit(stub, job())
            done = wait_for(stub, submitted.name, TERMINAL, timeout=3600)
            service_times.append(time.perf_counter() - start)
            assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error.message
        loop.run(training.stop(0))
        loop.run(registry.stop(0))
    loop.close()
    ratios = [d / s for d, s in zip(direct_times, service_times, strict=True)]
    print(f"{args.preset}, {args.steps} steps of 8x128 on cpu:1 ({os.cpu_count()} CPUs)")
    print(f"direct trainer call : {', '.join(f'{t:.1f}' for t in direct_times)} s")
    print(f"through the service : {', '.join(f'{t:.1f}' for t in service_times)} s")
    rounds = ", ".join(f"{r:.3f}" for r in ratios)
    print(f"ratio direct/service: {statistics.median(ratios):.3f} (per round: {rounds})")


if __name__ == "__main__":
    main()
