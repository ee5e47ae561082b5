"""TrainingJob message → validated TrainSpec (defaults filled, every range checked) and back.

Every violation is collected and reported at once, each naming its field
(`training_job.hyperparameters.learning_rate`), as one INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
import re
from typing import Any

from google.protobuf import json_format

from tunix_rt.common.errors import FieldViolation, InvalidArgument
from tunix_rt.common.rendering import CHAT_TEMPLATES
from tunix_rt.models import presets
from tunix_rt.models.lora import LORA_MODULES, LoraSpec
from tunix_rt.training import backend_choice
from tunix_rt.training.scheduler import DeviceRequest
from tunix_rt.training.spec import BaseModel, Hyperparameters, Registration, TrainSpec
from tunix_rt.v1 import backend_pb2, dataset_pb2, device_pb2, training_job_pb2

P = "training_job."
H = P + "hyperparameters."
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MIN_PRIORITY, MAX_PRIORITY = -100, 100

# Each TrainSpec value and the enum value that stands for it in a TrainingJob (job_from_spec);
# read backwards, with what an unspecified value means, they decode a submitted job.
_SCHEDULE_ENUM: dict[str, training_job_pb2.LearningRateSchedule] = {
    "cosine": training_job_pb2.LEARNING_RATE_SCHEDULE_COSINE,
    "constant": training_job_pb2.LEARNING_RATE_SCHEDULE_CONSTANT,
    "linear": training_job_pb2.LEARNING_RATE_SCHEDULE_LINEAR,
}
PRECISION_ENUM: dict[str, backend_pb2.Precision] = {
    "auto": backend_pb2.PRECISION_UNSPECIFIED,
    "float32": backend_pb2.PRECISION_FLOAT32,
    "mixed_bfloat16": backend_pb2.PRECISION_MIXED_BFLOAT16,
    "bfloat16": backend_pb2.PRECISION_BFLOAT16,
}
_BATCHING_ENUM: dict[str, training_job_pb2.BatchingStrategy] = {
    "packed": training_job_pb2.BATCHING_STRATEGY_PACKED,
    "length_bucketed": training_job_pb2.BATCHING_STRATEGY_LENGTH_BUCKETED,
    "padded": training_job_pb2.BATCHING_STRATEGY_PADDED,
}
_KIND_ENUM: dict[str, device_pb2.DeviceKind] = {
    "any": device_pb2.DEVICE_KIND_UNSPECIFIED,
    "cpu": device_pb2.DEVICE_KIND_CPU,
    "gpu": device_pb2.DEVICE_KIND_GPU,
    "tpu": device_pb2.DEVICE_KIND_TPU,
}
BACKEND_ENUM: dict[str, backend_pb2.Backend] = {
    "jax": backend_pb2.BACKEND_JAX,
    "torch": backend_pb2.BACKEND_TORCH,
}
_SCHEDULES = {
    training_job_pb2.LEARNING_RATE_SCHEDULE_UNSPECIFIED: "cosine",
    **{value: name for name, value in _SCHEDULE_ENUM.items()},
}
_PRECISIONS = {value: name for name, value in PRECISION_ENUM.items()}
_BATCHING = {
    training_job_pb2.BATCHING_STRATEGY_UNSPECIFIED: "packed",
    **{value: name for name, value in _BATCHING_ENUM.items()},
}
_KINDS = {value: name for name, value in _KIND_ENUM.items()}
# "" = unspecified: backend_choice picks by device kind.
_BACKENDS = {backend_pb2.BACKEND_UNSPECIFIED: "", **{v: k for k, v in BACKEND_ENUM.items()}}


class _Checker:
    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def check(self, ok: bool, field: str, description: str) -> None:
        if not ok:
            self.violations.append(FieldViolation(field, description))

    def finite(self, value: float, field: str) -> bool:
        ok = math.isfinite(value)
        self.check(ok, field, "must be a finite number")
        return ok


def device_request_of(job: training_job_pb2.TrainingJob) -> DeviceRequest:
    request = job.device_request
    kind = _KINDS.get(request.kind)
    if kind is None:
        raise InvalidArgument.field(P + "device_request.kind", "is not a known device kind")
    if request.device_ids:
        return _explicit_devices(request, kind)
    count = request.count or 1  # 0: the default, one device
    if count < 1:
        raise InvalidArgument.field(P + "device_request.count", "must be at least 1")
    return DeviceRequest(kind, count)


def _explicit_devices(request: device_pb2.DeviceRequest, kind: str) -> DeviceRequest:
    """A request naming its devices: ids `{kind}:{index}` of one kind, each once, agreeing with
    `kind` and `count` when those are given."""
    field = P + "device_request.device_ids"
    ids = tuple(request.device_ids)
    kinds = {i.partition(":")[0] for i in ids}
    well_formed = all(
        k in _KIND_ENUM and k != "any" and index.isascii() and index.isdigit()
        for k, _, index in (i.partition(":") for i in ids)
    )
    if not well_formed:
        raise InvalidArgument.field(field, "must be device ids such as cpu:0 or gpu:1")
    if len(kinds) != 1 or len(set(ids)) != len(ids):
        raise InvalidArgument.field(field, "must name devices of one kind, each once")
    (ids_kind,) = kinds
    if kind not in ("any", ids_kind):
        raise InvalidArgument.field(P + "device_request.kind", f"is not the kind of {ids[0]}")
    if request.count not in (0, len(ids)):
        raise InvalidArgument.field(
            P + "device_request.count", "must be 0 or the number of device_ids"
        )
    return DeviceRequest(ids_kind, len(ids), ids)


def _hyperparameters(
    job: training_job_pb2.TrainingJob, c: _Checker, context: int
) -> Hyperparameters:
    h = job.hyperparameters
    d = Hyperparameters()
    lr = h.learning_rate or d.learning_rate
    if c.finite(lr, H + "learning_rate"):
        c.check(0 < lr <= 1, H + "learning_rate", "must be in (0, 1]")
    c.check(h.learning_rate_schedule in _SCHEDULES, H + "learning_rate_schedule", "is unknown")
    warmup = h.warmup_steps if h.HasField("warmup_steps") else None
    c.check(warmup is None or warmup >= 0, H + "warmup_steps", "must be at least 0")
    ratio = (
        h.min_learning_rate_ratio
        if h.HasField("min_learning_rate_ratio")
        else d.min_learning_rate_ratio
    )
    if c.finite(ratio, H + "min_learning_rate_ratio"):
        c.check(0 <= ratio <= 1, H + "min_learning_rate_ratio", "must be in [0, 1]")
    decay = h.weight_decay if h.HasField("weight_decay") else d.weight_decay
    if c.finite(decay, H + "weight_decay"):
        c.check(0 <= decay <= 1, H + "weight_decay", "must be in [0, 1]")
    batch = h.batch_size or d.batch_size
    c.check(batch >= 1, H + "batch_size", "must be at least 1")
    accum = h.gradient_accumulation_steps or d.gradient_accumulation_steps
    c.check(1 <= accum <= 1024, H + "gradient_accumulation_steps", "must be in [1, 1024]")
    seq = h.max_seq_len or min(512, context)
    c.check(16 <= seq <= context, H + "max_seq_len", f"must be in [16, {context}] for this model")
    length = h.WhichOneof("training_length")
    max_steps = h.max_steps if length == "max_steps" else None
    epochs = h.num_epochs if length == "num_epochs" else d.num_epochs
    c.check(max_steps is None or max_steps >= 1, H + "max_steps", "must be at least 1")
    if length == "num_epochs" and c.finite(epochs, H + "num_epochs"):
        c.check(epochs > 0, H + "num_epochs", "must be greater than 0")
    clip = h.max_grad_norm if h.HasField("max_grad_norm") else d.max_grad_norm
    if c.finite(clip, H + "max_grad_norm"):
        c.check(clip >= 0, H + "max_grad_norm", "must be at least 0")
    evals = h.eval_interval_steps if h.HasField("eval_interval_steps") else None
    c.check(evals is None or evals >= 0, H + "eval_interval_steps", "must be at least 0")
    ckpts = h.checkpoint_interval_steps if h.HasField("checkpoint_interval_steps") else None
    c.check(ckpts is None or ckpts >= 0, H + "checkpoint_interval_steps", "must be at least 0")
    eval_max = h.eval_max_examples if h.HasField("eval_max_examples") else d.eval_max_examples
    c.check(eval_max >= 0, H + "eval_max_examples", "must be at least 0")
    new_tokens = h.eval_max_new_tokens or d.eval_max_new_tokens
    c.check(new_tokens >= 1, H + "eval_max_new_tokens", "must be at least 1")
    template = h.chat_template or d.chat_template
    c.check(
        template in CHAT_TEMPLATES,
        H + "chat_template",
        f"must be one of {', '.join(sorted(CHAT_TEMPLATES))}",
    )
    c.check(h.precision in _PRECISIONS, H + "precision", "is unknown")
    c.check(h.batching in _BATCHING, H + "batching", "is unknown")
    return Hyperparameters(
        learning_rate=lr,
        schedule=_SCHEDULES.get(h.learning_rate_schedule, "cosine"),
        warmup_steps=warmup,
        min_learning_rate_ratio=ratio,
        weight_decay=decay,
        batch_size=batch,
        gradient_accumulation_steps=accum,
        max_seq_len=seq,
        max_steps=max_steps,
        num_epochs=epochs,
        seed=h.seed if h.HasField("seed") else d.seed,
        max_grad_norm=clip,
        eval_interval_steps=evals,
        checkpoint_interval_steps=ckpts,
        eval_max_examples=eval_max,
        eval_max_new_tokens=new_tokens,
        chat_template=template,
        precision=_PRECISIONS.get(h.precision, "auto"),
        batching=_BATCHING.get(h.batching, "packed"),
    )


def _backend(job: training_job_pb2.TrainingJob, c: _Checker, device_kind: str) -> str:
    """The job's backend: the named one, or the automatic choice for the device kind."""
    named = _BACKENDS.get(job.backend)
    if named is None:
        c.check(False, P + "backend", "is unknown")
        return backend_choice.choose(device_kind)
    backend = named or backend_choice.choose(device_kind)
    c.check(
        backend in backend_choice.supported(device_kind),
        P + "backend",
        f"the {backend} backend cannot train on {device_kind} devices",
    )
    return backend


