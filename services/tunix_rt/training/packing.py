"""Examples to token batches: tokenization, loss masks, packing and deterministic order.

An example becomes `bos + prompt` (masked from the loss) followed by `target + eos` (the loss
counts these). Prompt and target are tokenized separately, exactly as generation sees them (the
Sampler encodes `bos + prompt` and continues). An example longer than `max_seq_len` loses prompt
tokens from the left (just after BOS); the answer is never cut. An example whose target alone does
not fit (`len(target) + 2 > max_seq_len`) is dropped and counted in `EncodeStats.dropped`.

Batching strategies (each batch is `[B, T]` with per-token segment ids, 0 = padding):

- `packed`: several examples per row of exactly `max_seq_len`, first-fit over the epoch's shuffled
  order; `segment_ids` number the examples of a row so attention stays within each example
  (block-diagonal causal mask) and positions restart at 0 per example.
- `length_bucketed`: one example per row; windows of 16 batches are sorted by length, then the
  batches of a window are shuffled; the row width is the batch's longest example rounded up to a
  multiple of 64 (a few distinct shapes, so few compilations).
- `padded`: one example per row in shuffled order, width as above.

Order is a pure function of (seed, epoch) and the batch index: `batcher.batch(i)` is the i-th
micro-batch of an endless stream over epochs, so a resumed job asks for batch `i` and continues
exactly. Plain numpy; no framework imports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tunix_rt.models.tokenizer import TextTokenizer
from tunix_rt.training.backends.base import Example

WIDTH_MULTIPLE = 64  # row widths of unpacked strategies are rounded up to this
BUCKET_WINDOW = 16  # batches per length-sorted window of `length_bucketed`
PACK_OPEN_ROWS = 16  # rows first-fit considers at once (bounds packing cost to O(N * 16))


@dataclass(frozen=True)
class EncodedExample:
    """One example's tokens: `bos + prompt + target + eos`."""

    tokens: np.ndarray  # [n] int32
    prompt_len: int  # leading tokens (bos + prompt) the loss ignores

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


@dataclass(frozen=True)
class EncodeStats:
    """What `encode_examples` did to fit examples into `max_seq_len`."""

    examples: int  # examples kept
    truncated: int  # kept with prompt tokens cut from the left
    dropped: int  # target + bos + eos alone longer than max_seq_len


def encode_examples(
    examples: Sequence[Example], tokenizer: TextTokenizer, max_seq_len: int
) -> tuple[list[EncodedExample], EncodeStats]:
    """Tokenizes examples for training (see the module docstring for truncation)."""
    prompts = tokenizer.encode_batch([e.prompt for e in examples])
    targets = tokenizer.encode_batch([e.target for e in examples])
    bos, eos = tokenizer.bos_id(), tokenizer.eos_id()
    out: list[EncodedExample] = []
    truncated = dropped = 0
    for prompt, target in zip(prompts, targets, strict=True):
        completion = [*target, eos]
        room = max_seq_len - 1 - len(completion)  # prompt tokens that fit after BOS
        if room < 0:
            dropped += 1
            continue
        if len(prompt) > room:
            truncated += 1
            prompt = prompt[len(prompt) - room :]
        tokens = np.asarray([bos, *prompt, *completion], dtype=np.int32)
        out.append(EncodedExample(tokens, 1 + len(prompt)))
    return out, EncodeStats(len(out), truncated, dropped)


@dataclass(frozen=True)
class Batch:
    """One micro-batch; every array is `[B, T]`."""

    tokens: np.ndarray  # int32 token ids, pad id where segment_ids == 0
    segment_ids: np.ndarray  # int32: 0 = padding, 1..k = the k examples of a row
    positions: np.ndarray  # int32: position within its example, from 0
    loss_mask: np.ndarray  # bool: target and eos tokens (prompt and padding False)

    def as_model_input(self) -> dict[str, np.ndarray]:
        """The arrays under the names the backends' input functions take."""
        return {
            "input_tokens": self.tokens,
            "segment_ids": self.segment_ids,
            "positions": self.positions,
            "loss_mask": self.loss_mask,
        }

    @property
    def num_tokens(self) -> int:
        """Non-padding tokens."""
        return int(np.count_nonzero(self.segment_ids))

    @property
    def num_target_tokens(self) -> int:
        return int(np.count_nonzero(self.loss_mask))


