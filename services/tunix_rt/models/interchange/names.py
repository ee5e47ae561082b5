"""Tensor names between tunix models and Hugging Face checkpoints, as plain Python.

Model directories store weights under Hugging Face Llama / Qwen2 / Qwen3 names and layouts
(`model.layers.0.self_attn.q_proj.weight`, `[out, in]`). One table maps each tunix parameter
path to its HF name and says where the tunix array splits into input and output dimensions:
tunix keeps `[in..., out...]` (e.g. q_proj `[D, N, H]`), HF keeps `[prod(out), prod(in)]`.
Framework-free, so the JAX weights module, adapter merging and validation share it.
"""

from __future__ import annotations

import re

# (tunix path pattern, HF name template, number of leading input dims; None = copy as is)
TABLE: tuple[tuple[str, str, int | None], ...] = (
    (r"embedder\.input_embedding", "model.embed_tokens.weight", None),
    (r"layers\.(\d+)\.attn\.q_proj\.w", r"model.layers.\1.self_attn.q_proj.weight", 1),
    (r"layers\.(\d+)\.attn\.k_proj\.w", r"model.layers.\1.self_attn.k_proj.weight", 1),
    (r"layers\.(\d+)\.attn\.v_proj\.w", r"model.layers.\1.self_attn.v_proj.weight", 1),
    (r"layers\.(\d+)\.attn\.o_proj\.w", r"model.layers.\1.self_attn.o_proj.weight", 2),
    (r"layers\.(\d+)\.attn\.q_bias", r"model.layers.\1.self_attn.q_proj.bias", None),
    (r"layers\.(\d+)\.attn\.k_bias", r"model.layers.\1.self_attn.k_proj.bias", None),
    (r"layers\.(\d+)\.attn\.v_bias", r"model.layers.\1.self_attn.v_proj.bias", None),
    (r"layers\.(\d+)\.attn\.q_norm\.w", r"model.layers.\1.self_attn.q_norm.weight", None),
    (r"layers\.(\d+)\.attn\.k_norm\.w", r"model.layers.\1.self_attn.k_norm.weight", None),
    (r"layers\.(\d+)\.mlp\.gate_proj\.kernel", r"model.layers.\1.mlp.gate_proj.weight", 1),
    (r"layers\.(\d+)\.mlp\.up_proj\.kernel", r"model.layers.\1.mlp.up_proj.weight", 1),
    (r"layers\.(\d+)\.mlp\.down_proj\.kernel", r"model.layers.\1.mlp.down_proj.weight", 1),
    (r"layers\.(\d+)\.input_layernorm\.w", r"model.layers.\1.input_layernorm.weight", None),
    (
        r"layers\.(\d+)\.post_attention_layernorm\.w",
        r"model.layers.\1.post_attention_layernorm.weight",
        None,
    ),
    (r"final_norm\.w", "model.norm.weight", None),
    (r"lm_head\.w", "lm_head.weight", 1),
)
LORA_SUFFIX = re.compile(r"_lora_[ab]$")


def lookup(tunix_name: str) -> tuple[str, int | None]:
    """(HF name, leading input dims or None) of a tunix parameter path; KeyError if unknown."""
    for pattern, hf_template, split in TABLE:
        match = re.fullmatch(pattern, tunix_name)
        if match:
            return match.expand(hf_template), split
    raise KeyError(f"no Hugging Face name for tunix parameter {tunix_name!r}")
