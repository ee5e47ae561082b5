"""The training loss: next-token cross-entropy on target tokens only, with integer labels.

Packed rows hold several examples. The model gets a 4-D boolean mask `[B, 1, T, T]` that is
block-diagonal causal by segment id (no token attends across examples) and position ids that
restart at 0 per example, so a packed example's logits equal those of the example alone (tested).
Padding queries may attend to themselves only: a fully masked row would make sdpa's softmax NaN,
and a NaN anywhere reaches the gradients even where the loss mask is 0.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tunix_rt.training.packing import Batch

Inputs = dict[str, torch.Tensor]


def attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """`[B, 1, T, T]` bool: query i sees key j iff j <= i, both in the same example, j not
    padding (and a padding query sees itself)."""
    length = segment_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    same = segment_ids[:, :, None] == segment_ids[:, None, :]  # [B, T, T]
    mask = same & causal[None] & (segment_ids[:, None, :] > 0)
    mask |= torch.eye(length, dtype=torch.bool, device=segment_ids.device)[None]
    return mask[:, None]


def to_inputs(batch: Batch, device: torch.device, rows: slice = slice(None)) -> Inputs:
    """A packing.Batch (its `rows`) as tensors on `device`."""

    def tensor(array: Any) -> torch.Tensor:
        return torch.from_numpy(array[rows]).to(device)

    segments = tensor(batch.segment_ids)
    return {
        "input_ids": tensor(batch.tokens).long(),
        "position_ids": tensor(batch.positions).long(),
        "attention_mask": attention_mask(segments),
        "loss_mask": tensor(batch.loss_mask),
    }


def token_losses(
    model: Any, inputs: Inputs, autocast: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of target-token cross-entropies, number of target tokens) of a batch."""
    ids = inputs["input_ids"]
    with torch.autocast(ids.device.type, dtype=autocast or torch.float32, enabled=bool(autocast)):
        logits = model(
            input_ids=ids,
            attention_mask=inputs["attention_mask"],
            position_ids=inputs["position_ids"],
        ).logits  # [B, T, V]
    logits = logits[:, :-1].float()  # [B, T-1, V]: predicts tokens 1..T-1
    targets = ids[:, 1:]  # [B, T-1]
    mask = inputs["loss_mask"][:, 1:].to(logits.dtype)  # [B, T-1]
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    )
    return (ce * mask.reshape(-1)).sum(), mask.sum()