def build_batch(
    rows: Sequence[Sequence[EncodedExample]], batch_size: int, width: int, pad_id: int
) -> Batch:
    """Lays rows of examples out as a batch; rows past `len(rows)` are all padding."""
    tokens = np.full((batch_size, width), pad_id, np.int32)
    segments = np.zeros((batch_size, width), np.int32)
    positions = np.zeros((batch_size, width), np.int32)
    loss = np.zeros((batch_size, width), bool)
    for r, row in enumerate(rows):
        start = 0
        for s, example in enumerate(row, start=1):
            n = len(example)
            end = start + n
            tokens[r, start:end] = example.tokens
            segments[r, start:end] = s
            positions[r, start:end] = np.arange(n)
            loss[r, start + example.prompt_len : end] = True
            start = end
    return Batch(tokens, segments, positions, loss)


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled example order of one epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def _round_width(longest: int, max_seq_len: int) -> int:
    return min(max_seq_len, math.ceil(longest / WIDTH_MULTIPLE) * WIDTH_MULTIPLE)


class Batcher(Protocol):
    """An endless, deterministic stream of micro-batches."""

    batch_size: int

    def batch(self, index: int) -> Batch:
        """The `index`-th micro-batch (0-based) of the stream."""
        ...

    def epoch_after(self, index: int) -> float:
        """Fractional epochs consumed once micro-batch `index` is done."""
        ...

    def batches_per_epoch(self) -> float:
        """Micro-batches in one pass over the examples."""
        ...


class PackedBatcher:
    """`packed`: first-fit rows of exactly `max_seq_len` tokens, B rows per batch."""

    def __init__(
        self,
        examples: Sequence[EncodedExample],
        batch_size: int,
        max_seq_len: int,
        seed: int,
        pad_id: int,
    ) -> None:
        if not examples:
            raise ValueError("no examples to batch")
        self.examples, self.batch_size = list(examples), batch_size
        self.max_seq_len, self.seed, self.pad_id = max_seq_len, seed, pad_id
        self._epoch_rows: list[list[list[int]]] = []  # epoch -> rows -> example indices
        self._row_starts: list[int] = [0]  # first row of each epoch in the endless stream

    def _rows_of_epoch(self, epoch: int) -> list[list[int]]:
        while len(self._epoch_rows) <= epoch:
            rows = self._pack(_epoch_order(len(self.examples), self.seed, len(self._epoch_rows)))
            self._epoch_rows.append(rows)
            self._row_starts.append(self._row_starts[-1] + len(rows))
        return self._epoch_rows[epoch]

    def _pack(self, order: np.ndarray) -> list[list[int]]:
        rows: list[list[int]] = []
        free: list[int] = []  # free tokens of the open rows (the last PACK_OPEN_ROWS rows)
        first_open = 0
        for i in order.tolist():
            n = len(self.examples[i])
            for k in range(first_open, len(rows)):
                if free[k] >= n:
                    rows[k].append(i)
                    free[k] -= n
                    break
            else:
                rows.append([i])
                free.append(self.max_seq_len - n)
                first_open = max(first_open, len(rows) - PACK_OPEN_ROWS)
        return rows

    def _row(self, r: int) -> list[int]:
        epoch = 0
        while True:
            self._rows_of_epoch(epoch)
            if r < self._row_starts[epoch + 1]:
                return self._epoch_rows[epoch][r - self._row_starts[epoch]]
            epoch += 1

    def batch(self, index: int) -> Batch:
        first = index * self.batch_size
        rows = [[self.examples[i] for i in self._row(first + k)] for k in range(self.batch_size)]
        return build_batch(rows, self.batch_size, self.max_seq_len, self.pad_id)

    def epoch_after(self, index: int) -> float:
        rows_done = (index + 1) * self.batch_size
        epoch = 0
        while True:
            self._rows_of_epoch(epoch)
            if rows_done <= self._row_starts[epoch + 1]:
                in_epoch = rows_done - self._row_starts[epoch]
                return epoch + in_epoch / len(self._epoch_rows[epoch])
            epoch += 1

    def batches_per_epoch(self) -> float:
        return len(self._rows_of_epoch(0)) / self.batch_size


