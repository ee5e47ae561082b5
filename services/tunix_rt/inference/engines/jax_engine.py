"""The JAX engine: a tunix model with a KV cache, compiled once per shape bucket.

The cache (`{layer_i: {k, v}}`, [batch, kv_heads, slots, head_dim]: the layout `jax_decode`'s own
attention reads in place; prefill runs the tunix model and scatters its keys/values in) is used as
a ring buffer with one write slot `w` shared by all rows: each decode step writes every row's new
key/value at slot `w`, and a per-row `valid` mask [batch, slots] says which slots belong to the
row. Rotary positions are applied before keys are cached, so slot order does not matter and each
row keeps its own position counter. A request joins a running batch (continuous batching) by a
prefill of its prompt alone (left padded to a power of two) whose keys/values are scattered into
its row just behind `w`. The cache grows (doubling its slots, unrolling the ring) when a row
would wrap onto its own oldest slot, and is dropped when the batch drains.

Shapes are bucketed to powers of two (batch rows x slots for decode, admitted rows x prompt
length for prefill), so `jax.jit` compiles each bucket once; the cache and mask are donated so
the step updates them in place. The prefill pads its keys/values to one staged shape, so the
scatter that copies them into the cache depends on the cache's shape only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tunix_rt.inference.engines import jax_cache, jax_decode
from tunix_rt.inference.engines.batching import BatchedEngine
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import TextTokenizer

# Slots of a fresh cache: enough for a short prompt and 64 new tokens without a resize. Not more:
# each decode step reads every slot of every row (batch 16, llama3-2.5m: the two attention dots
# are ~0.4 of its ~2.3 ms on CPU at 128 slots).
MIN_SLOTS = 128
MIN_PROMPT = 8
MAX_FUSED_STEPS = 16  # the scheduler's fused decode length (batching.MAX_FUSED_STEPS)
# Prompts are prefilled in groups of at most this many rows, padded to a power of two: how many
# requests arrive together varies from step to step, and each distinct count would be another
# compilation.
PREFILL_ROWS = 4
# A prefill hands its keys/values to the scatter padded to PREFILL_ROWS rows and at least this
# many slots (a fresh ring's: every prompt that fits one), so the scatter compiles once per
# cache shape instead of once per cache shape x rows x prompt bucket: 48 variants, ~10 s of a
# llama3-1.3m warmup on 2 CPU cores, before (issue 13). At 64 slots, prompts of 65-128 tokens
# still compiled a second scatter per cache shape while serving. The padding costs a copy of
# at most 4 x 128 slots per layer, a fraction of one decode step's read of the cache.
STAGED_SLOTS = MIN_SLOTS
DEFAULT_CAPACITY = 32


def next_power_of_two(n: int, floor: int = 1) -> int:
    return max(floor, 1 << max(0, n - 1).bit_length())


def first_argmax(logits: jax.Array) -> jax.Array:
    """`jnp.argmax(logits, -1)` (the first index of the maximum) as two plain reductions:
    XLA on CPU runs argmax's variadic (value, index) reduce several times slower, a measurable
    part of a small model's decode step."""
    top = jnp.max(logits, axis=-1, keepdims=True)
    index = jnp.arange(logits.shape[-1], dtype=jnp.int32)
    return jnp.min(jnp.where(logits == top, index, logits.shape[-1]), axis=-1)


