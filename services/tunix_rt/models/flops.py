"""Model FLOPs per trained token of an `ArchitectureConfig`: the numerator of MFU.

Plain Python (no framework imports), so the training service, both backends and the benchmarks
count the same way. The count follows the PaLM paper's definition of model FLOPs utilisation
(Chowdhery et al. 2022, appendix B) and nanoGPT's `estimate_mfu`:

- A matmul of an `[m, k]` by a `[k, n]` matrix is `2·m·k·n` FLOPs (one multiply, one add). Per
  token (m = 1) a weight matrix `[k, n]` costs `2·k·n`: the q/k/v/o projections (k/v narrower
  under grouped-query attention), the SwiGLU MLP's gate, up and down matrices and the LM head.
  The embedding lookup is a gather (free). Norms, rotary embeddings, softmax, SiLU, residual adds
  and biases are element-wise and left out, as in PaLM: they are O(d) per token against O(d²).
- Attention's two matmuls per layer, scores `Q·Kᵀ` and the weighted sum `P·V`, cost
  `2 · 2 · T · head_dim · num_heads` per token, where T is the training row length (the job's
  `max_seq_len`, the `[B, T]` batch the backends build). Why T and not the packed segments' own
  lengths or the causal half: both backends compute the whole `[T, T]` score matrix of a row and
  mask it (block-diagonal causal mask over packed segments), so T is the work the hardware does;
  it is the convention of PaLM, Megatron-LM and nanoGPT, so MFU figures compare; and it is one
  number per job, not per batch. It overstates the useful attention work (causal: about half; a
  packed row of short segments: less), which at the sizes we train (T ≤ 2048, d ≥ 128) is a few
  per cent of the total (see `attention_share`).
- Training = forward + backward, and the backward of a matmul is two matmuls of the same size
  (the gradient with respect to its input and to its weight), so a fully trained model costs
  3 * forward (the 6·N·tokens rule plus attention).
- LoRA (Hu et al. 2021): the frozen base still runs its forward and, to reach the adapters of
  lower layers, the backward through its activations (the input-gradient matmul), but skips its
  weight gradients: 2 * forward for the base matrices. The adapters (`A [k, r]`, `B [r, n]` on
  each targeted module) cost `2·r·(k + n)` forward and are fully trained (3x); attention has no
  weights and keeps its 3x. So LoRA training = 2·base + 3·attention + 3·adapters. (The first
  layer's input gradient is not needed and frameworks skip it; that is under 1/num_layers of
  one term and ignored.)
"""

from __future__ import annotations

from dataclasses import dataclass

from tunix_rt.models.lora import LoraSpec
from tunix_rt.models.presets import ArchitectureConfig


def _layer_matrices(config: ArchitectureConfig) -> dict[str, tuple[int, int]]:
    """The weight matrices of one decoder layer by their Hugging Face module names, as
    (in_features, out_features)."""
    d, q = config.hidden_size, config.num_heads * config.head_dim
    kv = config.num_kv_heads * config.head_dim
    f = config.intermediate_size
    return {
        "q_proj": (d, q),
        "k_proj": (d, kv),
        "v_proj": (d, kv),
        "o_proj": (q, d),
        "gate_proj": (d, f),
        "up_proj": (d, f),
        "down_proj": (f, d),
    }


def matmul_flops_per_token(config: ArchitectureConfig) -> int:
    """Forward FLOPs per token of every weight matmul: the layers' projections and the LM head
    (2 per weight element; the embedding gather is free, a tied head still multiplies)."""
    layer = sum(2 * k * n for k, n in _layer_matrices(config).values())
    head = 2 * config.hidden_size * config.vocab_size
    return config.num_layers * layer + head


def attention_flops_per_token(config: ArchitectureConfig, seq_len: int) -> int:
    """Forward FLOPs per token of the attention scores and weighted sum over a row of `seq_len`
    tokens (see the module docstring for why the full row)."""
    return config.num_layers * 2 * 2 * seq_len * config.head_dim * config.num_heads


def lora_flops_per_token(config: ArchitectureConfig, lora: LoraSpec) -> int:
    """Forward FLOPs per token of the LoRA adapters: `x·A` and `(x·A)·B` on each targeted
    module of every layer."""
    matrices = _layer_matrices(config)
    per_layer = sum(2 * lora.rank * sum(matrices[m]) for m in lora.target_modules)
    return config.num_layers * per_layer


@dataclass(frozen=True)
class TrainingFlops:
    """The FLOPs of one trained token and where they go (forward terms; see `per_token`)."""

    matmul_forward: int  # weight matmuls, LM head included
    attention_forward: int  # scores and weighted sum over the row
    lora_forward: int  # adapters; 0 without LoRA
    lora: bool  # whether the base is frozen

    @property
    def forward(self) -> int:
        return self.matmul_forward + self.attention_forward + self.lora_forward

    @property
    def per_token(self) -> int:
        """Forward + backward: 3x forward, except a frozen base's matmuls at 2x."""
        base = (2 if self.lora else 3) * self.matmul_forward
        return base + 3 * (self.attention_forward + self.lora_forward)

    @property
    def attention_share(self) -> float:
        """The attention term's share of the total (what the row-length convention weighs)."""
        return 3 * self.attention_forward / self.per_token


def training_flops(
    config: ArchitectureConfig, seq_len: int, lora: LoraSpec | None = None
) -> TrainingFlops:
    """The training FLOPs of one token of a `[B, seq_len]` batch (the module docstring)."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be at least 1, got {seq_len}")
    return TrainingFlops(
        matmul_forward=matmul_flops_per_token(config),
        attention_forward=attention_flops_per_token(config, seq_len),
        lora_forward=lora_flops_per_token(config, lora) if lora is not None else 0,
        lora=lora is not None,
    )
