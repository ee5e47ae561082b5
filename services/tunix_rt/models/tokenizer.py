"""Tokenizers: a byte-level BPE trained on a dataset for from-scratch models, saved beside them.

`train_tokenizer` learns merges from the train split's prompt and target texts (HF `tokenizers`,
deterministic for the same texts and size); digits and the letters of rare words stay single
tokens. `TextTokenizer` wraps a `tokenizers.Tokenizer` with the
five methods tunix's Sampler asks for (encode, decode, bos_id, eos_id, pad_id) and saves / loads
as `tokenizer.json`. Special tokens of a trained tokenizer: <pad>=0, <bos>=1, <eos>=2, <unk>=3;
BOS must not be 0 because the Sampler prepends BOS only when `bos_id()` is truthy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

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


def splits_letters(family: str) -> bool:
    """Whether a from-scratch model of `family` gets a tokenizer that splits rare words into
    letters. Not qwen2: transformers 5 loads a qwen2 model's tokenizer as Qwen2Tokenizer, which
    replaces any pre-tokenizer with Qwen's own regex, so an exported qwen2 model would tokenize
    differently from the one trained here; that regex reproduces only the GPT-2-style split."""
    return family != "qwen2"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, split_letters: bool = True
) -> TextTokenizer:
    """A byte-level BPE with at most `vocab_size` tokens learned from `texts`.

    Byte-level means every string is encodable (no <unk> in practice); the 256 byte symbols and
    the 4 special tokens are always present, so `vocab_size` must be at least 260. Digits are
    never merged. With `split_letters`, letters merge only inside frequent words
    (`frequent_words`): any other run of letters, such as the random strings of the reasoning
    data, is one token per letter; without, pieces are split as GPT-2 does.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} < 260 (256 bytes + 4 special tokens)")
    texts = list(texts)
    # Digits stay single tokens (as in Llama's and Qwen's tokenizers): a merge such as "74"
    # would hide the digits that column arithmetic works on.
    digits = pre_tokenizers.Digits(individual_digits=True)
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    if split_letters:
        # Pieces: a frequent word (with its leading space) or a single letter; what lies between
        # (spaces, punctuation, digits) stays a piece of its own. BPE merges only inside a piece,
        # so "udib" can only ever be u/d/i/b: a model that reverses, sorts or counts letters sees
        # each one (a merge such as "ib" would hide them).
        words = pre_tokenizers.Split(Regex(_piece_pattern(frequent_words(texts))), "isolated")
        pieces = [words, digits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    else:
        pieces = [digits, pre_tokenizers.ByteLevel(add_prefix_space=False)]
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(pieces)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return TextTokenizer.from_tokenizer(tokenizer)


_WORD = re.compile(r"[A-Za-z]+")


def frequent_words(texts: Sequence[str]) -> list[str]:
    """Words (letter runs of 2+ letters) found in at least max(3, 0.1 %) of `texts`, longest
    first. Counting texts rather than occurrences keeps out a random string that a trace repeats
    (a prompt's "udib" comes back in its steps and answer), however often it repeats there."""
    documents: Counter[str] = Counter()
    for text in texts:
        documents.update({w for w in _WORD.findall(text) if len(w) > 1})
    floor = max(3, len(texts) // 1000)
    return sorted((w for w, n in documents.items() if n >= floor), key=lambda w: (-len(w), w))


def _piece_pattern(words: Sequence[str]) -> str:
    """A frequent word not inside a longer letter run, or else one letter; either may take the
    space before it (the byte-level convention: "Ġthe")."""
    letter = r" ?[A-Za-z]"
    if not words:
        return letter
    alternation = "|".join(re.escape(w) for w in words)
    return rf" ?(?<![A-Za-z])(?:{alternation})(?![A-Za-z])|{letter}"


def special_ids_from_config(config: dict[str, Any]) -> dict[str, int] | None:
    """pad/bos/eos ids a Hugging Face config.json names, or None when it names none (ours)."""
    return None if "tunix_rt" in config else hf_special_ids(config)
