"""LoRA adapters of both backends merge into their base weights (numpy only), and the merged export
computes what the adapted model computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.models.interchange import helpers
from tunix_rt.models import presets
from tunix_rt.models.interchange.hf_export import export_hf
from tunix_rt.models.interchange.merge import load_merged
from tunix_rt.models.interchange.model_config import architecture_from_hf, write_config
from tunix_rt.models.interchange.validate import validate_model_dir
from tunix_rt.models.lora import LoraSpec

pytestmark = helpers.PYTESTMARK


def test_jax_adapter_merges_like_the_jax_backend(tmp_path: Path) -> None:
    import transformers

    from tunix_rt.models.jax import weights

    adapted, base_dir, adapter_dir = helpers.jax_adapter_dirs(tmp_path)
    lora = LoraSpec(rank=4, alpha=8.0)
    arch = presets.get("llama3-tiny").config
    assert validate_model_dir(adapter_dir).kind == "adapter"
    merged = load_merged(adapter_dir, base_dir)
    expected = weights.export_hf(adapted, lora.alpha / lora.rank)
    assert sorted(merged) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(merged[name], value, atol=1e-6, rtol=0, err_msg=name)
    with pytest.raises(ValueError, match="base model directory"):
        load_merged(adapter_dir)

    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(export_hf(adapter_dir, tmp_path / "hf", base_dir))
    )
    ids = helpers.token_ids(arch.vocab_size)
    np.testing.assert_allclose(
        helpers.torch_logits(hf, ids), helpers.jax_logits(adapted, ids), atol=helpers.ATOL, rtol=0
    )


def test_peft_adapter_merges_like_peft(tmp_path: Path) -> None:
    import peft
    import torch

    hf = helpers.hf_model("qwen2")
    tok = helpers.tokenizer()
    base_dir = helpers.save_hf_dir(hf, tok, tmp_path / "base")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    adapted = peft.get_peft_model(hf, config)
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    adapter_dir = tmp_path / "adapter"
    adapted.save_pretrained(str(adapter_dir))
    tok.save(adapter_dir)
    arch = architecture_from_hf(hf.config.to_dict())
    write_config(
        adapter_dir,
        arch,
        tokenizer_ids={"bos": 1, "eos": 2, "pad": 0},
        tokenizer_description=tok.describe(),
        backend="torch",
        chat_template="plain",
        training_step=3,
        adapter={"format": "peft", "rank": 4, "alpha": 8.0, "base": "models/b/versions/1"},
    )
    ids = helpers.token_ids(arch.vocab_size)
    expected_logits = helpers.torch_logits(adapted, ids)

    assert validate_model_dir(adapter_dir).kind == "peft"
    merged = load_merged(adapter_dir, base_dir)
    expected = {k: v.numpy() for k, v in adapted.merge_and_unload().state_dict().items()}
    assert sorted(merged) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(merged[name], value, atol=1e-6, rtol=0, err_msg=name)

    import transformers

    exported = transformers.AutoModelForCausalLM.from_pretrained(
        str(export_hf(adapter_dir, tmp_path / "hf", base_dir))
    )
    np.testing.assert_allclose(
        helpers.torch_logits(exported, ids), expected_logits, atol=helpers.ATOL, rtol=0
    )
