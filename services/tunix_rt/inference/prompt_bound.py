"""The cheapest proof that a prompt cannot fit a model's context: its length in characters.

Tokenizing a 1,000,000-char prompt takes a second and some hundred megabytes (issue 10, finding
6), only to learn that it is far over a 512-token context. But if no token of a tokenizer can
stand for more than `c` characters of input, a text of `n` characters is at least `n / c` tokens,
so a text of more than `(context_length - 1) * c` characters can never fit (the prompt must leave
room for one generated token) and is refused before it is tokenized. The bound must never refuse
a prompt that would fit, so `chars_per_token` returns a `c` only where it can prove one, from the
tokenizer's parts (computed once, when a model is loaded):

- the model is BPE, where every token is a vocabulary entry whose string is at least as long as
  the input it covers: a byte-level entry is one char per byte (and a char is at least one
  byte); a byte-fallback entry `<0x41>` covers one byte; an unknown char is one <unk> each,
  unless unknowns are fused (then a run of any length is one token, so there is no bound);
- every added token counts with its content's length, and none strips the whitespace beside it
  (an `lstrip` token swallows any run of spaces);
- the normalizer cannot shrink the text by more than a known factor: NFD, NFKD, Lowercase,
  Prepend and ByteLevel never shrink it; NFC composes at most `NFC_SHRINK` chars into one and
  NFKC at most `NFKC_SHRINK` (the longest canonical and compatibility decompositions of one
  code point, as `unicodedata` gives them); a Replace of a string by a shorter one shrinks by
  their ratio; anything that can delete characters (Strip, StripAccents, BertNormalizer, a regex
  Replace, a precompiled charsmap) leaves no bound;
- the pre-tokenizer drops nothing (ByteLevel, Digits, Metaspace, UnicodeScripts, Split and
  Punctuation unless their behaviour is `removed`); Whitespace and friends drop the spaces;
- no truncation is configured (a truncating tokenizer serves a long prompt cut short, as before).

A tokenizer without a provable bound (None) is tokenized in full, as before this check existed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tokenizers import Tokenizer

# The most code points one code point decomposes into: canonically (U+1F82 → 4) and with
# compatibility mappings (U+FDFA → 18). NFC(x) decomposes back to NFD(x), which is at least as
# long as x and at most NFC_SHRINK times as long as NFC(x); likewise NFKC. Checked against
# `unicodedata` by tests/inference/test_prompt_bound.py.
NFC_SHRINK = 4
NFKC_SHRINK = 18
# Normalizers that never make a text shorter.
_NON_SHRINKING = {"NFD", "NFKD", "Lowercase", "Prepend", "ByteLevel"}
# Pre-tokenizers that keep every character (Split and Punctuation only without `removed`).
_KEEPING = {"ByteLevel", "Digits", "Metaspace", "UnicodeScripts"}
_WITH_BEHAVIOUR = {"Split", "Punctuation"}


def chars_per_token(tokenizer: Tokenizer) -> int | None:
    """The most characters of input one token of `tokenizer` can stand for, or None when no
    such bound can be proved (see the module docstring)."""
    if tokenizer.truncation is not None or not _model_bounded(tokenizer.model):
        return None
    added = tokenizer.get_added_tokens_decoder().values()
    if any(token.lstrip or token.rstrip for token in added):
        return None
    shrink = _normalizer_shrink(_state(tokenizer.normalizer))
    if shrink is None or not _keeps_everything(_state(tokenizer.pre_tokenizer)):
        return None
    longest = max((len(entry) for entry in tokenizer.get_vocab(with_added_tokens=True)), default=1)
    return shrink * max(1, longest)


def prompt_chars_limit(chars_per_token: int | None, context_length: int) -> int | None:
    """The longest text that could still fit `context_length` with one token to spare, or
    None when there is no bound."""
    if chars_per_token is None:
        return None
    return max(0, context_length - 1) * chars_per_token


def _state(component: Any) -> dict[str, Any] | None:
    """A normalizer's or pre-tokenizer's JSON (what tokenizer.json holds), None when absent."""
    if component is None:
        return None
    state: dict[str, Any] = json.loads(component.__getstate__())
    return state


def _model_bounded(model: Any) -> bool:
    # Other models can emit one token for input of any length: WordPiece's [UNK] for a whole
    # word, WordLevel's word tokens, Unigram's fused unknowns.
    if type(model).__name__ != "BPE":
        return False
    return bool(model.byte_fallback) or not bool(model.fuse_unk)


def _normalizer_shrink(state: dict[str, Any] | None) -> int | None:
    """By how much the normalizer can shorten a text at most (1 = never), None if unbounded."""
    if state is None:
        return 1
    kind = state.get("type")
    if kind == "Sequence":
        total = 1
        for part in state.get("normalizers", []):
            shrink = _normalizer_shrink(part)
            if shrink is None:
                return None
            total *= shrink
        return total
    if kind in _NON_SHRINKING:
        return 1
    if kind == "NFC":
        return NFC_SHRINK
    if kind == "NFKC":
        return NFKC_SHRINK
    if kind == "Replace":
        pattern = state.get("pattern", {}).get("String")
        content = state.get("content", "")
        if not isinstance(pattern, str) or not pattern or not content:
            return None  # a regex can match runs of any length; an empty content deletes
        return max(1, math.ceil(len(pattern) / len(content)))
    return None


def _keeps_everything(state: dict[str, Any] | None) -> bool:
    """Whether the pre-tokenizer passes every character on to the model."""
    if state is None:
        return True
    kind = state.get("type")
    if kind == "Sequence":
        return all(_keeps_everything(part) for part in state.get("pretokenizers", []))
    if kind in _WITH_BEHAVIOUR:
        return str(state.get("behavior", "")).lower() != "removed"
    return kind in _KEEPING
