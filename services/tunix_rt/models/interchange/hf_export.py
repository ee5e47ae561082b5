"""A standalone Hugging Face directory from a model directory: what
`transformers.AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load with
no tunix-rt code.

    config.json               HF keys (the `tunix_rt` section is kept, minus the adapter: the
                              weights here are merged); transformers keeps unknown keys as is
    model.safetensors         float32, HF names, LoRA merged in
    tokenizer.json            the `tokenizers` file, with a post-processor that puts BOS first
                              (the engines and training feed the model BOS + the prompt's tokens)
    tokenizer_config.json     PreTrainedTokenizerFast with its bos/eos/pad (and unk) tokens,
                              add_bos_token, and the model's chat template as Jinja (see
                              chat_template.py): `apply_chat_template([{"role": "user", ...}],
                              add_generation_prompt=True)` gives exactly the ids tunix-rt feeds
    special_tokens_map.json
    generation_config.json    bos/eos/pad ids
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunix_rt.models.interchange import safetensors_io
from tunix_rt.models.interchange.chat_template import bos_post_processor, jinja_chat_template
from tunix_rt.models.interchange.merge import load_merged
from tunix_rt.models.interchange.model_config import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    hf_config,
    hf_special_ids,
    read_config,
)

TOKENIZER_FILE = "tokenizer.json"
UNK = "<unk>"


def special_ids(config: dict[str, Any]) -> dict[str, int]:
    """bos/eos/pad ids: our `tunix_rt.tokenizer` description, else the HF keys (pad defaults to
    eos, as many Llama checkpoints leave it unset)."""
    ours = config.get("tunix_rt", {}).get("tokenizer", {})
    if all(f"{k}_id" in ours for k in ("bos", "eos", "pad")):
        return {k: int(ours[f"{k}_id"]) for k in ("bos", "eos", "pad")}
    ids = hf_special_ids(config)
    if ids is None:
        raise ValueError("config.json names no bos_token_id / eos_token_id")
    return ids


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_tokenizer_files(
    out_dir: Path, tokenizer_json: Path, ids: dict[str, int], max_length: int, chat_template: str
) -> None:
    """tokenizer.json plus the files that make AutoTokenizer build a PreTrainedTokenizerFast
    that knows its special tokens, adds BOS and renders the rendering template `chat_template`."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokens: dict[str, str] = {}
    for key, token_id in ids.items():
        token = tokenizer.id_to_token(token_id)
        if token is None:
            raise ValueError(f"{key}_token_id {token_id} is not in tokenizer.json")
        tokens[f"{key}_token"] = token
    if tokenizer.token_to_id(UNK) is not None:
        tokens["unk_token"] = UNK
    # Only the post-processor changes: TextTokenizer.encode (training, the engines, a re-import)
    # passes add_special_tokens=False and never runs it.
    tokenizer.post_processor = bos_post_processor(tokens["bos_token"], ids["bos"])
    tokenizer.save(str(out_dir / TOKENIZER_FILE), pretty=True)
    _write_json(
        out_dir / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": max_length,
            "clean_up_tokenization_spaces": False,
            # Explicit, so transformers 5 builds the same BOS post-processor whatever
            # tokenizer.json holds.
            "add_bos_token": True,
            "add_eos_token": False,
            "chat_template": jinja_chat_template(chat_template),
            **tokens,
        },
    )
    _write_json(out_dir / "special_tokens_map.json", tokens)


def export_hf(model_dir: Path, out_dir: Path, base_dir: Path | None = None) -> Path:
    """Writes the Hugging Face directory of `model_dir` to `out_dir`; an adapter directory is
    merged into `base_dir`'s weights. Returns `out_dir`."""
    config = read_config(model_dir)
    arch = config.architecture
    tokenizer_dir = model_dir
    if not (model_dir / TOKENIZER_FILE).exists() and base_dir is not None:
        tokenizer_dir = base_dir
    ids = special_ids(config.raw)
    tensors = load_merged(model_dir, base_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    safetensors_io.save(out_dir / WEIGHTS_FILE, tensors)
    ours = {k: v for k, v in config.raw.get("tunix_rt", {}).items() if k != "adapter"}
    hf = hf_config(arch, bos_id=ids["bos"], eos_id=ids["eos"], pad_id=ids["pad"])
    _write_json(out_dir / CONFIG_FILE, {**hf, **({"tunix_rt": ours} if ours else {})})
    _write_json(
        out_dir / "generation_config.json",
        {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"]},
    )
    write_tokenizer_files(
        out_dir, tokenizer_dir / TOKENIZER_FILE, ids, arch.context_length, config.chat_template
    )
    return out_dir