def _lora(job: training_job_pb2.TrainingJob, c: _Checker, backend: str) -> LoraSpec | None:
    if job.WhichOneof("tuning") != "lora":
        return None
    lora = job.lora
    rank = lora.rank or 8
    c.check(1 <= rank <= 1024, P + "lora.rank", "must be in [1, 1024]")
    alpha = lora.alpha or 2.0 * rank
    if c.finite(alpha, P + "lora.alpha"):
        c.check(alpha > 0, P + "lora.alpha", "must be greater than 0")
    if c.finite(lora.dropout, P + "lora.dropout"):
        if backend == "jax":
            # qwix applies LoRA dropout at generation time too, which would make eval answers
            # random; until the backend can switch it off there, only 0 is accepted.
            c.check(lora.dropout == 0, P + "lora.dropout", "must be 0 on the JAX backend")
        else:  # peft's dropout is off in eval mode
            c.check(0 <= lora.dropout < 1, P + "lora.dropout", "must be in [0, 1)")
    modules = tuple(lora.target_modules) or LORA_MODULES
    for n, module in enumerate(lora.target_modules):
        c.check(
            module in LORA_MODULES,
            f"{P}lora.target_modules[{n}]",
            f"must be one of {', '.join(LORA_MODULES)}",
        )
    return LoraSpec(rank=rank, alpha=alpha, dropout=lora.dropout, target_modules=modules)


