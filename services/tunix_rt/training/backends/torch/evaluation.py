"""Periodic evaluation on the eval split: eval loss and eval answer accuracy (as on JAX).

The loss is the target-token cross-entropy over the eval examples (token-weighted across
batches); the accuracy is greedy generation on the same examples' prompts, `extract_answer`, and
`answers_match` against the trace's final answer. Dropout is off while evaluating.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from tunix_rt.training.answers import answers_match, extract_answer
from tunix_rt.training.backends.base import Example
from tunix_rt.training.backends.torch.generate import Generator
from tunix_rt.training.backends.torch.loss import to_inputs, token_losses
from tunix_rt.training.packing import Batch, EncodedExample, eval_batches
from tunix_rt.training.tokenizer import TextTokenizer


class Evaluator:
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
        self.examples = list(examples)
        self.max_new_tokens = max_new_tokens
        self.batches: list[Batch] = eval_batches(
            encoded, batch_size, max_seq_len, tokenizer.pad_id()
        )
        self.generator = Generator(model, tokenizer, autocast)

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

    def answer_accuracy(self, should_stop: Callable[[], bool] | None = None) -> float:
        """Fraction of eval prompts whose greedy generation has the right answer."""
        if not self.examples:
            return float("nan")
        texts = self.generator(
            [e.prompt for e in self.examples], self.max_new_tokens, should_stop=should_stop
        )
        right = [
            answers_match(extract_answer(t), e.answer)
            for t, e in zip(texts, self.examples, strict=True)
        ]
        return float(np.mean(right))

    def evaluate(self, should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
        """{"eval_loss": ..., "eval_answer_accuracy": ...}; {} without eval examples."""
        if not self.examples:
            return {}
        return {
            "eval_loss": self.loss(),
            "eval_answer_accuracy": self.answer_accuracy(should_stop),
        }
