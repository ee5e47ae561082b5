"""The resolved specification of a training job: what a worker process needs to run it.

It is made once at submission from the TrainingJob message (defaults filled in, every range
checked), stored as the run's `config` in the registry (so a restarted service can recover the
job) and handed to the worker as JSON. Plain Python: no grpc, no framework imports.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from tunix_rt.models.lora import LoraSpec


@dataclass(frozen=True)
class Hyperparameters:
    """Training hyperparameters with every default resolved."""

    # Peak learning rate after warmup.
    learning_rate: float = 3e-4
    # cosine | linear | constant decay after warmup.
    schedule: str = "cosine"
    # Linear warmup steps from 0 to the peak; None = 5 % of the total steps.
    warmup_steps: int | None = None
    # Decay ends at this fraction of the peak.
    min_learning_rate_ratio: float = 0.1
    # AdamW decoupled weight decay.
    weight_decay: float = 0.01
    # Examples (packed sequences) per micro-batch across all devices.
    batch_size: int = 8
    # Micro-batches per optimizer step.
    gradient_accumulation_steps: int = 1
    # Tokens per packed sequence.
    max_seq_len: int = 256
    # Optimizer steps; None = derived from num_epochs once the data is tokenized.
    max_steps: int | None = None
    # Passes over the train split when max_steps is None.
    num_epochs: float = 1.0
    # Seed of initialisation, data order and dropout.
    seed: int = 0
    # Global gradient-norm clip; 0 disables.
    max_grad_norm: float = 1.0
    # Steps between periodic evaluations; None = 10 % of the total; 0 = only at the end.
    eval_interval_steps: int | None = None
    # Steps between checkpoints; None = 10 % of the total; 0 = only at the end.
    checkpoint_interval_steps: int | None = None
    # Eval-split examples per periodic evaluation; 0 = all.
    eval_max_examples: int = 64
    # Tokens generated per example when measuring answer accuracy.
    eval_max_new_tokens: int = 128
    # The chat template prompts are rendered with (tunix_rt.common.rendering).
    chat_template: str = "plain"
    # auto | float32 | mixed_bfloat16 | bfloat16.
    precision: str = "auto"
    # packed | length_bucketed | padded.
    batching: str = "packed"


@dataclass(frozen=True)
class BaseModel:
    """Where training starts: exactly one of the three is set."""

    # An architecture preset name (random init) and overrides of its config.
    preset: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    # A registered version, `models/{m}/versions/{v}`, and its artifact `artifacts/{sha256}`.
    model_version: str = ""
    artifact: str = ""
    # A local checkpoint directory on the training host.
    checkpoint_dir: str = ""

    def describe(self) -> str:
        return self.preset or self.model_version or self.checkpoint_dir


@dataclass(frozen=True)
class Registration:
    """How the result is registered."""

    model: str  # models/{model}
    aliases: tuple[str, ...] = ()
    description: str = ""
    lora_mode: str = "merged"


@dataclass(frozen=True)
class TrainSpec:
    """Everything a worker needs to run a job; JSON round-trips through `to_json`/`from_json`."""

    job_id: str
    dataset: str  # datasets/{dataset}
    base: BaseModel
    backend: str  # jax | torch
    hyper: Hyperparameters
    lora: LoraSpec | None
    device_kind: str  # cpu | gpu | tpu (resolved)
    device_count: int
    priority: int
    registration: Registration
    display_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    # The devices the job named (`cpu:0`, …); empty: any `device_count` free ones of its kind.
    device_ids: tuple[str, ...] = ()
    # The completion-evaluation request as JSON (proto field names); empty = none.
    completion_evaluation: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSpec:
        lora = data.get("lora")
        return cls(
            job_id=data["job_id"],
            dataset=data["dataset"],
            base=BaseModel(**data["base"]),
            backend=data["backend"],
            hyper=Hyperparameters(**_typed(Hyperparameters, data["hyper"])),
            lora=LoraSpec(
                **{**_typed(LoraSpec, lora), "target_modules": tuple(lora["target_modules"])}
            )
            if lora
            else None,
            device_kind=data["device_kind"],
            device_count=int(data["device_count"]),
            device_ids=tuple(data.get("device_ids", ())),
            priority=int(data["priority"]),
            registration=Registration(
                **{**data["registration"], "aliases": tuple(data["registration"]["aliases"])}
            ),
            display_name=data.get("display_name", ""),
            labels=dict(data.get("labels", {})),
            completion_evaluation=dict(data.get("completion_evaluation", {})),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


def _typed(kind: type, values: dict[str, Any]) -> dict[str, Any]:
    """Restores ints that JSON through google.protobuf.Struct turned into floats (the run's
    config is a Struct, whose numbers are doubles)."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(kind)}
    out = dict(values)
    for name, value in values.items():
        if isinstance(value, float) and fields.get(name, "").startswith("int"):
            out[name] = int(value)
    return out


def resolve_schedule(hyper: Hyperparameters, total_steps: int) -> tuple[int, int, int]:
    """(warmup steps, eval interval, checkpoint interval) once the total is known."""
    tenth = max(1, total_steps // 10)
    warmup = hyper.warmup_steps if hyper.warmup_steps is not None else max(0, total_steps // 20)
    evals = hyper.eval_interval_steps if hyper.eval_interval_steps is not None else tenth
    checkpoints = (
        hyper.checkpoint_interval_steps if hyper.checkpoint_interval_steps is not None else tenth
    )
    return min(warmup, total_steps), evals, checkpoints
