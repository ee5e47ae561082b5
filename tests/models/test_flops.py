"""Model FLOPs per trained token (tunix_rt.models.flops) against hand counts and 6·N."""

from __future__ import annotations

import dataclasses

import pytest

from tunix_rt.models import flops, presets
from tunix_rt.models.lora import LoraSpec


def test_llama3_tiny_matches_a_hand_count() -> None:
    # llama3-tiny: 2 layers, d=128, 4 query and 4 key/value heads of 32, MLP 512, vocab 512.
    config = presets.get("llama3-tiny").config
    q_k_v_o = 4 * 2 * 128 * 128  # four [128, 128] projections, 2 FLOPs per weight
    mlp = 3 * 2 * 128 * 512  # gate, up [128, 512] and down [512, 128]
    head = 2 * 128 * 512  # LM head [128, 512]; the embedding gather is free
    matmuls = 2 * (q_k_v_o + mlp) + head
    attention = 2 * (2 * 2 * 128 * 32 * 4)  # per layer: scores and weighted sum over T=128
    counted = flops.training_flops(config, 128)
    assert counted.matmul_forward == matmuls == 1_179_648
    assert counted.attention_forward == attention == 131_072
    assert counted.per_token == 3 * (matmuls + attention) == 3_932_160
    assert counted.attention_share == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["llama3-tiny", "llama3-2.5m", "llama3-small", "llama3-1b"])
def test_the_count_is_six_n_plus_attention_less_what_does_no_matmul(name: str) -> None:
    config = presets.get(name).config
    n = presets.parameter_count(config)
    counted = flops.training_flops(config, 256)
    # 6·N counts every parameter as a matmul weight; the input embedding (when untied) is a
    # gather and the RMSNorm scales are element-wise.
    gathered = 0 if config.tie_embeddings else config.vocab_size * config.hidden_size
    norms = (2 * config.num_layers + 1) * config.hidden_size
    assert counted.per_token == 6 * (n - gathered - norms) + 3 * counted.attention_forward
    # So 6·N is within the attention term and the embedding of the count.
    gap = abs(counted.per_token - 6 * n) / counted.per_token
    assert gap <= counted.attention_share + 6 * (gathered + norms) / counted.per_token


def test_grouped_query_attention_narrows_the_key_value_projections() -> None:
    config = presets.get("llama3-tiny").config
    grouped = dataclasses.replace(config, num_kv_heads=1)
    saved = flops.matmul_flops_per_token(config) - flops.matmul_flops_per_token(grouped)
    assert saved == config.num_layers * 2 * (2 * 128 * 128 - 2 * 128 * 32)


def test_attention_grows_with_the_row_length_and_the_rest_does_not() -> None:
    config = presets.get("llama3-2.5m").config
    short, long = flops.training_flops(config, 128), flops.training_flops(config, 512)
    assert long.attention_forward == 4 * short.attention_forward
    assert long.matmul_forward == short.matmul_forward
    with pytest.raises(ValueError, match="seq_len"):
        flops.training_flops(config, 0)


def test_lora_freezes_the_base_to_forward_plus_input_gradients() -> None:
    config = presets.get("llama3-tiny").config
    lora = LoraSpec(rank=8, target_modules=("q_proj", "v_proj"))
    counted = flops.training_flops(config, 128, lora)
    # Per layer: q_proj and v_proj, each A [128, 8] and B [8, 128]: 2·8·(128 + 128) FLOPs.
    adapters = 2 * 2 * (2 * 8 * (128 + 128))
    assert counted.lora_forward == adapters
    full = flops.training_flops(config, 128)
    assert counted.per_token == (
        2 * full.matmul_forward + 3 * full.attention_forward + 3 * adapters
    )
    assert counted.per_token < full.per_token