def _base_model(
    job: training_job_pb2.TrainingJob, c: _Checker, base_artifact: str, base_version: str
) -> tuple[BaseModel, presets.Preset | None, int]:
    """(where training starts, its preset when it is one, the model's context length). The
    context of a base model version or checkpoint is only known to the worker; 2048 bounds
    max_seq_len until then."""
    which = job.WhichOneof("base_model")
    preset: presets.Preset | None = None
    context = 2048
    overrides: dict[str, Any] = {}
    if which is None:
        c.check(False, P + "base_model", "give one of preset, base_model_version, checkpoint_dir")
    elif which == "preset":
        try:
            preset = presets.get(job.preset)
        except KeyError:
            c.check(False, P + "preset", f"must be one of {', '.join(presets.names())}")
        else:
            overrides = json_format.MessageToDict(job.architecture_overrides)
            try:
                context = presets.apply_overrides(preset, overrides).context_length
            except InvalidArgument as exc:
                c.violations.extend(exc.violations)
    elif which == "checkpoint_dir":
        c.check(
            job.checkpoint_dir.startswith("/"), P + "checkpoint_dir", "must be an absolute path"
        )
    if which != "preset" and len(job.architecture_overrides.fields):
        c.check(False, P + "architecture_overrides", "only applies to a preset")
    base = BaseModel(
        preset=job.preset if which == "preset" else "",
        overrides=overrides,
        model_version=base_version,
        artifact=base_artifact,
        checkpoint_dir=job.checkpoint_dir if which == "checkpoint_dir" else "",
    )
    return base, preset, context


