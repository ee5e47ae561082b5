"""The JAX training backend on google-tunix: `train(spec, data, workdir, reporter)`.

The worker process (tunix_rt.training.worker) calls `train` once per attempt; a second call on
the same `workdir` resumes from the latest checkpoint in `workdir/checkpoints`. It leaves:

    workdir/tokenizer/tokenizer.json   the tokenizer (trained once for a preset, reused on resume)
    workdir/run.json                   what a resume must match (resume.check_run)
    workdir/checkpoints/<step>/        Orbax checkpoints (the latest 3)
    workdir/model/                     the model directory to register (models.jax.model_dir)

`load_model_dir` and `generate` are re-exported for reading a trained model back (tests,
benchmarks).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from tunix_rt.models import presets
from tunix_rt.models.jax import linear_grad
from tunix_rt.models.jax import model as model_lib
from tunix_rt.models.jax.model_dir import load_model, load_model_dir
from tunix_rt.models.jax.model_dir import write_model_dir as _write_model_dir
from tunix_rt.training import worker_protocol as wp
from tunix_rt.training.backends import mfu, preparation, results, resume
from tunix_rt.training.backends.adamw import make_schedule
from tunix_rt.training.backends.base import (
    EVALUATING,
    PREPARING,
    TRAINING,
    Reporter,
    SilentReporter,
    Stopped,
    TrainData,
    TrainResult,
)
from tunix_rt.training.backends.jax import checkpoint, multiprocess, trainer
from tunix_rt.training.backends.jax.evaluation import Evaluator
from tunix_rt.training.backends.jax.generate import Generator, generate
from tunix_rt.training.backends.jax.loss import make_loss_fn
from tunix_rt.training.backends.jax.mesh import (
    DATA_AXES,
    REPLICATED_DATA_AXES,
    entered,
    make_data_mesh,
    make_mesh,
    shard_model,
)
from tunix_rt.training.backends.jax.multiprocess import Processes
from tunix_rt.training.backends.jax.optimizer import make_optimizer
from tunix_rt.training.spec import TrainSpec

__all__ = ["Generator", "generate", "load_model_dir", "train", "train_rank"]

LIBRARIES = (
    "google-tunix",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "qwix",
    "tokenizers",
    "safetensors",
    "numpy",
)


def _build_model(
    spec: TrainSpec, arch: presets.ArchitectureConfig, base_dir: Path | None
) -> nnx.Module:
    if base_dir is None:
        model = model_lib.create_model(arch, spec.hyper.seed)
    else:
        model = load_model(arch, base_dir)
    if spec.hyper.precision == "bfloat16":
        model_lib.cast_floating(model, jax.numpy.bfloat16)
    if spec.lora is not None:
        model = model_lib.apply_lora(model, spec.lora, spec.hyper.seed)
    else:
        linear_grad.install(model)
    return model


def _provenance(devices: list[Any], mesh: Any, dtype: Any, model: nnx.Module) -> dict[str, Any]:
    """Where and with what the model was trained (the model version's provenance)."""
    lora = model_lib.parameter_count(model, nnx.LoRAParam)
    return {
        "backend": "jax",
        "library_versions": results.library_versions(LIBRARIES),
        "python": platform.python_version(),
        "platform": devices[0].platform,
        "device_count": len(devices),
        "device_kind": devices[0].device_kind,
        "mesh": {str(k): int(v) for k, v in mesh.shape.items()} if mesh is not None else {},
        "compute_dtype": np.dtype(dtype).name,
        "parameter_count": model_lib.parameter_count(model) - lora,  # the base model's
        "trainable_parameter_count": model_lib.trainable_parameter_count(model),
    }


def _meter(
    spec: TrainSpec,
    prep: preparation.Prepared,
    devices: list[Any],
    dtype: Any,
    processes: Processes | None,
) -> mfu.FlopsMeter:
    """The job's FLOPs count and device peak (MFU in its metric stream)."""
    cpu = devices[0].platform == "cpu"
    return mfu.FlopsMeter.of(
        prep.arch,
        prep.max_seq_len,
        spec.lora,
        kind="cpu" if cpu else "gpu",
        device_count=len(devices),
        device_name=devices[0].device_kind,
        bfloat16=np.dtype(dtype) == np.dtype(jax.numpy.bfloat16),
        # On CPU every rank is a process holding its node's slots (one rank per node).
        processes=processes.world if processes is not None and cpu else 1,
    )


def train(spec: TrainSpec, data: TrainData, workdir: Path, reporter: Reporter) -> TrainResult:
    """Trains (or resumes) the job in `workdir`; see the module docstring. The spec was
    validated at submission (job_spec). Raises NonFiniteLoss, Stopped (cancelled; no checkpoint
    after the request), FailedPrecondition (a base model or resume it cannot use)."""
    reporter.phase(PREPARING)
    result = _train(spec, data, workdir, reporter, None)
    assert result is not None
    return result


def train_rank(
    spec: TrainSpec, data: TrainData, workdir: Path, reporter: Reporter
) -> TrainResult | None:
    """`train` as one rank of a job the Ray executor spread over nodes (its place in the job
    from the environment, worker_protocol.node_rank; the layout in multiprocess.py). Rank 0
    reports and returns the result, the others return None. Rank 0 trains (or reuses) the
    tokenizer and sends it to the others before they load it."""
    rank = wp.node_rank()
    assert rank is not None, "train_rank runs only as a rank of a multi-node job"
    reporter.phase(PREPARING)
    with multiprocess.joined(*rank) as processes:
        if processes.is_main:
            arch, base_dir = preparation.architecture(spec)
            preparation.load_tokenizer(data, workdir, arch, base_dir)
        multiprocess.share_directory(processes, workdir / preparation.TOKENIZER_DIR)
        return _train(spec, data, workdir, reporter, processes)


def _describe(
    spec: TrainSpec, prep: preparation.Prepared, devices: list[Any], processes: Processes | None
) -> str:
    """The log line that says what the job trains on what."""
    hyper, batcher = spec.hyper, prep.batcher
    return (
        f"{len(prep.encoded)} train examples, {hyper.batching} batches of {hyper.batch_size}x"
        f"{prep.max_seq_len}, padding {prep.padding:.1%}, {batcher.batches_per_epoch():.1f} "
        f"micro-batches per epoch, {prep.plan.total_steps} steps, {len(devices)} "
        f"{devices[0].platform} device(s)"
        + (f" in {processes.world} processes" if processes is not None else "")
    )


def _write_model(
    spec: TrainSpec, prep: preparation.Prepared, model: nnx.Module, workdir: Path
) -> Path:
    """The model directory to register (models.jax.model_dir)."""
    return _write_model_dir(
        workdir / "model",
        model,
        prep.arch,
        prep.tokenizer,
        chat_template=spec.hyper.chat_template,
        training_step=prep.plan.total_steps,
        lora=spec.lora,
        lora_mode=spec.registration.lora_mode,
        base=spec.base.model_version or spec.base.checkpoint_dir,
    )


def _train(
    spec: TrainSpec,
    data: TrainData,
    workdir: Path,
    reporter: Reporter,
    processes: Processes | None,
) -> TrainResult | None:
    """One process's training: the whole job, or one rank of it (`processes`; rank 0, the one
    that reports, returns the result)."""
    devices = jax.devices()
    hyper = spec.hyper
    main = processes is None or processes.is_main
    if not main:
        reporter = SilentReporter()
    prep = preparation.prepare(spec, data, workdir, reporter)
    plan, total = prep.plan, prep.plan.total_steps
    resumable = resume.check_run(workdir, prep.fingerprint(spec)) if main else False
    reporter.log(_describe(spec, prep, devices, processes))
    platform_name = devices[0].platform
    dtype = model_lib.compute_dtype(hyper.precision, platform_name)
    meter = _meter(spec, prep, devices, dtype, processes)
    reporter = mfu.MfuReporter(reporter, meter)
    if processes is not None:
        reporter = multiprocess.SharedStop(reporter)
    mesh = make_mesh(devices) if processes is None else make_data_mesh(devices)
    axes = DATA_AXES if processes is None else REPLICATED_DATA_AXES
    with entered(mesh):
        model = _build_model(spec, prep.arch, prep.base_dir)
        shard_model(model, mesh)
        schedule = make_schedule(hyper, total, prep.warmup)
        evaluator = Evaluator(model, *prep.evaluation(hyper), dtype)
        place = None
        if processes is not None and mesh is not None:
            place = functools.partial(multiprocess.global_batch, mesh=mesh, axes=axes)
        loop = trainer.TrainingLoop(
            batcher=prep.batcher,
            plan=plan,
            schedule=schedule,
            reporter=reporter,
            evaluator=evaluator,
            seed=hyper.seed,
            lora=spec.lora is not None,
            workdir=workdir,
            place=place,
        )
        reporter.phase(TRAINING)
        start = trainer.run(
            model=model,
            optimizer=make_optimizer(hyper, schedule),
            loss_fn=make_loss_fn(dtype),
            loop=loop,
            checkpoint_dir=workdir / checkpoint.CHECKPOINT_DIR,
            data_axes=axes,
            rank=None if processes is None else processes.rank,
        )
    if processes is not None:  # rank 0 finishes alone on its replica
        processes.part(model)
        if not main:
            return None
    if start and resumable:
        reporter.log(f"resumed from the checkpoint of step {start}")
    with entered(mesh if processes is None else None):
        reporter.phase(EVALUATING)
        final_eval = evaluator.evaluate(reporter.should_stop)
        if reporter.should_stop():
            raise Stopped()
        if final_eval:
            reporter.metrics(total, final_eval)
        model_dir = _write_model(spec, prep, model, workdir)
    metrics = results.final_metrics(loop.last_metrics, final_eval, loop.mean_tokens_per_second())
    provenance = {**_provenance(devices, mesh, dtype, model), **prep.provenance(start)}
    if processes is not None:
        provenance["processes"] = processes.world
    provenance.update(meter.provenance(loop.mean_tokens_per_second()))
    return TrainResult(model_dir, total, metrics, provenance)
