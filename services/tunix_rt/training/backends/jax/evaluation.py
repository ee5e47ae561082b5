"""Periodic evaluation on the eval split: eval loss and eval answer accuracy.

The loss is the target-token cross-entropy over the eval examples (token-weighted across
batches); the accuracy is greedy generation on the same examples' prompts, `extract_answer`, and
`answers_match` against the trace's final answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx

from tunix_rt.models.tokenizer import TextTokenizer
from tunix_rt.training.backends.base import Example
from tunix_rt.training.backends.evaluation import EvaluatorBase
from tunix_rt.training.backends.jax.generate import Generator
from tunix_rt.training.backends.jax.loss import model_input, token_losses
from tunix_rt.training.packing import Batch, EncodedExample, eval_batches


class Evaluator(EvaluatorBase):
    """Evaluates one model (by reference: always its current weights) on fixed examples."""

    def __init__(
        self,
        model: nnx.Module,
        tokenizer: TextTokenizer,
        examples: Sequence[Example],
        encoded: Sequence[EncodedExample],
        batch_size: int,
        max_seq_len: int,
        max_new_tokens: int,
        dtype: Any = jnp.float32,
    ) -> None:
        self.model = model
        self.batches: list[Batch] = eval_batches(
            encoded, batch_size, max_seq_len, tokenizer.pad_id()
        )
        super().__init__(examples, Generator(model, tokenizer), max_new_tokens)

        def eval_step(model: nnx.Module, batch: dict[str, Any]) -> tuple[Any, Any]:
            return token_losses(model, **model_input(batch), dtype=dtype)

        self._step = nnx.jit(eval_step)

    def loss(self) -> float:
        """Mean cross-entropy per target token over the eval examples; nan without any."""
        total = count = 0.0
        for batch in self.batches:
            batch_total, batch_count = self._step(self.model, batch.as_model_input())
            total += float(batch_total)
            count += float(batch_count)
        return total / count if count else float("nan")
