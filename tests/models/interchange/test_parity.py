"""Weights move between the tunix (JAX) model and transformers both ways with equal logits
(float32, CPU, atol 1e-4), for Llama, Qwen2 and Qwen3."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.models.interchange import helpers
from tunix_rt.models import presets
from tunix_rt.models.interchange.hf_export import export_hf
from tunix_rt.models.interchange.validate import validate_model_dir
from tunix_rt.models.jax import model as model_lib
from tunix_rt.models.jax.model_dir import load_model_dir, write_model_dir

pytestmark = helpers.PYTESTMARK


@pytest.mark.parametrize("preset", ["llama3-tiny", "qwen2-tiny", "qwen3-tiny"])
def test_jax_model_exported_loads_in_transformers_with_equal_logits(
    preset: str, tmp_path: Path
) -> None:
    import transformers

    arch = presets.get(preset).config
    tok = helpers.tokenizer(arch.family)
    model = model_lib.create_model(arch, seed=3)
    model_dir = write_model_dir(
        tmp_path / "model", model, arch, tok, chat_template="plain", training_step=0
    )
    assert validate_model_dir(model_dir).architecture == arch
    out = export_hf(model_dir, tmp_path / "hf")
    assert validate_model_dir(out).architecture == arch

    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out))
    ids = helpers.token_ids(arch.vocab_size)
    expected = helpers.jax_logits(model, ids)
    got = helpers.torch_logits(hf, ids)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got, expected, atol=helpers.ATOL, rtol=0)

    hf_tok = transformers.AutoTokenizer.from_pretrained(str(out))
    text = "The lazy fox: 12 + 30"
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == tok.encode(text)
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.pad_token_id) == (
        tok.bos_id(),
        tok.eos_id(),
        tok.pad_id(),
    )


def test_tied_embeddings_export(tmp_path: Path) -> None:
    import transformers

    arch = dataclasses.replace(presets.get("llama3-tiny").config, tie_embeddings=True)
    model = model_lib.create_model(arch, seed=1)
    model_dir = write_model_dir(
        tmp_path / "model", model, arch, helpers.tokenizer(), chat_template="plain", training_step=0
    )
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(export_hf(model_dir, tmp_path / "hf"))
    )
    ids = helpers.token_ids(arch.vocab_size)
    np.testing.assert_allclose(
        helpers.torch_logits(hf, ids), helpers.jax_logits(model, ids), atol=helpers.ATOL, rtol=0
    )


@pytest.mark.parametrize(
    ("family", "tie"), [("llama3", False), ("llama3", True), ("qwen2", False), ("qwen3", False)]
)
def test_transformers_checkpoint_loads_in_jax_with_equal_logits(
    family: str, tie: bool, tmp_path: Path
) -> None:
    hf = helpers.hf_model(family, tie=tie)
    directory = helpers.save_hf_dir(hf, helpers.tokenizer(), tmp_path / "hf")

    model, tokenizer, config = load_model_dir(directory)
    assert config.architecture.family == family
    assert config.architecture.tie_embeddings == tie
    assert (tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id()) == (1, 2, 0)
    ids = helpers.token_ids(300)
    expected = helpers.torch_logits(hf, ids)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(helpers.jax_logits(model, ids), expected, atol=helpers.ATOL, rtol=0)
