"""A model directory of our layout from a Hugging Face checkpoint directory (or one of ours):
validated, shards merged into one float32 model.safetensors, config.json with the `tunix_rt`
section, tokenizer.json copied.

    prepare_import(Path("hf-llama"), Path("out"), chat_template="plain")
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.models.interchange import safetensors_io
from tunix_rt.models.interchange.chat_template import template_name
from tunix_rt.models.interchange.hf_export import TOKENIZER_FILE, special_ids
from tunix_rt.models.interchange.merge import base_weights
from tunix_rt.models.interchange.model_config import WEIGHTS_FILE, write_config
from tunix_rt.models.interchange.validate import validate_model_dir


def _tokenizer_description(tokenizer_json: Path, ids: dict[str, int]) -> dict[str, Any]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    return {
        "file": TOKENIZER_FILE,
        "type": "huggingface",
        "vocab_size": int(tokenizer.get_vocab_size(with_added_tokens=True)),
        "pad_id": ids["pad"],
        "bos_id": ids["bos"],
        "eos_id": ids["eos"],
    }


def _check_special_ids(config: dict[str, Any], tokenizer_json: Path, ids: dict[str, int]) -> None:
    """Each special id names a token of tokenizer.json (the validator checks this too, from the
    JSON; this asks the tokenizer itself, which knows every layout)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    ours = isinstance(config.get("tunix_rt"), dict) and all(
        f"{k}_id" in config["tunix_rt"].get("tokenizer", {}) for k in ids
    )
    for key, token_id in ids.items():
        if tokenizer.id_to_token(token_id) is None:
            field = f"tunix_rt.tokenizer.{key}_id" if ours else f"{key}_token_id"
            raise InvalidArgument.field(
                f"config.json.{field}", f"token id {token_id} is not in {TOKENIZER_FILE}"
            )


def _exported_template(hf_dir: Path) -> str | None:
    """The rendering template a tunix-rt export wrote into `hf_dir`'s tokenizer_config.json
    (None for any other or none: it cannot be told from the Jinja of another project)."""
    path = hf_dir / "tokenizer_config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return template_name(config.get("chat_template")) if isinstance(config, dict) else None


def prepare_import(
    hf_dir: Path,
    out_dir: Path,
    chat_template: str | None = "plain",
    backend: str = "hf",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes the model directory of `hf_dir` to `out_dir` (InvalidArgument naming what is wrong
    with `hf_dir`; adapters are imported merged, via export, not here). `chat_template` None keeps
    the one a directory of ours names, else the one a tunix-rt export wrote, else plain. Returns
    `out_dir`."""
    summary = validate_model_dir(hf_dir)
    if summary.kind != "full":
        raise InvalidArgument.field(
            "path", "holds a LoRA adapter only; export it merged with its base, then import that"
        )
    try:
        ids = special_ids(summary.config)
    except ValueError as error:
        raise InvalidArgument.field("config.json", str(error)) from None
    _check_special_ids(summary.config, hf_dir / TOKENIZER_FILE, ids)
    ours = summary.config.get("tunix_rt", {})
    out_dir.mkdir(parents=True, exist_ok=True)
    safetensors_io.save(out_dir / WEIGHTS_FILE, base_weights(hf_dir))
    shutil.copyfile(hf_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    write_config(
        out_dir,
        summary.architecture,
        tokenizer_ids=ids,
        tokenizer_description=ours.get("tokenizer")
        or _tokenizer_description(hf_dir / TOKENIZER_FILE, ids),
        backend=backend,
        chat_template=chat_template
        or ours.get("chat_template")
        or _exported_template(hf_dir)
        or "plain",
        training_step=int(ours.get("training_step", 0)),
        extra=extra,
    )
    return out_dir
