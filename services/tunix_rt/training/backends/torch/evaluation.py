"""Periodic evaluation on the eval split: eval loss and eval answer accuracy (as on JAX).

The loss is the target-token cross-entropy over the eval examples (token-weighted across
batches); the accuracy is greedy generation on the same examples' prompts, `extract_answer`, and
`answers_match` against the trace's final answer. Dropout is off while evaluating.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tunix_rt.models.tokenizer import TextTokenizer
from tunix_rt.training.backends.base import Example
from tunix_rt.training.backends.evaluation import EvaluatorBase
from tunix_rt.training.backends.torch.generate import Generator
from tunix_rt.training.backends.torch.loss import to_inputs, token_losses
from tunix_rt.training.packing import Batch, EncodedExample, eval_batches


class Evaluator(EvaluatorBase):
    """Evaluates one model (by reference: always its current weights) on fixed examples."""

    def __init__(
        self,
        model: Any,
        tokenizer: TextTokenizer,
        examples: Sequence[Example],
        encoded: Sequence[EncodedExample],
        batch_size: int,
        max_seq_len: int,
        max_new_tokens: int,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.model, self.autocast = model, autocast
        self.batches: list[Batch] = eval_batches(
            encoded, batch_size, max_seq_len, tokenizer.pad_id()
        )
        super().__init__(examples, Generator(model, tokenizer, autocast), max_new_tokens)

    def loss(self) -> float:
        """Mean cross-entropy per target token over the eval examples; nan without any."""
        device = next(self.model.parameters()).device
        total = count = 0.0
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for batch in self.batches:
                    batch_total, batch_count = token_losses(
                        self.model, to_inputs(batch, device), self.autocast
                    )
                    total += float(batch_total)
                    count += float(batch_count)
        finally:
            self.model.train(training)
        return total / count if count else float("nan")
