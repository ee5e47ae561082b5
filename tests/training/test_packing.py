"""Tokenized batches: loss masks, packing with per-example attention, deterministic order."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from tunix_rt.common.rendering import render_prompt, render_target
from tunix_rt.models.tokenizer import TextTokenizer, train_tokenizer
from tunix_rt.training import packing
from tunix_rt.training.backends.base import Example

MINI = Path(__file__).resolve().parents[2] / "datasets" / "reasoning-mini-v1.jsonl"


def _example(row: dict[str, object]) -> Example:
    steps = [str(s["content"]) for s in row["steps"]]  # type: ignore[attr-defined]
    answer = str(row["final_answer"])
    return Example(
        "traces/t", render_prompt(str(row["prompt"])), render_target(steps, answer), answer
    )


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return [_example(json.loads(line)) for line in MINI.read_text().splitlines()]


@pytest.fixture(scope="module")
def tokenizer(examples: list[Example]) -> TextTokenizer:
    return train_tokenizer([t for e in examples for t in (e.prompt, e.target)], 512)


@pytest.fixture(scope="module")
def encoded(examples: list[Example], tokenizer: TextTokenizer) -> list[packing.EncodedExample]:
    out, stats = packing.encode_examples(examples, tokenizer, 256)
    assert stats == packing.EncodeStats(len(examples), 0, 0)
    return out


def test_an_example_is_bos_prompt_target_eos(
    examples: list[Example], tokenizer: TextTokenizer, encoded: list[packing.EncodedExample]
) -> None:
    first, tokens = examples[0], encoded[0].tokens.tolist()
    prompt = tokenizer.encode(first.prompt)
    assert tokens == [1, *prompt, *tokenizer.encode(first.target), 2]
    assert encoded[0].prompt_len == 1 + len(prompt)


def test_the_loss_counts_target_and_eos_only(
    examples: list[Example], tokenizer: TextTokenizer, encoded: list[packing.EncodedExample]
) -> None:
    batch = packing.build_batch([[encoded[0]]], 2, 256, tokenizer.pad_id())
    n, prompt_len = len(encoded[0]), encoded[0].prompt_len
    assert not batch.loss_mask[0, :prompt_len].any()  # BOS and prompt
    assert batch.loss_mask[0, prompt_len:n].all()  # target and EOS
    assert not batch.loss_mask[0, n:].any() and not batch.loss_mask[1].any()  # padding
    assert batch.tokens[0, n - 1] == tokenizer.eos_id()
    assert tokenizer.decode(batch.tokens[0][batch.loss_mask[0]]) == examples[0].target


def test_packed_rows_keep_examples_apart(
    tokenizer: TextTokenizer, encoded: list[packing.EncodedExample]
) -> None:
    from tunix_rt.training.backends.jax.loss import attention_mask

    batcher = packing.make_batcher("packed", encoded, 4, 256, 0, tokenizer.pad_id())
    batch = batcher.batch(0)
    assert batch.tokens.shape == (4, 256)
    row = 0
    segments = batch.segment_ids[row]
    assert segments.max() >= 2  # several examples share the row
    mask = np.asarray(attention_mask(jnp.asarray(batch.segment_ids)))  # [B, T, T]
    for s in range(1, segments.max() + 1):
        where = np.flatnonzero(segments == s)
        # positions restart at 0 and count up within each example
        assert batch.positions[row, where].tolist() == list(range(len(where)))
        assert batch.tokens[row, where[0]] == tokenizer.bos_id()
        i = where[-1]  # the example's last token sees its own tokens only, causally
        assert mask[row, i].tolist() == [(j in where) and j <= i for j in range(256)]
    pad = np.flatnonzero(segments == 0)
    assert not mask[row][:, pad].any()  # nobody attends to padding


def test_a_packed_epoch_holds_every_example_once(
    tokenizer: TextTokenizer, encoded: list[packing.EncodedExample]
) -> None:
    batcher = packing.PackedBatcher(encoded, 4, 256, 7, tokenizer.pad_id())
    rows = batcher._rows_of_epoch(0)
    assert sorted(i for row in rows for i in row) == list(range(len(encoded)))
    assert all(sum(len(encoded[i]) for i in row) <= 256 for row in rows)
    assert batcher.batches_per_epoch() == len(rows) / 4


@pytest.mark.parametrize("strategy", ["packed", "length_bucketed", "padded"])
def test_order_is_a_function_of_seed_and_index(
    strategy: str, tokenizer: TextTokenizer, encoded: list[packing.EncodedExample]
) -> None:
    def make(seed: int) -> packing.Batcher:
        return packing.make_batcher(strategy, encoded, 4, 256, seed, tokenizer.pad_id())

    sequential = make(0)
    batches = [sequential.batch(i) for i in range(80)]  # several epochs
    resumed = make(0)  # a fresh process asking for the data position directly
    for index in (79, 37, 0, 38):
        assert np.array_equal(resumed.batch(index).tokens, batches[index].tokens)
    other = make(1)
    assert not all(np.array_equal(other.batch(i).tokens, batches[i].tokens) for i in range(5))
    assert 0 < sequential.epoch_after(0) < 1 < sequential.epoch_after(79)


@pytest.mark.parametrize("strategy", ["length_bucketed", "padded"])
def test_unpacked_strategies_cover_an_epoch(
    strategy: str, tokenizer: TextTokenizer, encoded: list[packing.EncodedExample]
) -> None:
    batcher = packing.make_batcher(strategy, encoded, 8, 256, 3, tokenizer.pad_id())
    seen: Counter[int] = Counter()
    for index in range(len(encoded) // 8):  # 120 examples: exactly 15 batches per epoch
        batch = batcher.batch(index)
        assert batch.tokens.shape[1] % packing.WIDTH_MULTIPLE == 0
        assert (batch.segment_ids.max(axis=1) == 1).all()  # one example per row
        for row in batch.tokens:
            seen[int(np.flatnonzero(row == 2)[-1])] += 1  # EOS position stands in for identity
    assert sum(seen.values()) == len(encoded)


def test_packing_pads_least(
    tokenizer: TextTokenizer, encoded: list[packing.EncodedExample]
) -> None:
    fractions = {
        s: packing.padding_fraction(packing.make_batcher(s, encoded, 8, 256, 0, 0))
        for s in ("packed", "length_bucketed", "padded")
    }
    assert fractions["packed"] < 0.15
    assert fractions["packed"] < fractions["length_bucketed"] <= fractions["padded"]


def test_long_prompts_lose_their_start_and_long_answers_are_dropped(
    tokenizer: TextTokenizer,
) -> None:
    long_prompt = Example("t", "word " * 100 + "What is 2 + 2?", "2 + 2 = 4\nAnswer: 4", "4")
    long_answer = Example("t", "Q", "step " * 100 + "Answer: 4", "4")
    out, stats = packing.encode_examples([long_prompt, long_answer], tokenizer, 48)
    assert stats == packing.EncodeStats(examples=1, truncated=1, dropped=1)
    tokens = out[0].tokens.tolist()
    assert len(tokens) == 48 and tokens[0] == tokenizer.bos_id()
    assert tokenizer.decode(tokens).endswith("What is 2 + 2?2 + 2 = 4\nAnswer: 4")


def test_eval_batches_hold_every_example_in_order(
    tokenizer: TextTokenizer, encoded: list[packing.EncodedExample]
) -> None:
    batches = packing.eval_batches(encoded[:10], 4, 256, tokenizer.pad_id())
    assert [b.tokens.shape for b in batches] == [(4, batches[0].tokens.shape[1])] * 3
    assert sum(b.num_target_tokens for b in batches) == sum(
        len(e) - e.prompt_len for e in encoded[:10]
    )
    assert not batches[-1].segment_ids[2:].any()  # the last batch is filled with padding rows
