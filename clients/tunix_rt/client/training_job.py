"""TrainingJob messages from plain values: the builder behind `TrainingClient.create_job` and
`tunix-rt train`, device requests in their CLI form (`cpu:1`, `gpu:2`), and how the model argument
is read (a preset, a registered version or a checkpoint directory).

Pure functions of their arguments, no calls: the client asks the service for its presets when a
value could be one (`TrainingClient.model_source`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tunix_rt.client import names
from tunix_rt.client.inference import PRECISIONS
from tunix_rt.client.service_client import set_given
from tunix_rt.v1 import device_pb2, training_job_pb2

DEVICE_KINDS = {
    "any": device_pb2.DEVICE_KIND_UNSPECIFIED,
    "cpu": device_pb2.DEVICE_KIND_CPU,
    "gpu": device_pb2.DEVICE_KIND_GPU,
    "tpu": device_pb2.DEVICE_KIND_TPU,
}
DEVICE_KIND_NAMES = {value: key for key, value in DEVICE_KINDS.items()}

ModelKind = Literal["preset", "base_model_version", "checkpoint_dir"]


DEVICES_HELP = (
    "KIND:N asks for N devices of a kind (cpu:2 = any two CPU slots), KIND:[I,J] or KIND:I,KIND:J "
    "for exactly those devices as `tunix-rt devices` lists them (cpu:[1] = the device cpu:1, "
    "cpu:0,cpu:1 = both); KIND alone is one device. KIND is cpu, gpu, tpu or any."
)


def parse_device_request(text: str) -> device_pb2.DeviceRequest:
    """A DeviceRequest from the CLI form (see DEVICES_HELP): a count `cpu:2`, `gpu`, `any:2`
    (1 when omitted), or device ids `cpu:[0,1]` / `cpu:0,cpu:1`. A single `cpu:1` is a count;
    one named device is `cpu:[1]`. Raises ValueError for anything else."""
    value = text.strip().lower()
    if "," in value and "[" not in value:
        return _device_ids_request(text, [part.strip() for part in value.split(",")])
    kind, sep, rest = value.partition(":")
    if kind not in DEVICE_KINDS:
        raise ValueError(f"{text!r}: the kind must be one of {', '.join(DEVICE_KINDS)}")
    if rest.startswith("[") and rest.endswith("]"):
        indexes = [part.strip() for part in rest[1:-1].split(",")]
        return _device_ids_request(text, [f"{kind}:{index}" for index in indexes])
    count = 1
    if sep:
        if not (rest.isascii() and rest.isdigit()):
            raise ValueError(f"{text!r}: after {kind}: give a count N or device indexes [I,J]")
        count = int(rest)
        if count < 1:
            raise ValueError(
                f"{text!r} asks for no devices: {kind}:N is a count; to name the device "
                f"{kind}:{count} write {kind}:[{count}]"
            )
    return device_pb2.DeviceRequest(kind=DEVICE_KINDS[kind], count=count)


def _device_ids_request(text: str, ids: list[str]) -> device_pb2.DeviceRequest:
    """A request for exactly the devices `ids` (`cpu:0`), all of one kind, each once."""
    kinds = set()
    for device_id in ids:
        kind, _, index = device_id.partition(":")
        if kind not in DEVICE_KINDS or kind == "any" or not (index.isascii() and index.isdigit()):
            raise ValueError(f"{text!r}: {device_id!r} is not a device id such as cpu:0 or gpu:1")
        kinds.add(kind)
    if len(kinds) != 1 or len(set(ids)) != len(ids):
        raise ValueError(f"{text!r}: name devices of one kind, each once")
    return device_pb2.DeviceRequest(kind=DEVICE_KINDS[kinds.pop()], device_ids=ids)


def format_device_request(request: device_pb2.DeviceRequest) -> str:
    """The CLI form of a request: `gpu:2`, `any:1`, `cpu:[0,1]`."""
    kind = DEVICE_KIND_NAMES.get(request.kind, "any")
    if request.device_ids:
        return f"{kind}:[{','.join(i.partition(':')[2] for i in request.device_ids)}]"
    return f"{kind}:{request.count or 1}"


@dataclass(frozen=True)
class ModelSource:
    """Where a job's model starts: `kind` is the name of the TrainingJob `base_model` field."""

    kind: ModelKind
    value: str