class JaxCore:
    """The KV-cached batch of a tunix model (see the module docstring)."""

    def __init__(
        self, model: nnx.Module, arch: ArchitectureConfig, dtype: Any, capacity: int
    ) -> None:
        self.capacity, self.arch, self.dtype = capacity, arch, dtype
        if jax.tree.leaves(nnx.state(model, nnx.LoRAParam)):
            # jax_decode calls the modules one by one, past qwix's interception of the model.
            raise ValueError("merge LoRA adapters into the weights before serving the model")
        graphdef, state = nnx.split(model)
        state = jax.tree.map(
            lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, state
        )
        # Flattening an nnx.State on every call costs milliseconds; a tuple of arrays does not.
        leaves, treedef = jax.tree.flatten(state)
        self._state = tuple(leaves)
        self._max_slots = next_power_of_two(arch.context_length)
        self._cache: dict[str, dict[str, jax.Array]] | None = None
        self._valid: jax.Array | None = None  # [B, S] bool
        self._write = 0  # the shared write slot w
        self._positions = np.zeros(capacity, np.int32)  # next position of each row
        self._spans = np.zeros(capacity, np.int64)  # slots each row occupies
        self._live: set[int] = set()
        self._later: list[Callable[[], None]] = []  # deferred warm-up (idle_step)
        self._staged_zeros: Any = None  # a staged prompt of zeros, for warming the scatter

        def forward(leaves: Any, tokens: Any, positions: Any, cache: Any, mask: Any) -> Any:
            model = nnx.merge(graphdef, jax.tree.unflatten(treedef, list(leaves)))
            return model(tokens, positions, cache, mask)

        def decode_forward(
            leaves: Any, tokens: Any, positions: Any, cache: Any, valid: Any, write: Any
        ) -> Any:
            model = nnx.merge(graphdef, jax.tree.unflatten(treedef, list(leaves)))
            return jax_decode.decode_step(
                model, arch.family, tokens, positions, cache, valid, write
            )

        self._forward = forward
        self._decode_forward = decode_forward
        self._decode_fn = jax.jit(self._decode_step, donate_argnums=(1, 2), static_argnums=(7,))
        self._multi_fn = jax.jit(self._multi_step, donate_argnums=(1, 2), static_argnums=(7,))
        self._prefill_fn = jax.jit(self._prefill_step, static_argnums=(3,))
        # The staged prompt's slots: STAGED_SLOTS, but never more than the smallest ring.
        self._staged = min(STAGED_SLOTS, self._max_slots)
        self._scatter_fn = jax.jit(jax_cache.scatter, donate_argnums=(0, 1))
        self._resize_fn = jax.jit(jax_cache.resize, static_argnums=(3, 4))
        self._halve_fn = jax.jit(jax_cache.halve)

    # Traced functions.

    def _decode_step(
        self,
        state: Any,
        cache: Any,
        valid: jax.Array,
        tokens: jax.Array,
        positions: jax.Array,
        active: jax.Array,
        write: jax.Array,
        want_logits: bool,
    ) -> tuple[Any, jax.Array, jax.Array, jax.Array | None]:
        valid = valid.at[:, write].set(active)
        logits, cache = self._decode_forward(state, tokens, positions, cache, valid, write)
        logits = logits.astype(jnp.float32)
        greedy = first_argmax(logits)
        return cache, valid, greedy, (logits if want_logits else None)

    def _multi_step(
        self,
        state: Any,
        cache: Any,
        valid: jax.Array,
        tokens: jax.Array,
        positions: jax.Array,
        active: jax.Array,
        write: jax.Array,
        steps: int,
    ) -> tuple[Any, jax.Array, jax.Array]:
        """`steps` greedy decode steps in one call (no host round trip per token)."""
        slots = valid.shape[1]

        def body(carry: Any, i: jax.Array) -> tuple[Any, jax.Array]:
            cache, valid, tokens = carry
            cache, valid, greedy, _ = self._decode_step(
                state, cache, valid, tokens, positions + i, active, (write + i) % slots, False
            )
            return (cache, valid, greedy), greedy

        (cache, valid, _), out = jax.lax.scan(body, (cache, valid, tokens), jnp.arange(steps))
        return cache, valid, out

    def _prefill_step(
        self, state: Any, tokens: jax.Array, lengths: jax.Array, want: bool
    ) -> tuple[Any, jax.Array, jax.Array, jax.Array | None]:
        """The greedy next token (and logits if `want`) of each prompt row, and the prompts'
        keys/values [PREFILL_ROWS, P', K, H] with their mask [PREFILL_ROWS, P'], where
        P' = max(P, self._staged): the extra rows and leading slots are padding."""
        rows, length = tokens.shape
        index = jnp.arange(length)
        pad = length - lengths[:, None]  # left padding of each row
        real = index[None, :] >= pad  # [n, P]
        positions = jnp.maximum(index[None, :] - pad, 0).astype(jnp.int32)
        causal = index[None, :, None] >= index[None, None, :]
        mask = causal & real[:, None, :]  # [n, P, P]
        shape = (rows, length, self.arch.num_kv_heads, self.arch.head_dim)
        fresh = {
            f"layer_{i}": {
                "k": jnp.zeros(shape, self.dtype),
                "v": jnp.zeros(shape, self.dtype),
                "end_index": jnp.zeros((rows,), jnp.int32),
            }
            for i in range(self.arch.num_layers)
        }
        logits, cache = self._forward(state, tokens, positions, fresh, mask)
        last = logits[:, -1].astype(jnp.float32)
        greedy = first_argmax(last)
        # Left padding keeps the prompt's last slot last: the scatter places it just behind w.
        padding = ((0, PREFILL_ROWS - rows), (max(0, self._staged - length), 0))
        staged = {
            name: {part: jnp.pad(layer[part], (*padding, (0, 0), (0, 0))) for part in ("k", "v")}
            for name, layer in cache.items()
        }
        return staged, jnp.pad(real, padding), greedy, (last if want else None)

    # Host side (scheduler thread only).

    def _allocate(self, batch: int, slots: int) -> None:
        # From host zeros: `jnp.zeros` would compile a broadcast for every new cache shape.
        shape = (batch, self.arch.num_kv_heads, slots, self.arch.head_dim)
        self._cache = {
            f"layer_{i}": {
                "k": jax.device_put(np.zeros(shape, self.dtype)),
                "v": jax.device_put(np.zeros(shape, self.dtype)),
            }
            for i in range(self.arch.num_layers)
        }
        self._valid = jax.device_put(np.zeros((batch, slots), bool))
        self._write = 0

    def _resize(self, batch: int, slots: int) -> None:
        """Grows the cache to `batch` rows and `slots` (at least the current ones) one bucket at
        a time, rows first: a jump (2 -> 16 rows, or rows and slots at once) is a chain of
        doublings, so the resizes that exist are the few `warmup` compiles, not one per pair of
        shapes (each costs ~0.1 s to compile; copying a cache again costs ~1 ms). Each step
        unrolls the ring so the oldest slot comes first and `w` points past the newest."""
        assert self._cache is not None and self._valid is not None
        have_batch, have_slots = self._shape()
        while (have_batch, have_slots) != (batch, slots):
            old_slots = have_slots
            if have_batch < batch:
                have_batch *= 2
            else:
                have_slots *= 2
            self._cache, self._valid = self._resize_fn(
                self._cache, self._valid, np.int32(self._write), have_batch, have_slots
            )
            self._write = old_slots % have_slots

    def _shape(self) -> tuple[int, int]:
        return (0, 0) if self._valid is None else tuple(self._valid.shape)  # type: ignore[return-value]

    def _ensure(self, batch_needed: int, slots_needed: int) -> None:
        batch = next_power_of_two(batch_needed)
        slots = min(next_power_of_two(slots_needed, MIN_SLOTS), self._max_slots)
        if self._cache is None:
            self._allocate(batch, slots)
            return
        have_batch, have_slots = self._shape()
        if batch > have_batch or slots > have_slots:
            self._resize(max(batch, have_batch), max(slots, have_slots))

    def prefill(
        self, rows: list[int], prompts: list[list[int]], want_logits: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        greedy, logits = [], []
        for start in range(0, len(rows), PREFILL_ROWS):
            g, lg = self._prefill_chunk(
                rows[start : start + PREFILL_ROWS],
                prompts[start : start + PREFILL_ROWS],
                want_logits,
            )
            greedy.append(g)
            if lg is not None:
                logits.append(lg)
        return np.concatenate(greedy), np.concatenate(logits) if logits else None

    def _prefill_chunk(
        self, rows: list[int], prompts: list[list[int]], want_logits: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        longest = max(len(p) for p in prompts)
        length = min(next_power_of_two(longest, MIN_PROMPT), self._max_slots)
        # Rows bucketed to a power of two: padding a lone prompt to PREFILL_ROWS rows would
        # quadruple the prefill of a single request.
        count = next_power_of_two(len(rows))
        tokens = np.zeros((count, length), np.int32)
        lengths = np.ones(count, np.int32)
        for i, prompt in enumerate(prompts):
            tokens[i, length - len(prompt) :] = prompt
            lengths[i] = len(prompt)
        live_spans = [int(self._spans[r]) + 1 for r in self._live]
        # The ring must hold the staged slots without wrapping onto themselves, and the prompt
        # plus the next token; a 74-token prompt (bucket 128) fits 128 slots.
        self._ensure(max([*rows, *self._live]) + 1, max([length, longest + 1, *live_spans]))
        prompt_cache, real, greedy, logits = self._prefill_fn(
            self._state, tokens, lengths, want_logits
        )
        batch, _ = self._shape()
        row_index = np.full(PREFILL_ROWS, batch, np.int32)  # out of range: dropped
        row_index[: len(rows)] = rows
        self._cache, self._valid = self._scatter_fn(
            self._cache, self._valid, prompt_cache, real, row_index, np.int32(self._write)
        )
        for row, prompt in zip(rows, prompts, strict=True):
            self._positions[row] = len(prompt)
            self._spans[row] = len(prompt)
            self._live.add(row)
        n = len(rows)
        return np.asarray(greedy)[:n], None if logits is None else np.asarray(logits)[:n]

    def decode(
        self, rows: list[int], tokens: list[int], want_logits: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self._ensure(max(rows) + 1, int(max(self._spans[r] for r in rows)) + 1)
        batch, slots = self._shape()
        feed = np.zeros(batch, np.int32)
        active = np.zeros(batch, bool)
        feed[rows] = tokens
        active[rows] = True
        positions = np.zeros(batch, np.int32)
        positions[: min(batch, self.capacity)] = self._positions[:batch]
        self._cache, self._valid, greedy, logits = self._decode_fn(
            self._state,
            self._cache,
            self._valid,
            feed,
            positions,
            active,
            np.int32(self._write),
            want_logits,
        )
        self._write = (self._write + 1) % slots
        self._positions[rows] += 1
        self._spans[rows] += 1
        ids = np.asarray(greedy)[rows]
        return ids, None if logits is None else np.asarray(logits)[rows]

    def warmup(self, max_batch: int, prompt_lengths: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        """Compiles the common shape buckets now (every batch bucket up to `max_batch` at the
        initial slot count, greedy and fused decode, prefill of the given prompt buckets), so
        that first requests of each batch size do not wait for XLA; what a longer request
        reaches (the doubled slot count, the next prompt bucket) is queued for `idle_step`.

        The prefills depend on the prompt rows and bucket only, everything else on the cache's
        shape: the two sets compile at once, the prefills on a second thread (XLA compiles
        without holding the GIL). XLA already spreads part of each compilation over the cores,
        so on 2 shared CPU cores this saves ~13 % of a llama3-1.3m warmup (median 15.4 s
        against 17.7 s in 10 interleaved pairs; issue 13)."""
        assert not self._live, "warm up an idle engine"
        slots = min(MIN_SLOTS, self._max_slots)
        top = min(max_batch, self.capacity)
        buckets = {min(next_power_of_two(n, MIN_PROMPT), self._max_slots) for n in prompt_lengths}
        lengths = sorted(length for length in buckets if length < slots)
        counts = [1 << i for i in range(min(top, PREFILL_ROWS).bit_length())]  # 1, 2, 4
        batches = [1 << i for i in range(top.bit_length())]  # 1, 2, 4, 8, 16
        with ThreadPoolExecutor(1, thread_name_prefix="warmup") as pool:
            prefills = pool.submit(self._warm_prefills, counts, lengths)
            self._allocate(1, slots)
            for batch in batches:
                # Grown from the previous bucket: this compiles that resize too.
                self._ensure(batch, slots)
                self._warm_steps(batch)
            self._shrink(1)  # and back, as rows finish
            prefills.result()
        self.release(list(range(top)))  # drops the cache: the batch drained
        self._later = self._deferred_warmup(batches, slots, counts)

    def _deferred_warmup(
        self, batches: list[int], slots: int, counts: list[int]
    ) -> list[Callable[[], None]]:
        """The shapes a request longer than the initial ring reaches, one compilation group
        each: every batch bucket at twice the slots (grown from the initial ring, and on to the
        next bucket), and the prefill of prompts that fill the initial ring. Serving met these
        within its first minute (bench/inference_service.py: 17 compilations, ~2.4 s, in
        the first round after a load, before)."""
        grown = slots * 2
        if grown > self._max_slots:
            return []

        def cache_shape(batch: int) -> None:
            self._allocate(batch, slots)
            self._ensure(batch, grown)  # the slot doubling of this batch bucket
            self._warm_steps(batch)
            if batch * 2 <= batches[-1]:
                self._ensure(batch * 2, grown)  # the row doubling at this slot count
                self._shrink(batch)  # and the halving
            self.release(list(range(batch * 2)))

        work: list[Callable[[], None]] = [functools.partial(cache_shape, b) for b in batches]
        work += [functools.partial(self._warm_prefills, [c], [slots]) for c in counts]
        return work

    def idle_step(self) -> bool:
        """Runs one group of the deferred warm-up (the scheduler calls it while no request is
        in flight); False once none is left."""
        if self._live:
            return bool(self._later)
        if self._later:
            self._later.pop(0)()
        return bool(self._later)

    def _warm_steps(self, batch: int) -> None:
        """Compiles (and runs) the scatter, one decode step and the fused decode at the cache's
        current shape, for `batch` rows."""
        if self._staged_zeros is None:
            # Tracing (once), not compiling: the staged shape the scatter receives.
            shapes = jax.eval_shape(
                functools.partial(self._prefill_step, want=False),
                self._state,
                np.zeros((1, MIN_PROMPT), np.int32),
                np.ones(1, np.int32),
            )
            self._staged_zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes[:2])
        staged, real = self._staged_zeros
        rows = list(range(batch))
        # Every row index out of range: nothing is written, the variant is compiled.
        self._cache, self._valid = self._scatter_fn(
            self._cache,
            self._valid,
            staged,
            real,
            np.full(PREFILL_ROWS, self._shape()[0], np.int32),
            np.int32(self._write),
        )
        self.decode(rows, [0] * batch, False)
        self.decode_many(rows, [0] * batch, MAX_FUSED_STEPS)

    def _warm_prefills(self, counts: list[int], lengths: list[int]) -> None:
        """Compiles (and runs once) the prefill of each count of prompt rows and bucket."""
        for length in lengths:
            for count in counts:
                tokens = np.zeros((count, length), np.int32)
                lengths_n = np.full(count, length, np.int32)
                _, _, greedy, _ = self._prefill_fn(self._state, tokens, lengths_n, False)
                np.asarray(greedy)  # ran, not only compiled: a failure shows here

    def decode_many(self, rows: list[int], tokens: list[int], steps: int) -> np.ndarray:
        """`steps` greedy steps at once: [steps, len(rows)] tokens (each fed to the next)."""
        self._ensure(max(rows) + 1, int(max(self._spans[r] for r in rows)) + steps)
        batch, slots = self._shape()
        feed = np.zeros(batch, np.int32)
        active = np.zeros(batch, bool)
        feed[rows] = tokens
        active[rows] = True
        self._cache, self._valid, out = self._multi_fn(
            self._state,
            self._cache,
            self._valid,
            feed,
            self._positions[:batch].copy(),
            active,
            np.int32(self._write),
            steps,
        )
        self._write = (self._write + steps) % slots
        self._positions[rows] += steps
        self._spans[rows] += steps
        return np.asarray(out)[:, rows]

    def release(self, rows: list[int]) -> None:
        for row in rows:
            self._live.discard(row)
            self._spans[row] = 0
            self._positions[row] = 0
        if not self._live:
            self._cache, self._valid = None, None  # the batch drained: start small again
            return
        # Shrink the batch bucket: the top rows are all free.
        self._shrink(next_power_of_two(max(self._live) + 1))

    def _shrink(self, batch: int) -> None:
        """Drops rows down to `batch` (a power of two), halving at a time: the halvings are
        the variants `warmup` compiles."""
        while self._cache is not None and self._shape()[0] > batch:
            self._cache, self._valid = self._halve_fn(self._cache, self._valid)


class JaxEngine(BatchedEngine):
    """An Engine over a tunix model (see base.Engine)."""

    backend = "jax"

    def __init__(
        self,
        model: nnx.Module,
        tokenizer: TextTokenizer,
        arch: ArchitectureConfig,
        *,
        dtype: Any = jnp.float32,
        capacity: int = DEFAULT_CAPACITY,
        parameter_count: int = 0,
        weight_bytes: int = 0,
    ) -> None:
        self.core = JaxCore(model, arch, dtype, capacity)
        super().__init__(
            self.core,
            tokenizer,
            arch,
            itemsize=jnp.dtype(dtype).itemsize,
            devices=[str(d) for d in jax.devices()],
            capacity=capacity,
            parameter_count=parameter_count,
            weight_bytes=weight_bytes,
        )

    def warmup(self, max_batch: int = 16) -> None:
        """Compiles the usual shape buckets (seconds per batch bucket on CPU). Call it before
        serving (no request may be in flight). Rarer shapes compile afterwards, in idle time."""
        self.core.warmup(max_batch)
        self.scheduler.idle_work_added()
