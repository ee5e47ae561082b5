"""Generation in chunks of prompts, the part both backends' generators share: the call signature,
the request it becomes, and the loop over chunks that stops when the job is cancelled.

Framework-free: each backend subclasses `ChunkedGenerator` with its own chunk function.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_CHUNK = 16  # prompts generated together


@dataclass(frozen=True)
class Request:
    """One call of a ChunkedGenerator (its arguments, for the backend's `_generate`)."""

    prompts: Sequence[str]  # at least one
    max_new_tokens: int
    temperature: float  # 0: greedy; above 0: sampling with `seed`
    top_p: float | None
    top_k: int | None
    seed: int
    chunk_size: int
    should_stop: Callable[[], bool] | None


class ChunkedGenerator(ABC):
    """Generates continuations of prompts, a chunk of prompts at a time; each backend supplies
    `_generate` (usually `in_chunks` around its own chunk function)."""

    def __call__(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int = 0,
        chunk_size: int = DEFAULT_CHUNK,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[str]:
        """The generated text (prompt excluded, stopping at EOS) of each prompt. `temperature` 0
        is greedy; above 0 samples (top-p 1.0 unless given; `seed` fixes the draw).
        `should_stop` is asked between chunks; once it says True the remaining prompts get ""."""
        if not prompts:
            return []
        return self._generate(
            Request(
                prompts, max_new_tokens, temperature, top_p, top_k, seed, chunk_size, should_stop
            )
        )

    @abstractmethod
    def _generate(self, request: Request) -> list[str]:
        """__call__ for at least one prompt."""


def in_chunks(
    request: Request, chunk_size: int, generate_chunk: Callable[[Sequence[str]], list[str]]
) -> list[str]:
    """`generate_chunk` over consecutive chunks of the request's prompts, asking its
    `should_stop` before each; once it says True the remaining prompts get ""."""
    prompts, should_stop = request.prompts, request.should_stop
    out: list[str] = []
    for start in range(0, len(prompts), chunk_size):
        if should_stop is not None and should_stop():
            return out + [""] * (len(prompts) - len(out))
        out.extend(generate_chunk(prompts[start : start + chunk_size]))
    return out
