"""The torch engine: a transformers causal LM in our own KV-cached decode loop.

The batch is a `DynamicCache` of left-padded rows ([batch, kv_heads, length, head_dim] per layer)
with a 2-D attention mask and explicit per-row position ids. Rows join at a step boundary: their
prompts are prefilled together (left padded) and the two caches are joined along the batch after
left-padding the shorter one; finished rows are cut out of the batch at once, and columns no row
attends to any more are trimmed from the left.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import DynamicCache

from tunix_rt.inference.engines.batching import BatchedEngine
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import TextTokenizer

DEFAULT_CAPACITY = 32


def _layers(cache: DynamicCache) -> list[Any]:
    return list(cache.layers)


class TorchCore:
    """The KV-cached batch of a transformers model (see the module docstring)."""

    def __init__(self, model: Any, capacity: int, pad_id: int) -> None:
        self.model, self.capacity, self.pad_id = model, capacity, pad_id
        self.device = next(model.parameters()).device
        self._rows: list[int] = []  # scheduler row of each batch index
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # [batch, length] int64
        self._positions: torch.Tensor | None = None  # [batch] next position

    @torch.inference_mode()
    def prefill(
        self, rows: list[int], prompts: list[list[int]], want_logits: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        length = max(len(p) for p in prompts)
        tokens = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            tokens[i, length - len(prompt) :] = torch.tensor(prompt)
            mask[i, length - len(prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        out = self.model(
            input_ids=tokens.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1].float()
        self._join(rows, out.past_key_values, mask.to(self.device), positions[:, -1] + 1)
        greedy = logits.argmax(-1).cpu().numpy()
        return greedy, logits.cpu().numpy() if want_logits else None

    def _join(
        self, rows: list[int], cache: DynamicCache, mask: torch.Tensor, positions: torch.Tensor
    ) -> None:
        positions = positions.to(self.device)
        if self._cache is None or self._mask is None or self._positions is None:
            self._rows, self._cache, self._mask, self._positions = rows, cache, mask, positions
            return
        old, new = self._mask.shape[1], mask.shape[1]
        width = max(old, new)

        def left_pad(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
            if size == 0:
                return x
            shape = list(x.shape)
            shape[dim] = size
            return torch.cat([x.new_zeros(shape), x], dim=dim)

        for mine, theirs in zip(_layers(self._cache), _layers(cache), strict=True):
            mine.keys = torch.cat(
                [left_pad(mine.keys, width - old, 2), left_pad(theirs.keys, width - new, 2)]
            )
            mine.values = torch.cat(
                [left_pad(mine.values, width - old, 2), left_pad(theirs.values, width - new, 2)]
            )
        self._mask = torch.cat(
            [left_pad(self._mask, width - old, 1), left_pad(mask, width - new, 1)]
        )
        self._positions = torch.cat([self._positions, positions])
        self._rows = self._rows + rows

    @torch.inference_mode()
    def decode(
        self, rows: list[int], tokens: list[int], want_logits: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        assert self._cache is not None and self._mask is not None and self._positions is not None
        index = {row: i for i, row in enumerate(self._rows)}
        order = [index[r] for r in rows]
        feed = torch.full((len(self._rows), 1), self.pad_id, dtype=torch.long)
        feed[order, 0] = torch.tensor(tokens)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self._rows), 1))], dim=1)
        out = self.model(
            input_ids=feed.to(self.device),
            attention_mask=self._mask,
            position_ids=self._positions[:, None],
            past_key_values=self._cache,
            use_cache=True,
        )
        self._cache = out.past_key_values
        self._positions = self._positions + 1
        logits = out.logits[:, -1].float()
        greedy = logits.argmax(-1).cpu().numpy()[order]
        return greedy, logits.cpu().numpy()[order] if want_logits else None

    def release(self, rows: list[int]) -> None:
        gone = set(rows)
        keep = [i for i, row in enumerate(self._rows) if row not in gone]
        if not keep or self._cache is None or self._mask is None or self._positions is None:
            self._rows, self._cache, self._mask, self._positions = [], None, None, None
            return
        if len(keep) == len(self._rows):
            return
        select = torch.tensor(keep, device=self.device)
        mask = self._mask.index_select(0, select)
        # Columns no remaining row attends to (left padding of rows that left) are dropped.
        used = mask.any(0).nonzero()
        start = int(used[0]) if len(used) else 0
        for layer in _layers(self._cache):
            layer.keys = layer.keys.index_select(0, select)[:, :, start:]
            layer.values = layer.values.index_select(0, select)[:, :, start:]
        self._mask = mask[:, start:]
        self._positions = self._positions.index_select(0, select)
        self._rows = [self._rows[i] for i in keep]


class TorchEngine(BatchedEngine):
    """An Engine over a transformers causal LM (see base.Engine)."""

    backend = "torch"

    def __init__(
        self,
        model: Any,
        tokenizer: TextTokenizer,
        arch: ArchitectureConfig,
        *,
        capacity: int = DEFAULT_CAPACITY,
        parameter_count: int = 0,
        weight_bytes: int = 0,
    ) -> None:
        self.model = model.eval()
        self.core = TorchCore(self.model, capacity, tokenizer.pad_id())
        first = next(model.parameters())
        super().__init__(
            self.core,
            tokenizer,
            arch,
            itemsize=first.element_size(),
            devices=[str(first.device)],
            capacity=capacity,
            parameter_count=parameter_count,
            weight_bytes=weight_bytes,
        )

    def warmup(self, max_batch: int = 16) -> None:
        """Nothing to compile (eager torch); here for symmetry with the JAX engine."""
        del max_batch

    def close(self) -> None:
        super().close()
        self.model = None
