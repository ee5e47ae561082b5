"""Named architecture presets: backend-neutral transformer configs a job can start from.

A preset is a frozen `ArchitectureConfig` (the numbers that define a decoder-only transformer)
under a name such as `llama3-tiny`. The config is neutral: the JAX backend maps it onto a tunix
model config, the torch backend onto a `transformers` config, so one preset means the same model on
either. Plain Python: no framework imports, so the servicer can list and validate presets cheaply.

    preset = get("llama3-small")
    config = apply_overrides(preset, {"num_layers": 2})   # InvalidArgument naming a bad key
    parameter_count(config)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunix_rt.common.errors import FieldViolation, InvalidArgument

if TYPE_CHECKING:
    from tunix_rt.v1 import training_job_pb2

FAMILIES = ("llama3", "qwen2", "qwen3")
# The training backends that build a preset. Both build every family (models/jax/model.py maps a
# config onto tunix, models/torch/model.py onto transformers); a preset that one of them cannot
# build lists only the other, and a job asking for it there is refused at submission.
BACKENDS = ("jax", "torch")
OVERRIDE_FIELD = "training_job.architecture_overrides"


@dataclass(frozen=True)
class ArchitectureConfig:
    """A decoder-only transformer (pre-norm RMSNorm, rotary positions, SwiGLU MLP, GQA)."""

    # Model family: llama3 | qwen2 (q/k/v biases) | qwen3 (RMSNorm on queries and keys).
    family: str
    # Transformer blocks.
    num_layers: int
    # Width of the residual stream (d_model).
    hidden_size: int
    # Width of the SwiGLU MLP's hidden layer.
    intermediate_size: int
    # Query heads.
    num_heads: int
    # Key/value heads; num_heads must be a multiple (grouped-query attention).
    num_kv_heads: int
    # Width of one attention head.
    head_dim: int
    # Token embeddings; the tokenizer trained for a from-scratch model has at most this many.
    vocab_size: int
    # Longest sequence in tokens (training max_seq_len and generation are capped by it).
    context_length: int
    # Rotary embedding base. tunix 0.1.7's llama3 ignores it and always uses 1e6, so llama3
    # presets say 1e6 to describe the model that actually runs.
    rope_theta: float = 1_000_000.0
    # RMSNorm epsilon.
    norm_eps: float = 1e-5
    # Share the input embedding with the output projection.
    tie_embeddings: bool = False

    @classmethod
    def llama3_tiny(cls) -> ArchitectureConfig:
        """~0.6M parameters: for tests, trains in seconds on one CPU core."""
        return cls("llama3", 2, 128, 512, 4, 4, 32, 512, 512)

    @classmethod
    def llama3_1p3m(cls) -> ArchitectureConfig:
        """~1.3M parameters: llama3-small's depth at d=128, the main job's model (`make demo`):
        on 2 CPU cores it trains ~1.7x the tokens per second of llama3-small, and in the same
        10 minutes learns more (docs/recipes.md: 56 % held-out against 30.5 %)."""
        return cls("llama3", 4, 128, 512, 4, 4, 32, 1024, 512)

    @classmethod
    def llama3_2p5m(cls) -> ArchitectureConfig:
        """~2.6M parameters: the benchmark model of DESIGN.md (2 layers, d=256, vocab 1024)."""
        return cls("llama3", 2, 256, 1024, 4, 4, 64, 1024, 512)

    @classmethod
    def llama3_small(cls) -> ArchitectureConfig:
        """~2.75M parameters: the README main job's default; learns the shipped reasoning
        datasets visibly within a few minutes on 2 CPU cores (4 layers deep, for copying)."""
        return cls("llama3", 4, 192, 768, 4, 4, 48, 1024, 512)

    @classmethod
    def llama3_1b(cls) -> ArchitectureConfig:
        """~1.04B parameters: Llama 3.2 1B's shape (16 layers, d=2048, 32 query and 8 key/value
        heads of 64, MLP 8192, tied embeddings) with a 32k vocabulary, so a tokenizer trained on
        a synthetic corpus can fill it; the GPU check's model (bench/gpu_check.sh)."""
        return cls("llama3", 16, 2048, 8192, 32, 8, 64, 32768, 2048, tie_embeddings=True)

    @classmethod
    def qwen2_tiny(cls) -> ArchitectureConfig:
        """llama3-tiny's size with Qwen2's q/k/v biases and 2 key/value heads."""
        return cls("qwen2", 2, 128, 512, 4, 2, 32, 512, 512, norm_eps=1e-6)

    @classmethod
    def qwen3_tiny(cls) -> ArchitectureConfig:
        """llama3-tiny's size with Qwen3's query/key RMSNorm and 2 key/value heads."""
        return cls("qwen3", 2, 128, 512, 4, 2, 32, 512, 512, norm_eps=1e-6)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArchitectureConfig:
        """The inverse of `to_json`; TypeError for an unknown or missing key."""
        return cls(**data)


@dataclass(frozen=True)
class Preset:
    """A named config with a one-line description."""

    name: str
    description: str
    config: ArchitectureConfig
    backends: tuple[str, ...] = BACKENDS

    @property
    def family(self) -> str:
        return self.config.family


