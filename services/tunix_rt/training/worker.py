"""A training worker: one process per running job, seeing only the job's devices.

Started by the training service as
`python -m tunix_rt.training.worker --spec SPEC.json --workdir DIR --registry ADDR --run runs/ID`.
It reads the dataset from the registry, trains with the job's backend, uploads the model directory
as an artifact, registers a model version with provenance, and reports every step on stdout
(tunix_rt.training.worker_protocol). SIGTERM asks it to stop at the next step. It dials the registry
with the service's token and TLS CA, which the service passes in its environment
($TUNIX_RT_AUTH_TOKEN, $TUNIX_RT_TLS_CA; see common.outgoing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tunix_rt.common import outgoing
from tunix_rt.models.interchange.archive import CONTENT_TYPE, pack_model_dir, unpack_model_dir
from tunix_rt.training import code_version
from tunix_rt.training import worker_protocol as wp
from tunix_rt.training.backends.base import Example, NonFiniteLoss, Stopped, TrainData
from tunix_rt.training.checkpoint_store import CheckpointStore
from tunix_rt.training.spec import TrainSpec
from tunix_rt.v1 import dataset_pb2, model_pb2, registry_service_pb2_grpc
from tunix_rt.v1 import registry_service_pb2 as rpb

UPLOAD_CHUNK = 1 << 20


class PipeReporter:
    """A backends.base.Reporter that writes protocol lines to the service's pipe."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.stop_requested = False
        self.last_metrics: dict[str, float] = {}
        self.store: CheckpointStore | None = None  # where checkpoints are copied, if anywhere

    def _send(self, event: str, **fields: Any) -> None:
        self._out.write(wp.encode(event, **fields))
        self._out.flush()

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.last_metrics.update(values)
        self._send("metrics", step=step, values=values)

    def log(self, message: str, level: str = "INFO") -> None:
        self._send("log", level=level, message=message)

    def phase(self, phase: str) -> None:
        self._send("phase", phase=phase)

    def progress(self, step: int, total_steps: int, epoch: float) -> None:
        self._send("progress", step=step, total_steps=total_steps, epoch=epoch)

    def checkpoint(self, step: int, path: str, metrics: dict[str, float]) -> None:
        if self.store is not None:  # the durable copy first: the service records its URI
            path = self.store.push(Path(path).parents[1], step)
        self._send("checkpoint", step=step, path=path, metrics=metrics)

    def should_stop(self) -> bool:
        return self.stop_requested

    def registered(self, model_version: str, artifact: str) -> None:
        self._send("registered", model_version=model_version, artifact=artifact)

    def failed(self, reason: str, message: str, **extra: Any) -> None:
        self._send("failed", reason=reason, message=message, **extra)


def read_data(stub: Any, spec: TrainSpec) -> TrainData:
    """The dataset's train and eval splits rendered with the job's chat template."""
    splits: dict[int, list[Example]] = {
        dataset_pb2.DATASET_SPLIT_TRAIN: [],
        dataset_pb2.DATASET_SPLIT_EVAL: [],
    }
    request = rpb.ExportDatasetRequest(
        name=spec.dataset,
        split=dataset_pb2.DATASET_SPLIT_ALL,
        format=dataset_pb2.EXPORT_FORMAT_SFT,
        chat_template=spec.hyper.chat_template,
    )
    for response in stub.ExportDataset(request):
        for record in response.records:
            sft = record.sft_example
            splits[record.split].append(Example(sft.trace, sft.prompt, sft.target, sft.answer))
    return TrainData(
        train=splits[dataset_pb2.DATASET_SPLIT_TRAIN], eval=splits[dataset_pb2.DATASET_SPLIT_EVAL]
    )


