"""The byte-level BPE tokenizer trained for from-scratch models."""

# The unicode signs are deliberate: the datasets write the multiplication and division signs.
# ruff: noqa: RUF001

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunix_rt.models.tokenizer import (
    TextTokenizer,
    special_ids_from_config,
    train_tokenizer,
)

TEXTS = [
    f"Question: What is {a} + {b}?\nReasoning:\n{a} + {b} = {a + b}\nAnswer: {a + b}"
    for a in range(20, 60)
    for b in range(3, 9)
] + ["Convert 235 °C to °F.", "8 × $14 = $112", "219 ÷ 3 = 73", "Reverse the string: xqjco"]


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return train_tokenizer(TEXTS, 320)


def test_special_tokens_have_fixed_ids(tokenizer: TextTokenizer) -> None:
    assert (tokenizer.pad_id(), tokenizer.bos_id(), tokenizer.eos_id()) == (0, 1, 2)
    assert tokenizer.tokenizer.token_to_id("<unk>") == 3
    assert tokenizer.vocab_size <= 320


@pytest.mark.parametrize(
    "text",
    [
        "What is 17 + 35?",
        "455 °F",
        "8 × $14 = $112\nAnswer: $112",
        "ünïcödé ✓ 漢字",
        "  two  spaces",
    ],
)
def test_round_trip(tokenizer: TextTokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert tokenizer.bos_id() not in ids  # no special tokens added
    assert tokenizer.decode(ids) == text


def test_decode_drops_special_tokens(tokenizer: TextTokenizer) -> None:
    ids = [tokenizer.bos_id(), *tokenizer.encode("Answer: 52"), tokenizer.eos_id()]
    assert tokenizer.decode(ids) == "Answer: 52"


def test_digits_are_single_tokens(tokenizer: TextTokenizer) -> None:
    pieces = [tokenizer.tokenizer.id_to_token(i) for i in tokenizer.encode("12345")]
    assert pieces == ["1", "2", "3", "4", "5"]


def test_training_is_deterministic(tmp_path: Path) -> None:
    first = train_tokenizer(TEXTS, 320).save(tmp_path / "a")
    second = train_tokenizer(TEXTS, 320).save(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_save_and_load(tokenizer: TextTokenizer, tmp_path: Path) -> None:
    tokenizer.save(tmp_path)
    loaded = TextTokenizer.load(tmp_path)
    assert loaded.encode("What is 21 + 5?") == tokenizer.encode("What is 21 + 5?")
    assert loaded.describe() == tokenizer.describe()


def test_too_small_a_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="260"):
        train_tokenizer(TEXTS, 100)


def test_the_tunix_sampler_accepts_it(tokenizer: TextTokenizer) -> None:
    from tunix.generate.tokenizer_adapter import TokenizerAdapter

    adapter = TokenizerAdapter(tokenizer)
    assert adapter.bos_id() == 1  # non-zero: the Sampler prepends BOS only when it is truthy
    assert adapter.decode(adapter.encode("Answer: 7")) == "Answer: 7"


def test_hugging_face_config_ids() -> None:
    assert special_ids_from_config({"tunix_rt": {}, "bos_token_id": 1}) is None
    hf = json.loads('{"bos_token_id": 128000, "eos_token_id": [128001, 128009]}')
    assert special_ids_from_config(hf) == {"bos": 128000, "eos": 128001, "pad": 128001}


def _pieces(tokenizer: TextTokenizer, text: str) -> list[str]:
    return [str(tokenizer.tokenizer.id_to_token(i)) for i in tokenizer.encode(text)]


def test_letters_of_rare_words_stay_single_tokens() -> None:
    """Frequent words merge; a random string (found in too few texts) is one token per letter,
    whatever merges the frequent words taught, so reversing or counting letters sees each."""
    texts = [f"Reverse the string: {w}\nJoined: {w[::-1]}" for w in ("xqjco", "bidu", "tkoi")] * 2
    texts += [f"Question: What is the {n} pen?" for n in range(40)]
    tokenizer = train_tokenizer(texts, 400)
    assert "ĠQuestion" in _pieces(tokenizer, " Question") or "Question" in _pieces(
        tokenizer, "Question"
    )
    letters = [tokenizer.decode([i]).strip() for i in tokenizer.encode(" qjxco")]
    assert letters[-5:] == ["q", "j", "x", "c", "o"]
    # A frequent word inside a longer letter run is not cut out of it.
    assert _pieces(tokenizer, " pens")[-3:] == ["e", "n", "s"]
    for text in ("Reverse the string: qjxco", "What is the 7 pens? ok", "ÿ ünïcode 12"):
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_the_qwen2_family_keeps_gpt2_pieces() -> None:
    """transformers loads a qwen2 model's tokenizer with Qwen's own pre-tokenizer, so a qwen2
    from-scratch tokenizer keeps the split that pre-tokenizer reproduces."""
    from tunix_rt.models.tokenizer import splits_letters

    assert splits_letters("llama3") and splits_letters("qwen3") and not splits_letters("qwen2")
    tokenizer = train_tokenizer(["Reverse the string: xqjco"] * 50, 300, split_letters=False)
    assert _pieces(tokenizer, "Reverse the string: xqjco")[-1] == "Ġxqjco"
