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

import platform
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from tunix_rt.models import presets
from tunix_rt.models.jax import model as model_lib
from tunix_rt.models.jax.model_dir import load_model, load_model_dir
from tunix_rt.models.jax.model_dir import write_model_dir as _write_model_dir
from tunix_rt.training.backends import mfu, preparation, results, resume
from tunix_rt.training.backends.adamw import make_schedule
from tunix_rt.training.backends.base import (
    EVALUATING,
    PREPARING,
    TRAINING,
    Reporter,
    Stopped,
    TrainData,
    TrainResult,
)
from tunix_rt.training.backends.jax import checkpoint, trainer
from tunix_rt.training.backends.jax.evaluation import Evaluator
from tunix_rt.training.backends.jax.generate import Generator, generate
from tunix_rt.training.backends.jax.loss import make_loss_fn
from tunix_rt.training.backends.jax.mesh import entered, make_mesh, shard_model
from tunix_rt.training.backends.jax.optimizer import make_optimizer
from tunix_rt.training.spec import TrainSpec

__all__ = ["Generator", "generate", "load_model_dir", "train"]

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
    spec: TrainSpec, prep: preparation.Prepared, devices: list[Any], dtype: Any
) -> mfu.FlopsMeter:
    """The job's FLOPs count and device peak (MFU in its metric stream)."""
    return mfu.FlopsMeter.of(
        prep.arch,
        prep.max_seq_len,
        spec.lora,
        kind="cpu" if devices[0].platform == "cpu" else "gpu",
        device_count=len(devices),
        device_name=devices[0].device_kind,
        bfloat16=np.dtype(dtype) == np.dtype(jax.numpy.bfloat16),
    )


def train(spec: TrainSpec, data: TrainData, workdir: Path, reporter: Reporter) -> TrainResult:
    """Trains (or resumes) the job in `workdir`; see the module docstring. The spec was
    validated at submission (job_spec). Raises NonFiniteLoss, Stopped (cancelled; no checkpoint
    after the request), FailedPrecondition (a base model or resume it cannot use)."""
    devices = jax.devices()
    hyper = spec.hyper
    reporter.phase(PREPARING)
    prep = preparation.prepare(spec, data, workdir, reporter)
    arch, tokenizer, plan = prep.arch, prep.tokenizer, prep.plan
    max_seq_len, total, batcher = prep.max_seq_len, plan.total_steps, prep.batcher
    resumable = resume.check_run(workdir, prep.fingerprint(spec))
    reporter.log(
        f"{len(prep.encoded)} train examples, {hyper.batching} batches of {hyper.batch_size}x"
        f"{max_seq_len}, padding {prep.padding:.1%}, {batcher.batches_per_epoch():.1f} "
        f"micro-batches per epoch, {total} steps, {len(devices)} {devices[0].platform} device(s)"
    )
    platform_name = devices[0].platform
    dtype = model_lib.compute_dtype(hyper.precision, platform_name)
    meter = _meter(spec, prep, devices, dtype)
    reporter = mfu.MfuReporter(reporter, meter)
    mesh = make_mesh(devices)
    with entered(mesh):
        model = _build_model(spec, arch, prep.base_dir)
        shard_model(model, mesh)
        schedule = make_schedule(hyper, total, prep.warmup)
        evaluator = Evaluator(
            model,
            tokenizer,
            prep.eval_examples,
            prep.eval_encoded,
            hyper.batch_size,
            max_seq_len,
            hyper.eval_max_new_tokens,
            dtype,
        )
        loop = trainer.TrainingLoop(
            batcher=batcher,
            plan=plan,
            schedule=schedule,
            reporter=reporter,
            evaluator=evaluator,
            seed=hyper.seed,
            lora=spec.lora is not None,
            workdir=workdir,
        )
        reporter.phase(TRAINING)
        start = trainer.run(
            model=model,
            optimizer=make_optimizer(hyper, schedule),
            loss_fn=make_loss_fn(dtype),
            loop=loop,
            checkpoint_dir=workdir / checkpoint.CHECKPOINT_DIR,
        )
        if start and resumable:
            reporter.log(f"resumed from the checkpoint of step {start}")
        reporter.phase(EVALUATING)
        final_eval = evaluator.evaluate(reporter.should_stop)
        if reporter.should_stop():
            raise Stopped()
        if final_eval:
            reporter.metrics(total, final_eval)
        model_dir = _write_model_dir(
            workdir / "model",
            model,
            arch,
            tokenizer,
            chat_template=hyper.chat_template,
            training_step=total,
            lora=spec.lora,
            lora_mode=spec.registration.lora_mode,
            base=spec.base.model_version or spec.base.checkpoint_dir,
        )
    metrics = results.final_metrics(loop.last_metrics, final_eval, loop.mean_tokens_per_second())
    provenance = {**_provenance(devices, mesh, dtype, model), **prep.provenance(start)}
    provenance.update(meter.provenance(loop.mean_tokens_per_second()))
    return TrainResult(model_dir, total, metrics, provenance)
