"""The JAX training backend on google-tunix: `train(spec, data, workdir, reporter)`.

The worker process (tunix_rt.training.worker) calls `train` once per attempt; a second call on
the same `workdir` resumes from the latest checkpoint in `workdir/checkpoints`. It leaves:

    workdir/tokenizer/tokenizer.json   the tokenizer (trained once for a preset, reused on resume)
    workdir/run.json                   what a resume must match (checkpoint.check_run)
    workdir/checkpoints/<step>/        Orbax checkpoints (the latest 3)
    workdir/model/                     the model directory to register (model_dir)

Inference uses `load_model_dir` and `generate` from here.
"""

from __future__ import annotations

import hashlib
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from tunix_rt.common.errors import FailedPrecondition, FieldViolation, InvalidArgument
from tunix_rt.interchange.model_config import read_config
from tunix_rt.training import packing, presets
from tunix_rt.training.backends.base import Reporter, Stopped, TrainData, TrainResult
from tunix_rt.training.backends.jax import checkpoint, trainer
from tunix_rt.training.backends.jax import model as model_lib
from tunix_rt.training.backends.jax.evaluation import Evaluator
from tunix_rt.training.backends.jax.generate import Generator, generate
from tunix_rt.training.backends.jax.loss import make_loss_fn
from tunix_rt.training.backends.jax.mesh import entered, make_mesh, shard_model
from tunix_rt.training.backends.jax.model_dir import load_model, load_model_dir
from tunix_rt.training.backends.jax.model_dir import write_model_dir as _write_model_dir
from tunix_rt.training.backends.jax.optimizer import make_optimizer, make_schedule
from tunix_rt.training.spec import TrainSpec, resolve_schedule
from tunix_rt.training.tokenizer import TextTokenizer, special_ids_from_config, train_tokenizer

__all__ = ["Generator", "generate", "load_model_dir", "train", "validate"]

P = "training_job."
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


def validate(spec: TrainSpec, device_count: int) -> None:
    """What this backend cannot do with an otherwise valid spec; InvalidArgument naming each
    field. Cheap (no jax work), so the service may call it at submission."""
    violations: list[FieldViolation] = []
    if spec.lora is not None and spec.lora.dropout > 0:
        violations.append(
            FieldViolation(
                P + "lora.dropout",
                "must be 0 on the jax backend (qwix applies LoRA dropout at generation time too)",
            )
        )
    if spec.hyper.batch_size % max(1, device_count):
        violations.append(
            FieldViolation(
                P + "hyperparameters.batch_size",
                f"must be a multiple of the device count ({device_count})",
            )
        )
    if spec.base.preset:
        try:
            presets.apply_overrides(presets.get(spec.base.preset), spec.base.overrides)
        except KeyError:
            violations.append(FieldViolation(P + "preset", "is not a known preset"))
        except InvalidArgument as exc:
            violations.extend(exc.violations)
    if violations:
        raise InvalidArgument.fields(violations)


def _architecture(spec: TrainSpec) -> tuple[presets.ArchitectureConfig, Path | None]:
    """(architecture, model directory to load weights and tokenizer from, or None)."""
    if spec.base.preset:
        preset = presets.get(spec.base.preset)
        return presets.apply_overrides(preset, spec.base.overrides), None
    if not spec.base.checkpoint_dir:
        raise FailedPrecondition(
            "the base model version was not downloaded (spec.base.checkpoint_dir is empty)",
            reason="BASE_MODEL_MISSING",
        )
    directory = Path(spec.base.checkpoint_dir)
    if not (directory / "config.json").exists():
        raise FailedPrecondition(f"{directory} has no config.json", reason="BASE_MODEL_MISSING")
    return read_config(directory).architecture, directory


def _tokenizer(
    data: TrainData, workdir: Path, arch: presets.ArchitectureConfig, base_dir: Path | None
) -> TextTokenizer:
    if base_dir is not None:
        return TextTokenizer.load(base_dir, special_ids_from_config(read_config(base_dir).raw))
    saved = workdir / "tokenizer"
    if (saved / "tokenizer.json").exists():
        return TextTokenizer.load(saved)
    texts = [text for e in data.train for text in (e.prompt, e.target)]
    tokenizer = train_tokenizer(texts, arch.vocab_size)
    tokenizer.save(saved)
    return tokenizer


def _digest(encoded: list[packing.EncodedExample]) -> str:
    h = hashlib.sha256()
    for e in encoded:
        h.update(e.tokens.tobytes())
        h.update(e.prompt_len.to_bytes(4, "little"))
    return h.hexdigest()[:16]


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


