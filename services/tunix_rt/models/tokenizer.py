"""Tokenizers: a byte-level BPE trained on a dataset for from-scratch models, saved beside them.

`train_tokenizer` learns merges from the train split's prompt and target texts (HF `tokenizers`,
deterministic for the same texts and size). `TextTokenizer` wraps a `tokenizers.Tokenizer` with the
five methods tunix's Sampler asks for (encode, decode, bos_id, eos_id, pad_id) and saves / loads
as `tokenizer.json`. Special tokens of a trained tokenizer: <pad>=0, <bos>=1, <eos>=2, <unk>=3;
BOS must not be 0 because the Sampler prepends BOS only when `bos_id()` is truthy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from tunix_rt.models.interchange.model_config import hf_special_ids

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3 in this order
TOKENIZER_FILE = "tokenizer.json"


class TextTokenizer:
    """A `tokenizers.Tokenizer` with explicit pad/bos/eos ids (the tunix Sampler interface)."""

    def __init__(self, tokenizer: Tokenizer, pad_id: int, bos_id: int, eos_id: int) -> None:
        self.tokenizer = tokenizer
        self._pad, self._bos, self._eos = pad_id, bos_id, eos_id

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> TextTokenizer:
        """Wraps a tokenizer that has our special tokens (as `train_tokenizer` makes)."""
        ids = [tokenizer.token_to_id(t) for t in (PAD, BOS, EOS)]
        if any(i is None for i in ids):
            raise ValueError(f"tokenizer lacks one of the special tokens {PAD}, {BOS}, {EOS}")
        pad, bos, eos = (int(i) for i in ids)
        return cls(tokenizer, pad, bos, eos)

    @classmethod
    def load(cls, directory: Path, special_ids: dict[str, int] | None = None) -> TextTokenizer:
        """Reads `directory/tokenizer.json`. `special_ids` (pad/bos/eos, e.g. from a Hugging Face
        config.json) override the lookup of our <pad>/<bos>/<eos> tokens."""
        tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        if special_ids:
            return cls(tokenizer, special_ids["pad"], special_ids["bos"], special_ids["eos"])
        return cls.from_tokenizer(tokenizer)

    def save(self, directory: Path) -> Path:
        """Writes `directory/tokenizer.json` (pretty-printed, so the bytes are deterministic)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / TOKENIZER_FILE
        self.tokenizer.save(str(path), pretty=True)
        return path

    def encode(self, text: str, **_: Any) -> list[int]:
        """Token ids of `text`, without special tokens."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` of many texts at once (the Rust side runs them in parallel)."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.ids) for e in encodings]

    def decode(self, ids: Iterable[int], **_: Any) -> str:
        """Text of `ids`, special tokens dropped."""
        return str(self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True))

    def bos_id(self) -> int:
        return self._bos

    def eos_id(self) -> int:
        return self._eos

    def pad_id(self) -> int:
        return self._pad

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    def describe(self) -> dict[str, Any]:
        """What config.json records about the tokenizer."""
        return {
            "file": TOKENIZER_FILE,
            "type": "byte_level_bpe",
            "vocab_size": self.vocab_size,
            "pad_id": self._pad,
            "bos_id": self._bos,
            "eos_id": self._eos,
        }


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> TextTokenizer:
    """A byte-level BPE with at most `vocab_size` tokens learned from `texts`.

    Byte-level means every string is encodable (no <unk> in practice); the 256 byte symbols and
    the 4 special tokens are always present, so `vocab_size` must be at least 260. Digits are
    never merged.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} < 260 (256 bytes + 4 special tokens)")
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    # Digits stay single tokens (as in Llama's and Qwen's tokenizers): a merge such as "74" would
    # hide the digits that column arithmetic works on.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return TextTokenizer.from_tokenizer(tokenizer)


def special_ids_from_config(config: dict[str, Any]) -> dict[str, int] | None:
    """pad/bos/eos ids a Hugging Face config.json names, or None when it names none (ours)."""
    return None if "tunix_rt" in config else hf_special_ids(config)