class ExampleStreamBatcher:
    """`padded` and `length_bucketed`: one example per row from an endless shuffled stream."""

    def __init__(
        self,
        examples: Sequence[EncodedExample],
        batch_size: int,
        max_seq_len: int,
        seed: int,
        pad_id: int,
        bucketed: bool,
    ) -> None:
        if not examples:
            raise ValueError("no examples to batch")
        self.examples, self.batch_size = list(examples), batch_size
        self.max_seq_len, self.seed, self.pad_id = max_seq_len, seed, pad_id
        self.window = BUCKET_WINDOW if bucketed else 1
        self._orders: dict[int, np.ndarray] = {}

    def _stream(self, j: int) -> int:
        """Example index at position j of the endless stream (epoch after epoch)."""
        n = len(self.examples)
        epoch = j // n
        if epoch not in self._orders:
            self._orders[epoch] = _epoch_order(n, self.seed, epoch)
        return int(self._orders[epoch][j % n])

    def _indices(self, index: int) -> list[int]:
        if self.window == 1:
            start = index * self.batch_size
            return [self._stream(start + k) for k in range(self.batch_size)]
        window, slot = divmod(index, self.window)
        start = window * self.window * self.batch_size
        members = [self._stream(start + k) for k in range(self.window * self.batch_size)]
        by_length = sorted(range(len(members)), key=lambda k: (len(self.examples[members[k]]), k))
        batches = [
            by_length[b * self.batch_size : (b + 1) * self.batch_size] for b in range(self.window)
        ]
        shuffled = np.random.default_rng([self.seed, window, 1]).permutation(self.window)
        return [members[k] for k in batches[int(shuffled[slot])]]

    def batch(self, index: int) -> Batch:
        rows = [[self.examples[i]] for i in self._indices(index)]
        width = _round_width(max(len(r[0]) for r in rows), self.max_seq_len)
        return build_batch(rows, self.batch_size, width, self.pad_id)

    def epoch_after(self, index: int) -> float:
        return (index + 1) * self.batch_size / len(self.examples)

    def batches_per_epoch(self) -> float:
        return len(self.examples) / self.batch_size


def make_batcher(
    strategy: str,
    examples: Sequence[EncodedExample],
    batch_size: int,
    max_seq_len: int,
    seed: int,
    pad_id: int,
) -> Batcher:
    """The batcher of a strategy: `packed`, `length_bucketed` or `padded`."""
    if strategy == "packed":
        return PackedBatcher(examples, batch_size, max_seq_len, seed, pad_id)
    if strategy in ("length_bucketed", "padded"):
        bucketed = strategy == "length_bucketed"
        return ExampleStreamBatcher(examples, batch_size, max_seq_len, seed, pad_id, bucketed)
    raise ValueError(f"unknown batching strategy {strategy!r}")


def padding_fraction(batcher: Batcher, num_batches: int | None = None) -> float:
    """Fraction of padding tokens over the first epoch's batches (or `num_batches`)."""
    count = num_batches or max(1, math.ceil(batcher.batches_per_epoch()))
    real = total = 0
    for index in range(count):
        batch = batcher.batch(index)
        real += batch.num_tokens
        total += batch.tokens.size
    return 1.0 - real / total


def eval_batches(
    examples: Sequence[EncodedExample], batch_size: int, max_seq_len: int, pad_id: int
) -> list[Batch]:
    """Every example once, in order, one per row; one width for all batches (one compilation);
    the last batch is filled up with all-padding rows."""
    if not examples:
        return []
    width = _round_width(max(len(e) for e in examples), max_seq_len)
    return [
        build_batch([[e] for e in examples[i : i + batch_size]], batch_size, width, pad_id)
        for i in range(0, len(examples), batch_size)
    ]