def _versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _provenance(devices: list[Any], mesh: Any, dtype: Any, model: nnx.Module) -> dict[str, Any]:
    """Where and with what the model was trained (the model version's provenance)."""
    lora = model_lib.parameter_count(model, nnx.LoRAParam)
    return {
        "backend": "jax",
        "library_versions": _versions(),
        "python": platform.python_version(),
        "platform": devices[0].platform,
        "device_count": len(devices),
        "device_kind": devices[0].device_kind,
        "mesh": {str(k): int(v) for k, v in mesh.shape.items()} if mesh is not None else {},
        "compute_dtype": np.dtype(dtype).name,
        "parameter_count": model_lib.parameter_count(model) - lora,  # the base model's
        "trainable_parameter_count": model_lib.trainable_parameter_count(model),
    }


def train(spec: TrainSpec, data: TrainData, workdir: Path, reporter: Reporter) -> TrainResult:
    """Trains (or resumes) the job in `workdir`; see the module docstring. Raises NonFiniteLoss,
    Stopped (cancelled; no checkpoint after the request), InvalidArgument / FailedPrecondition
    (a spec this backend cannot run)."""
    devices = jax.devices()
    validate(spec, len(devices))
    hyper = spec.hyper
    reporter.phase("PREPARING")
    arch, base_dir = _architecture(spec)
    tokenizer = _tokenizer(data, workdir, arch, base_dir)
    max_seq_len = min(hyper.max_seq_len, arch.context_length)
    encoded, stats = packing.encode_examples(data.train, tokenizer, max_seq_len)
    if stats.truncated or stats.dropped:
        reporter.log(
            f"{stats.truncated} train examples had their prompt cut from the left and "
            f"{stats.dropped} were dropped (answer longer than max_seq_len {max_seq_len})",
            "WARNING",
        )
    if not encoded:
        raise FailedPrecondition("no train example fits max_seq_len", reason="NO_TRAIN_EXAMPLES")
    batcher = packing.make_batcher(
        hyper.batching, encoded, hyper.batch_size, max_seq_len, hyper.seed, tokenizer.pad_id()
    )
    accumulation = hyper.gradient_accumulation_steps
    total = hyper.max_steps or max(
        1, math.ceil(hyper.num_epochs * batcher.batches_per_epoch() / accumulation)
    )
    warmup, eval_every, checkpoint_every = resolve_schedule(hyper, total)
    plan = trainer.Plan(total, accumulation, eval_every, checkpoint_every)
    padding = packing.padding_fraction(batcher)
    eval_examples = data.eval[: hyper.eval_max_examples or None]
    eval_encoded, _ = packing.encode_examples(eval_examples, tokenizer, max_seq_len)
    resumable = checkpoint.check_run(
        workdir,
        {
            "base": spec.base.describe(),
            "architecture": arch.to_json(),
            "lora": bool(spec.lora),
            "tokenizer": tokenizer.describe(),
            "train_tokens": _digest(encoded),
            "batching": [hyper.batching, hyper.batch_size, max_seq_len, hyper.seed, accumulation],
        },
    )
    reporter.log(
        f"{len(encoded)} train examples, {hyper.batching} batches of {hyper.batch_size}x"
        f"{max_seq_len}, padding {padding:.1%}, {batcher.batches_per_epoch():.1f} micro-batches "
        f"per epoch, {total} steps, {len(devices)} {devices[0].platform} device(s)"
    )
    platform_name = devices[0].platform
    dtype = model_lib.compute_dtype(hyper.precision, platform_name)
    mesh = make_mesh(devices)
    with entered(mesh):
        model = _build_model(spec, arch, base_dir)
        shard_model(model, mesh)
        schedule = make_schedule(hyper, total, warmup)
        evaluator = Evaluator(
            model,
            tokenizer,
            eval_examples,
            eval_encoded,
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
        reporter.phase("TRAINING")
        start = trainer.run(
            model=model,
            optimizer=make_optimizer(hyper, schedule),
            loss_fn=make_loss_fn(dtype),
            loop=loop,
            checkpoint_dir=workdir / checkpoint.CHECKPOINT_DIR,
        )
        if start and resumable:
            reporter.log(f"resumed from the checkpoint of step {start}")
        reporter.phase("EVALUATING")
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
    final_metrics = {k: v for k, v in loop.last_metrics.items() if k in ("loss", "grad_norm")}
    final_metrics.update(final_eval)
    rate = loop.mean_tokens_per_second()
    if rate is not None:
        final_metrics["train_tokens_per_second"] = rate
    final_metrics = {k: v for k, v in final_metrics.items() if math.isfinite(v)}
    provenance = {
        **_provenance(devices, mesh, dtype, model),
        "architecture": arch.to_json(),
        "tokenizer": tokenizer.describe(),
        "train_examples": stats.examples,
        "train_examples_truncated": stats.truncated,
        "train_examples_dropped": stats.dropped,
        "padding_fraction": padding,
        "total_steps": total,
        "warmup_steps": warmup,
        "resumed_from_step": start,
    }
    return TrainResult(model_dir, total, final_metrics, provenance)
