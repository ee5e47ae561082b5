"""Tiny models on both sides of the interchange, and their logits on the same tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunix_rt.models.tokenizer import TextTokenizer, splits_letters, train_tokenizer

# tunix 0.1.7 and qwix (pinned) call flax / jax APIs that are deprecated now; third-party
# warnings, filtered by message.
PYTESTMARK = [
    pytest.mark.filterwarnings(f"ignore:{message}:DeprecationWarning")
    for message in (
        "'sharding' is deprecated, use 'out_sharding'",
        "'.value' access is now deprecated",
        "The 'm.iter_modules\\(\\)' method is deprecated",  # qwix
        "'VariableState' was removed",  # qwix
        "jax.experimental.shard_map is deprecated",  # tunix qwen2
        "jax.interpreters.pxla.thread_resources is deprecated",  # qwix
    )
]
# float32 on CPU: both sides compute the same function, so they differ by rounding only (measured
# maximum |difference| 1.2e-5 on logits of magnitude ~6).
ATOL = 1e-4
TEXTS = ["The quick brown fox jumps over the lazy dog. 12 + 30 = 42."] * 20
HF_TYPES = {"llama3": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}


def tokenizer(family: str = "llama3") -> TextTokenizer:
    """A tokenizer as training makes one for a from-scratch model of `family`."""
    return train_tokenizer(TEXTS, 300, splits_letters(family))


def token_ids(vocab_size: int, batch: int = 2, length: int = 16) -> np.ndarray:
    return np.random.RandomState(0).randint(0, vocab_size, (batch, length))


def jax_logits(model: Any, ids: np.ndarray) -> np.ndarray:
    import jax.numpy as jnp

    batch, length = ids.shape
    positions = jnp.broadcast_to(jnp.arange(length)[None], (batch, length))
    mask = jnp.broadcast_to(
        jnp.tril(jnp.ones((length, length), bool))[None], (batch, length, length)
    )
    logits, _ = model(jnp.asarray(ids), positions, None, mask)
    return np.asarray(logits, dtype=np.float32)


def torch_logits(model: Any, ids: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        logits: np.ndarray = model(torch.tensor(ids)).logits.numpy()
    return logits


def hf_model(family: str, *, tie: bool = False, seed: int = 0) -> Any:
    """A random transformers model of `family` at llama3-tiny's size (2 kv heads), with weights
    of std 0.2 so the logits are far from zero and a layout mistake shows."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.AutoConfig.for_model(
        HF_TYPES[family],
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=300,
        max_position_embeddings=128,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = transformers.AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
        config, dtype=torch.float32
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                param.add_(torch.randn_like(param) * 0.1)  # not the all-ones / zeros init
    return model.eval()


def save_hf_dir(model: Any, tok: TextTokenizer, path: Path) -> Path:
    """`save_pretrained` plus tokenizer.json: a plain Hugging Face checkpoint directory."""
    model.save_pretrained(str(path))
    tok.save(path)
    return path


def jax_adapter_dirs(root: Path, base: str = "models/base/versions/1") -> tuple[Any, Path, Path]:
    """(LoRA-adapted llama3-tiny JAX model, its base model dir, its adapter-only dir); the
    adapter's B matrices are random (not qwix's zeros), as after training."""
    import jax
    from flax import nnx

    from tunix_rt.models import presets
    from tunix_rt.models.jax import model as model_lib
    from tunix_rt.models.jax.model_dir import write_model_dir
    from tunix_rt.models.lora import LoraSpec

    arch = presets.get("llama3-tiny").config
    tok = tokenizer()
    model = model_lib.create_model(arch, seed=0)
    base_dir = write_model_dir(
        root / "base", model, arch, tok, chat_template="plain", training_step=0
    )
    lora = LoraSpec(rank=4, alpha=8.0)
    adapted = model_lib.apply_lora(model, lora, seed=1)
    state = nnx.state(adapted, nnx.LoRAParam)
    keys = iter(jax.random.split(jax.random.key(2), len(jax.tree.leaves(state))))
    nnx.update(
        adapted, jax.tree.map(lambda x: 0.05 * jax.random.normal(next(keys), x.shape), state)
    )
    adapter_dir = write_model_dir(
        root / "adapter",
        adapted,
        arch,
        tok,
        chat_template="plain",
        training_step=5,
        lora=lora,
        lora_mode="adapter",
        base=base,
    )
    return adapted, base_dir, adapter_dir