def download_model(stub: Any, artifact: str, target: Path) -> Path:
    """Unpacks a registered model's artifact (a tar of its model directory) into `target`.
    `target` appears only once complete (unpack_model_dir renames it into place), so one left by
    an earlier attempt of this job is reused and a half-extracted one cannot exist."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tar = target.parent / f".{target.name}.tar"  # rewritten whole by a retried download
    with open(tar, "wb") as handle:
        for chunk in stub.DownloadArtifact(rpb.DownloadArtifactRequest(name=artifact)):
            handle.write(chunk.chunk)
    try:
        return unpack_model_dir(tar, target)
    finally:
        tar.unlink()


def upload(stub: Any, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()

    def parts() -> Iterator[rpb.UploadArtifactRequest]:
        yield rpb.UploadArtifactRequest(
            header=rpb.ArtifactHeader(
                sha256=digest, size_bytes=len(data), content_type=CONTENT_TYPE
            )
        )
        for start in range(0, len(data), UPLOAD_CHUNK):
            yield rpb.UploadArtifactRequest(chunk=data[start : start + UPLOAD_CHUNK])

    response = stub.UploadArtifact(parts())
    return str(response.artifact.name)


def register(
    stub: Any,
    spec: TrainSpec,
    run: str,
    artifact: str,
    metrics: dict[str, float],
    provenance: dict[str, Any],
) -> str:
    version = model_pb2.ModelVersion(
        artifact=artifact,
        source_run=run,
        metrics={k: float(v) for k, v in metrics.items()},
        description=spec.registration.description,
    )
    version.provenance.update(provenance)
    response = stub.CreateModelVersion(
        rpb.CreateModelVersionRequest(
            parent=spec.registration.model,
            model_version=version,
            aliases=list(spec.registration.aliases),
            # One registration per job, even if the worker is retried after registering.
            request_id=f"register-{spec.job_id}",
        )
    )
    return str(response.model_version.name)


def provenance_of(stub: Any, spec: TrainSpec, extra: dict[str, Any]) -> dict[str, Any]:
    dataset = stub.GetDataset(rpb.GetDatasetRequest(name=spec.dataset)).dataset
    return {
        "dataset": spec.dataset,
        "dataset_content_hash": dataset.content_hash,
        "code_version": code_version.describe(),
        "config": spec.to_json(),
        "seed": spec.hyper.seed,
        "devices": json.loads(os.environ.get("TUNIX_RT_DEVICES", "{}")),
        **extra,
    }


def load_backend(name: str) -> Any:
    """The backend module of a spec's `backend` (imported lazily: each pulls in its framework,
    and a worker needs only one); None for an unknown name."""
    if name == "jax":
        from tunix_rt.training.backends import jax_backend

        return jax_backend
    if name == "torch":
        from tunix_rt.training.backends import torch_backend

        return torch_backend
    return None


def run(args: argparse.Namespace, reporter: PipeReporter) -> int:
    spec = TrainSpec.from_json(json.loads(Path(args.spec).read_text()))
    workdir = Path(args.workdir)
    channel = outgoing.sync_channel(outgoing.OutgoingSettings.of(args.registry), outgoing.REGISTRY)
    stub: Any = registry_service_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
    reporter.phase("PREPARING")
    data = read_data(stub, spec)
    reporter.log(f"dataset {spec.dataset}: {len(data.train)} train, {len(data.eval)} eval examples")
    if spec.base.model_version:
        base_dir = download_model(stub, spec.base.artifact, workdir / "base-model")
        spec = TrainSpec.from_json(
            {**spec.to_json(), "base": {**spec.to_json()["base"], "checkpoint_dir": str(base_dir)}}
        )
    store = CheckpointStore.of_environment(spec.job_id)
    if os.environ.get(wp.RANK_ENV, "0") == "0":  # rank 0 alone writes the copies
        reporter.store = store
    # Every rank reads them: a rank on another node resumes from the same step as rank 0.
    if store is not None and (pulled := store.pull(workdir)):
        reporter.log(f"copied the checkpoint of step {pulled} from the checkpoint store")
    backend = load_backend(spec.backend)
    if backend is None:
        reporter.failed("UNSUPPORTED_BACKEND", f"backend {spec.backend!r} is not available")
        return wp.EXIT_FAILED
    try:
        # One rank of a job spread over nodes (torch: torch.distributed, JAX: jax.distributed).
        ranked = int(os.environ.get(wp.WORLD_ENV) or 1) > 1
        result = (backend.train_rank if ranked else backend.train)(spec, data, workdir, reporter)
    except NonFiniteLoss as exc:
        reporter.failed("NON_FINITE_LOSS", str(exc), step=exc.step)
        return wp.EXIT_FAILED
    except Stopped:
        return wp.EXIT_CANCELLED
    if reporter.should_stop():
        return wp.EXIT_CANCELLED
    if result is None:  # a rank other than 0 of a multi-node job: rank 0 registers
        return 0
    reporter.phase("REGISTERING")
    artifact = upload(stub, pack_model_dir(result.model_dir))
    provenance = provenance_of(
        stub, spec, {**result.provenance, "final_metrics": result.final_metrics}
    )
    version = register(stub, spec, args.run, artifact, result.final_metrics, provenance)
    reporter.registered(version, artifact)
    channel.close()
    return 0


def die_with_parent() -> None:
    """Asks Linux to SIGKILL this worker when the training service dies (PR_SET_PDEATHSIG), so a
    killed service never leaves a worker holding devices nobody tracks. Done here rather than in
    a fork-time hook, which is unsafe in the service's multi-threaded (gRPC) process."""
    parent = int(os.environ.get("TUNIX_RT_PARENT_PID", "0"))
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        return
    if parent and os.getppid() != parent:  # the service died before prctl took effect
        os._exit(wp.EXIT_FAILED)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--run", required=True)
    args = parser.parse_args(argv)
    # The protocol owns the real stdout; anything else printed (libraries, progress bars) goes to
    # stderr so it can never corrupt an event line.
    events = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    reporter = PipeReporter(events)

    def request_stop(signum: int, frame: Any) -> None:
        reporter.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        return run(args, reporter)
    except Exception as exc:
        traceback.print_exc()
        reporter.failed("WORKER_ERROR", f"{type(exc).__name__}: {exc}")
        return wp.EXIT_FAILED


def exit_now(code: int) -> None:
    """Leaves without interpreter teardown: by now every result is in the registry and every
    event on the pipe, and tearing down JAX's runtime takes about a second the job would wait."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