def _registration(job: training_job_pb2.TrainingJob, c: _Checker, job_id: str) -> Registration:
    model_id = (job.registration.model or f"models/{job_id}").removeprefix("models/")
    c.check(bool(_MODEL_ID.match(model_id)), P + "registration.model", "must be 'models/{model}'")
    for n, alias in enumerate(job.registration.aliases):
        c.check(
            bool(_ALIAS.match(alias)) and alias != "latest",
            f"{P}registration.aliases[{n}]",
            "must be 1-64 letters, digits, '-' or '_', starting with a letter (not 'latest')",
        )
    adapter = job.registration.lora_mode == training_job_pb2.LORA_REGISTRATION_MODE_ADAPTER
    return Registration(
        model=f"models/{model_id}",
        aliases=tuple(job.registration.aliases),
        description=job.registration.description,
        lora_mode="adapter" if adapter else "merged",
    )


def _completion_evaluation(job: training_job_pb2.TrainingJob, c: _Checker) -> dict[str, Any]:
    """Evaluation on completion, kept as the message's JSON; the job manager checks that an
    inference service is configured and runs it once the version is registered."""
    if not job.HasField("completion_evaluation"):
        return {}
    ce = job.completion_evaluation
    c.check(ce.max_items >= 0, P + "completion_evaluation.max_items", "must be at least 0")
    c.check(
        ce.split
        in (
            dataset_pb2.DATASET_SPLIT_UNSPECIFIED,
            dataset_pb2.DATASET_SPLIT_TRAIN,
            dataset_pb2.DATASET_SPLIT_EVAL,
        ),
        P + "completion_evaluation.split",
        "must be the train or eval split",
    )
    settings = json_format.MessageToDict(ce, preserving_proto_field_name=True)
    settings["present"] = True
    return settings


