"""The tensors (HF names and shapes) a model of an architecture config must have."""

from __future__ import annotations

import re

from tunix_rt.models.presets import ArchitectureConfig

# Tensors some Hugging Face checkpoints carry that no model here reads (old Llama checkpoints
# store the rotary frequencies), so they are accepted and dropped.
IGNORED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")
LM_HEAD = "lm_head.weight"


def expected_tensors(arch: ArchitectureConfig) -> dict[str, tuple[int, ...]]:
    """{HF name: shape} of every weight of `arch`'s family: embeddings, q/k/v/o with head_dim and
    key/value heads, Qwen2's q/k/v biases, Qwen3's q/k norms, the MLP, the norms, and lm_head
    unless the embeddings are tied."""
    d, hd, inter = arch.hidden_size, arch.head_dim, arch.intermediate_size
    q, kv = arch.num_heads * hd, arch.num_kv_heads * hd
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (arch.vocab_size, d)}
    for i in range(arch.num_layers):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "self_attn.q_proj.weight": (q, d),
                p + "self_attn.k_proj.weight": (kv, d),
                p + "self_attn.v_proj.weight": (kv, d),
                p + "self_attn.o_proj.weight": (d, q),
                p + "mlp.gate_proj.weight": (inter, d),
                p + "mlp.up_proj.weight": (inter, d),
                p + "mlp.down_proj.weight": (d, inter),
                p + "input_layernorm.weight": (d,),
                p + "post_attention_layernorm.weight": (d,),
            }
        )
        if arch.family == "qwen2":
            shapes.update(
                {
                    p + "self_attn.q_proj.bias": (q,),
                    p + "self_attn.k_proj.bias": (kv,),
                    p + "self_attn.v_proj.bias": (kv,),
                }
            )
        if arch.family == "qwen3":
            shapes.update(
                {p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,)}
            )
    shapes["model.norm.weight"] = (d,)
    if not arch.tie_embeddings:
        shapes[LM_HEAD] = (arch.vocab_size, d)
    return shapes


def optional_tensors(arch: ArchitectureConfig) -> dict[str, tuple[int, ...]]:
    """Tensors a checkpoint may carry beyond `expected_tensors`: a tied model's lm_head (some
    exporters write the shared matrix twice)."""
    if arch.tie_embeddings:
        return {LM_HEAD: (arch.vocab_size, arch.hidden_size)}
    return {}
