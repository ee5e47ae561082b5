"""Evaluation during training, the part both backends share: eval answer accuracy (greedy
generation, answer extraction, comparison with the trace's final answer) and the EVALUATING phase
between optimizer steps. Each backend supplies the eval loss (backends/<framework>/evaluation.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from tunix_rt.models.answers import answers_match, extract_answer
from tunix_rt.training.backends.base import EVALUATING, TRAINING, Example, Reporter, Stopped
from tunix_rt.training.backends.generation import ChunkedGenerator


class EvaluatorBase(ABC):
    """Eval loss (each backend's `loss`) and eval answer accuracy: greedy generation on the
    examples' prompts, `extract_answer`, and `answers_match` against the trace's final answer."""

    def __init__(
        self,
        examples: Sequence[Example],
        generator: ChunkedGenerator,
        max_new_tokens: int,
    ) -> None:
        self.examples = list(examples)
        self.generator = generator
        self.max_new_tokens = max_new_tokens

    @abstractmethod
    def loss(self) -> float:
        """Mean cross-entropy per target token over the eval examples; nan without any."""

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


def evaluate_between_steps(evaluator: EvaluatorBase, reporter: Reporter) -> dict[str, float]:
    """A periodic evaluation: the EVALUATING phase, then back to TRAINING; Stopped when the job
    was cancelled meanwhile."""
    reporter.phase(EVALUATING)
    values = evaluator.evaluate(reporter.should_stop)
    if reporter.should_stop():
        raise Stopped()
    reporter.phase(TRAINING)
    return values