def spec_from_job(
    job: training_job_pb2.TrainingJob,
    job_id: str,
    device_kind: str,
    device_count: int,
    base_artifact: str = "",
    base_version: str = "",
) -> TrainSpec:
    """Validates a submitted job; raises InvalidArgument naming every bad field at once. This is
    the only validation a job gets: the backends resolve the spec without checking it again."""
    c = _Checker()
    c.check(bool(job.dataset), P + "dataset", "is required")
    c.check(len(job.display_name) <= 256, P + "display_name", "must be at most 256 chars")
    base, preset, context = _base_model(job, c, base_artifact, base_version)
    backend = _backend(job, c, device_kind)
    if preset is not None:
        c.check(
            backend in preset.backends,
            P + "backend",
            f"the {backend} backend cannot build preset {preset.name}",
        )
    hyper = _hyperparameters(job, c, context)
    lora = _lora(job, c, backend)
    c.check(
        MIN_PRIORITY <= job.priority <= MAX_PRIORITY,
        P + "priority",
        f"must be in [{MIN_PRIORITY}, {MAX_PRIORITY}]",
    )
    c.check(
        hyper.batch_size % max(1, device_count) == 0,
        H + "batch_size",
        f"must be a multiple of the device count ({device_count})",
    )
    registration = _registration(job, c, job_id)
    completion_evaluation = _completion_evaluation(job, c)
    if c.violations:
        raise InvalidArgument.fields(c.violations)
    return TrainSpec(
        job_id=job_id,
        dataset=job.dataset if job.dataset.startswith("datasets/") else f"datasets/{job.dataset}",
        base=base,
        backend=backend,
        hyper=hyper,
        lora=lora,
        device_kind=device_kind,
        device_count=device_count,
        # Checked with the request (device_request_of) before the job got here.
        device_ids=tuple(job.device_request.device_ids),
        priority=job.priority,
        registration=registration,
        display_name=job.display_name,
        labels=dict(job.labels),
        completion_evaluation=completion_evaluation,
    )


def job_from_spec(spec: TrainSpec) -> training_job_pb2.TrainingJob:
    """The spec part of a TrainingJob message, with every default the service resolved."""
    h = spec.hyper
    job = training_job_pb2.TrainingJob(
        display_name=spec.display_name,
        dataset=spec.dataset,
        backend=BACKEND_ENUM[spec.backend],
        priority=spec.priority,
        labels=spec.labels,
        device_request=device_pb2.DeviceRequest(
            kind=_KIND_ENUM[spec.device_kind],
            count=spec.device_count,
            device_ids=spec.device_ids,
        ),
        registration=training_job_pb2.ModelRegistration(
            model=spec.registration.model,
            aliases=list(spec.registration.aliases),
            description=spec.registration.description,
            lora_mode=training_job_pb2.LORA_REGISTRATION_MODE_ADAPTER
            if spec.registration.lora_mode == "adapter"
            else training_job_pb2.LORA_REGISTRATION_MODE_MERGED,
        ),
    )
    if spec.base.preset:
        job.preset = spec.base.preset
        job.architecture_overrides.update(spec.base.overrides)
    elif spec.base.model_version:
        job.base_model_version = spec.base.model_version
    else:
        job.checkpoint_dir = spec.base.checkpoint_dir
    hp = job.hyperparameters
    hp.learning_rate = h.learning_rate
    hp.learning_rate_schedule = _SCHEDULE_ENUM[h.schedule]
    if h.warmup_steps is not None:
        hp.warmup_steps = h.warmup_steps
    hp.min_learning_rate_ratio = h.min_learning_rate_ratio
    hp.weight_decay = h.weight_decay
    hp.batch_size = h.batch_size
    hp.gradient_accumulation_steps = h.gradient_accumulation_steps
    hp.max_seq_len = h.max_seq_len
    if h.max_steps is not None:
        hp.max_steps = h.max_steps
    else:
        hp.num_epochs = h.num_epochs
    hp.seed = h.seed
    hp.max_grad_norm = h.max_grad_norm
    if h.eval_interval_steps is not None:
        hp.eval_interval_steps = h.eval_interval_steps
    if h.checkpoint_interval_steps is not None:
        hp.checkpoint_interval_steps = h.checkpoint_interval_steps
    hp.eval_max_examples = h.eval_max_examples
    hp.eval_max_new_tokens = h.eval_max_new_tokens
    hp.chat_template = h.chat_template
    hp.precision = PRECISION_ENUM[h.precision]
    hp.batching = _BATCHING_ENUM[h.batching]
    if spec.lora is not None:
        job.lora.rank = spec.lora.rank
        job.lora.alpha = spec.lora.alpha
        job.lora.dropout = spec.lora.dropout
        job.lora.target_modules.extend(spec.lora.target_modules)
    else:
        job.full_fine_tuning.SetInParent()
    if spec.completion_evaluation:
        stored = {k: v for k, v in spec.completion_evaluation.items() if k != "present"}
        json_format.ParseDict(stored, job.completion_evaluation)
    return job