def needs_presets(value: str) -> bool:
    """Whether classifying `value` needs the server's preset names: a path, `name@alias` or
    `name/version` can never be a preset."""
    text = value.strip()
    return not (text.startswith("/") or "@" in text or "/" in text)


def classify_model(value: str, presets: Collection[str]) -> ModelSource:
    """The model argument of `tunix-rt train --model`: an absolute path is a checkpoint directory,
    a known preset name is a preset, anything else is a registered version (`name@alias`,
    `name/version`, `name` for the latest, or `models/{model}/versions/{version}`)."""
    text = value.strip()
    if not text:
        raise ValueError("an empty model")
    if text.startswith("/"):
        return ModelSource("checkpoint_dir", text)
    if text in presets:
        return ModelSource("preset", text)
    return ModelSource("base_model_version", text)


def build_training_job(
    dataset: str,
    model: ModelSource | None = None,
    *,
    max_steps: int | None = None,
    num_epochs: float | None = None,
    devices: str | device_pb2.DeviceRequest | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    max_seq_len: int | None = None,
    seed: int | None = None,
    lora_rank: int | None = None,
    register_as: str | None = None,
    aliases: Sequence[str] = (),
    priority: int | None = None,
    eval_interval_steps: int | None = None,
    checkpoint_interval_steps: int | None = None,
    chat_template: str | None = None,
    display_name: str = "",
    labels: dict[str, str] | None = None,
    backend: str | None = None,
    evaluate: bool = False,
    precision: str | None = None,
    architecture_overrides: Mapping[str, float] | None = None,
) -> training_job_pb2.TrainingJob:
    """A TrainingJob from plain values; every None is left unset so the service's default applies.

    `lora_rank` trains a LoRA adapter of that rank (full fine-tuning when None); `register_as`
    names the model the result is registered under (default: the job's id); `backend` "jax" or
    "torch" pins the backend (None: the service picks the faster one for the devices);
    `precision` is "auto", "float32", "mixed_bfloat16" or "bfloat16"; `architecture_overrides`
    changes fields of a preset's architecture (`{"num_layers": 6, "rope_theta": 10000}`);
    `evaluate` asks the training service to evaluate the registered version on the dataset's
    eval split through the inference service when the job succeeds."""
    if max_steps is not None and num_epochs is not None:
        raise ValueError("give max_steps or num_epochs, not both")
    job = training_job_pb2.TrainingJob(
        dataset=names.dataset(dataset), display_name=display_name, labels=labels or {}
    )
    if model is not None:
        setattr(job, model.kind, model.value)
    if devices is not None:
        request = parse_device_request(devices) if isinstance(devices, str) else devices
        job.device_request.CopyFrom(request)
    if priority is not None:
        job.priority = priority
    if lora_rank is not None:
        job.lora.rank = lora_rank
    if register_as is not None or aliases:
        job.registration.model = names.model(register_as) if register_as else ""
        job.registration.aliases.extend(aliases)
    set_given(
        job.hyperparameters,
        max_steps=max_steps,
        num_epochs=num_epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_seq_len=max_seq_len,
        seed=seed,
        eval_interval_steps=eval_interval_steps,
        checkpoint_interval_steps=checkpoint_interval_steps,
        chat_template=chat_template,
    )
    if backend is not None:
        job.backend = f"BACKEND_{backend.upper()}"  # type: ignore[assignment]
    if architecture_overrides:
        job.architecture_overrides.update(dict(architecture_overrides))
    if precision is not None:
        job.hyperparameters.precision = PRECISIONS[precision]
    if evaluate:
        job.completion_evaluation.SetInParent()
    return job
