"""The torch training backend on Hugging Face transformers: `train(spec, data, workdir, reporter)`.

The same contract as the JAX backend (jax_backend): the worker calls `train` once per attempt and
a second call on the same `workdir` resumes from the latest checkpoint. Same tokenizer handling,
data order (packing), prompt-masked loss, AdamW and schedule, metric names, evaluation and
checkpoint events. It leaves:

    workdir/tokenizer/tokenizer.json   the tokenizer (trained once for a preset, reused on resume)
    workdir/run.json                   what a resume must match (resume.check_run)
    workdir/checkpoints/<step>/        weights + optimizer + data position + RNGs (the latest 3)
    workdir/model/                     the model directory to register (models.torch.model_dir)

On CPU a job is one process (threads: the job's CPU share from OMP_NUM_THREADS); with several
GPUs it is data-parallel (torch/parallel.py). `load_model_dir` and `generate` are re-exported
for reading a trained model back (tests, benchmarks).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

import torch

from tunix_rt.common.host import cpu_model
from tunix_rt.models.torch import model as model_lib
from tunix_rt.models.torch.model_dir import load_model_dir, write_model_dir
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
from tunix_rt.training.backends.preparation import Prepared
from tunix_rt.training.backends.torch import checkpoint, trainer
from tunix_rt.training.backends.torch import parallel as parallel_lib
from tunix_rt.training.backends.torch.evaluation import Evaluator
from tunix_rt.training.backends.torch.generate import Generator, generate
from tunix_rt.training.backends.torch.parallel import (
    Parallel,
    gpu_count,
    run_data_parallel,
    single,
)
from tunix_rt.training.spec import TrainSpec

__all__ = ["Generator", "generate", "load_model_dir", "train", "train_rank"]

LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "numpy")


def _cpu_threads() -> None:
    """Intra-op threads = the job's CPU share, which the service puts in OMP_NUM_THREADS."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))


def _build_model(spec: TrainSpec, prep: Prepared, device: torch.device) -> Any:
    config = model_lib.config_for(prep.arch, prep.tokenizer)
    if prep.base_dir is None:
        model = model_lib.create_model(config, spec.hyper.seed)
    else:
        model = model_lib.load_model(config, prep.base_dir)
    if spec.lora is not None:
        model = model_lib.apply_lora(model, spec.lora, spec.hyper.seed)
    return model.to(device)