_PRESETS: tuple[Preset, ...] = (
    Preset(
        "llama3-tiny", "2 layers, d=128, vocab 512: for tests", ArchitectureConfig.llama3_tiny()
    ),
    Preset(
        "llama3-small",
        "4 layers, d=192, vocab 1024: the default; learns the shipped datasets in minutes on CPU",
        ArchitectureConfig.llama3_small(),
    ),
    Preset(
        "llama3-1.3m",
        "4 layers, d=128, vocab 1024: the main job's model (make demo), fastest to learn on CPU",
        ArchitectureConfig.llama3_1p3m(),
    ),
    Preset(
        "llama3-2.5m",
        "2 layers, d=256, vocab 1024: the throughput benchmark model",
        ArchitectureConfig.llama3_2p5m(),
    ),
    Preset(
        "llama3-1b",
        "16 layers, d=2048, vocab 32768: Llama 3.2 1B-shaped, for GPU throughput",
        ArchitectureConfig.llama3_1b(),
    ),
    Preset("qwen2-tiny", "Qwen2 layout (q/k/v biases), test size", ArchitectureConfig.qwen2_tiny()),
    Preset("qwen3-tiny", "Qwen3 layout (q/k norms), test size", ArchitectureConfig.qwen3_tiny()),
)
DEFAULT_PRESET = "llama3-small"


def names() -> list[str]:
    """Every preset name, in listing order (by family, then size)."""
    return [p.name for p in _PRESETS]


def get(name: str) -> Preset:
    """The named preset; KeyError for an unknown name."""
    for preset in _PRESETS:
        if preset.name == name:
            return preset
    raise KeyError(name)


def _coerce(value: Any, like: Any) -> tuple[Any, str | None]:
    """`value` converted to the type of `like`, or an error text. google.protobuf.Struct carries
    every number as a double, so an integral float is a valid int."""
    if isinstance(like, bool):
        return (value, None) if isinstance(value, bool) else (None, "must be a boolean")
    if isinstance(like, int):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "must be an integer"
        if float(value) != int(value):
            return None, "must be an integer"
        if int(value) < 1:
            return None, "must be at least 1"
        return int(value), None
    if isinstance(like, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "must be a number"
        if float(value) <= 0:
            return None, "must be greater than 0"
        return float(value), None
    return None, "cannot be overridden"


def apply_overrides(
    base: Preset | ArchitectureConfig, overrides: dict[str, Any]
) -> ArchitectureConfig:
    """`base`'s config with `overrides` applied and checked; InvalidArgument naming every bad key
    (`training_job.architecture_overrides.<key>`): unknown, of the wrong type, or inconsistent."""
    config = base.config if isinstance(base, Preset) else base
    current = config.to_json()
    changed: dict[str, Any] = {}
    violations: list[FieldViolation] = []
    for key in sorted(overrides):
        path = f"{OVERRIDE_FIELD}.{key}"
        if key not in current:
            known = ", ".join(k for k in current if k != "family")
            violations.append(FieldViolation(path, f"is not an architecture field ({known})"))
            continue
        if key == "family":
            violations.append(FieldViolation(path, "cannot be overridden; pick another preset"))
            continue
        value, error = _coerce(overrides[key], current[key])
        if error:
            violations.append(FieldViolation(path, error))
        else:
            changed[key] = value
    if not violations:
        merged = dataclasses.replace(config, **changed)
        if merged.num_heads % merged.num_kv_heads:
            key = "num_kv_heads" if "num_kv_heads" in changed else "num_heads"
            violations.append(
                FieldViolation(f"{OVERRIDE_FIELD}.{key}", "num_heads must be a multiple of it")
            )
        if merged.head_dim % 2:
            violations.append(
                FieldViolation(f"{OVERRIDE_FIELD}.head_dim", "must be even (rotary embedding)")
            )
        if merged.vocab_size < 260:
            violations.append(
                FieldViolation(
                    f"{OVERRIDE_FIELD}.vocab_size",
                    "must be at least 260 (256 bytes and 4 special tokens)",
                )
            )
    if violations:
        raise InvalidArgument.fields(violations)
    return dataclasses.replace(config, **changed)


def parameter_count(config: ArchitectureConfig) -> int:
    """Trainable parameters of the model the config describes (matches the tunix models)."""
    d, heads, kv, hd = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    attention = d * heads * hd + 2 * d * kv * hd + heads * hd * d
    if config.family == "qwen2":
        attention += heads * hd + 2 * kv * hd  # q, k, v biases
    if config.family == "qwen3":
        attention += 2 * hd  # query and key RMSNorm scales
    mlp = 3 * d * config.intermediate_size
    layer = attention + mlp + 2 * d  # two RMSNorm scales
    embeddings = config.vocab_size * d * (1 if config.tie_embeddings else 2)
    return embeddings + config.num_layers * layer + d  # + final norm


def as_protos() -> list[training_job_pb2.ArchitecturePreset]:
    """Every preset as an ArchitecturePreset message (for ListArchitecturePresets)."""
    from tunix_rt.v1 import backend_pb2, training_job_pb2

    backends = {"jax": backend_pb2.BACKEND_JAX, "torch": backend_pb2.BACKEND_TORCH}
    out = []
    for preset in _PRESETS:
        message = training_job_pb2.ArchitecturePreset(
            name=preset.name,
            family=preset.family,
            description=preset.description,
            parameter_count=parameter_count(preset.config),
            num_layers=preset.config.num_layers,
            hidden_size=preset.config.hidden_size,
            vocab_size=preset.config.vocab_size,
            context_length=preset.config.context_length,
            backends=[backends[b] for b in preset.backends],
        )
        message.config.update(preset.config.to_json())
        out.append(message)
    return out