def _device_kind(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return cpu_model()


def _provenance(
    model: Any, parallel: Parallel, autocast: torch.dtype | None, prep: Prepared, start: int
) -> dict[str, Any]:
    """Where and with what the model was trained (the model version's provenance)."""
    lora = model_lib.lora_parameter_count(model)
    return {
        "backend": "torch",
        "library_versions": results.library_versions(LIBRARIES),
        "python": platform.python_version(),
        "platform": parallel.device.type,
        "device_count": parallel.world,
        "device_kind": _device_kind(parallel.device),
        "torch_threads": torch.get_num_threads(),
        "attention": model_lib.ATTENTION,
        "compute_dtype": str(autocast or torch.float32).removeprefix("torch."),
        "parameter_count": model_lib.parameter_count(model) - lora,  # the base model's
        "trainable_parameter_count": model_lib.trainable_parameter_count(model),
        **prep.provenance(start),
    }


def _meter(
    spec: TrainSpec, prep: Prepared, parallel: Parallel, autocast: torch.dtype | None
) -> mfu.FlopsMeter:
    """The job's FLOPs count and device peak (MFU in its metric stream)."""
    return mfu.FlopsMeter.of(
        prep.arch,
        prep.max_seq_len,
        spec.lora,
        kind="gpu" if parallel.device.type == "cuda" else "cpu",
        device_count=parallel.world,
        device_name=_device_kind(parallel.device),
        bfloat16=autocast == torch.bfloat16,
        # On CPU every rank is a process holding its node's slots (one rank on one host).
        processes=parallel.world if parallel.device.type == "cpu" else 1,
    )


def train(spec: TrainSpec, data: TrainData, workdir: Path, reporter: Reporter) -> TrainResult:
    """Trains (or resumes) the job in `workdir`; see the module docstring. The spec was
    validated at submission (job_spec). Raises NonFiniteLoss, Stopped (cancelled; no checkpoint
    after the request), FailedPrecondition (a base model or resume it cannot use)."""
    world = gpu_count() if spec.device_kind == "gpu" else 1
    reporter.phase(PREPARING)
    if world <= 1:
        _cpu_threads()
        result = _train(spec, data, workdir, single(), reporter)
    else:
        # The tokenizer is trained (and saved) once, before the other ranks start and load it.
        arch, base_dir = preparation.architecture(spec)
        preparation.load_tokenizer(data, workdir, arch, base_dir)
        target = functools.partial(_train, spec, data, workdir)
        result = run_data_parallel(world, target, reporter)
    assert result is not None  # rank 0's
    return result


def train_rank(
    spec: TrainSpec, data: TrainData, workdir: Path, reporter: Reporter
) -> TrainResult | None:
    """`train` as one rank of a job the Ray executor spread over nodes (its place in the job
    from the environment, worker_protocol.node_rank); rank 0 reports and returns the result,
    the others return None. Each rank has its own `workdir` (on its node) or they share one:
    rank 0 trains (or reuses) the tokenizer and sends it to the others before they load it, as
    run_data_parallel's ranks find it saved before they are spawned."""
    rank = wp.node_rank()
    assert rank is not None, "train_rank runs only as a rank of a multi-node job"
    reporter.phase(PREPARING)
    _cpu_threads()
    with parallel_lib.joined(*rank) as parallel:
        if parallel.is_main:
            arch, base_dir = preparation.architecture(spec)
            preparation.load_tokenizer(data, workdir, arch, base_dir)
        parallel_lib.share_directory(parallel, workdir / preparation.TOKENIZER_DIR)
        return _train(spec, data, workdir, parallel, reporter if parallel.is_main else None)


def _train(
    spec: TrainSpec, data: TrainData, workdir: Path, parallel: Parallel, reporter: Any
) -> TrainResult | None:
    """One rank's training; rank 0 (the one with a reporter) returns the result."""
    reporter = reporter if reporter is not None else SilentReporter()  # rank 0 reports
    main = parallel.is_main
    hyper = spec.hyper
    prep = preparation.prepare(spec, data, workdir, reporter)
    if main:
        resume.check_run(workdir, {"backend": "torch", **prep.fingerprint(spec)})
    plan = prep.plan
    module = _build_model(spec, prep, parallel.device)
    optimizer = trainer.make_optimizer(module, hyper)
    start = min(checkpoint.latest_step(workdir), plan.total_steps)
    if start:
        checkpoint.restore(workdir, start, module, optimizer)
        reporter.log(f"resumed from the checkpoint of step {start}")
    autocast = model_lib.autocast_dtype(hyper.precision, parallel.device)
    meter = _meter(spec, prep, parallel, autocast)
    reporter = mfu.MfuReporter(reporter, meter) if main else reporter
    reporter.log(
        f"{prep.stats.examples} train examples, {hyper.batching} batches of {hyper.batch_size}x"
        f"{prep.max_seq_len}, padding {prep.padding:.1%}, "
        f"{prep.batcher.batches_per_epoch():.1f} micro-batches per epoch, {plan.total_steps} "
        f"steps, {parallel.world} {parallel.device.type} device(s), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads"
    )
    evaluator = None
    if main:
        evaluator = Evaluator(module, *prep.evaluation(hyper), autocast)
    loop = trainer.TrainingLoop(
        model=parallel.wrap(module),
        module=module,
        optimizer=optimizer,
        batcher=prep.batcher,
        plan=plan,
        schedule=make_schedule(hyper, plan.total_steps, prep.warmup),
        max_grad_norm=hyper.max_grad_norm,
        reporter=reporter,
        evaluator=evaluator,
        seed=hyper.seed,
        workdir=workdir,
        parallel=parallel,
        autocast=autocast,
    )
    reporter.phase(TRAINING)
    loop.run(start)
    if not main or evaluator is None:
        return None
    reporter.phase(EVALUATING)
    final_eval = evaluator.evaluate(reporter.should_stop)
    if reporter.should_stop():
        raise Stopped()
    if final_eval:
        reporter.metrics(plan.total_steps, final_eval)
    provenance = _provenance(module, parallel, autocast, prep, start)
    provenance.update(meter.provenance(loop.mean_tokens_per_second()))
    model_dir = write_model_dir(
        workdir / "model",
        module,
        prep.arch,
        prep.tokenizer,
        chat_template=hyper.chat_template,
        training_step=plan.total_steps,
        lora=spec.lora,
        lora_mode=spec.registration.lora_mode,
        base=spec.base.model_version or spec.base.checkpoint_dir,
    )
    metrics = results.final_metrics(loop.last_metrics, final_eval, loop.mean_tokens_per_second())
    return TrainResult(model_dir, plan.total_steps, metrics, provenance)
