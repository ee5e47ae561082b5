"""What an inference engine is: one loaded model that generates for many concurrent callers.

The service (tunix_rt.inference.servicer / model_store) only ever talks to this interface; the
JAX and torch engines implement it. An engine batches the requests submitted to it concurrently
(from many gRPC threads) so that throughput grows with concurrency, and streams each request's
text as it is generated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import TextTokenizer

# Finish reasons (the proto's FinishReason without the prefix).
LENGTH = "length"  # max_new_tokens reached
STOP = "stop"  # a stop sequence was generated (it is not part of the text)
END_OF_SEQUENCE = "end_of_sequence"  # the model generated EOS
CONTEXT_LENGTH = "context_length"  # the model's context is full
CANCELLED = "cancelled"  # the caller went away (cancel or deadline)


@dataclass(frozen=True)
class Sampling:
    """How to sample one request; validated by the service before it reaches an engine."""

    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = no top-k cut
    top_p: float = 1.0  # 1 = no nucleus cut
    seed: int = 0  # any int64; the same seed (and request) gives the same text
    stop: tuple[str, ...] = ()  # stop sequences
    # After this many generated tokens without an "Answer:" line, the engine appends
    # "\nAnswer:" itself and lets the model finish the answer; 0 = no limit.
    max_reasoning_tokens: int = 0


@dataclass(frozen=True)
class Piece:
    """New text of a request, streamed as soon as it is decodable."""

    text: str
    token_count: int  # tokens this piece covers


@dataclass(frozen=True)
class Finished:
    """The last event of a request."""

    finish_reason: str  # one of the constants above
    text: str  # the whole generated text (no prompt, no stop sequence)
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int  # completion tokens before the "Answer:" line
    time_to_first_token: float  # seconds from submission
    total_time: float  # seconds from submission


class Engine(Protocol):
    """A loaded model. Thread-safe: `generate` is called from many threads at once."""

    backend: str  # "jax" | "torch"
    tokenizer: TextTokenizer
    context_length: int  # tokens (prompt + generated) the model can attend to
    vocab_size: int
    parameter_count: int
    memory_bytes: int  # weights plus the engine's KV-cache reserve
    devices: list[str]

    def encode_prompt(self, text: str) -> list[int]:
        """The token ids the model is given for `text` (BOS + tokens); the service checks the
        length against `context_length` before calling `generate`."""

    def generate(
        self,
        prompt_ids: list[int],
        sampling: Sampling,
        cancelled: Callable[[], bool],
    ) -> Iterator[Piece | Finished]:
        """Generates for one request, batched with whatever else is in flight; yields Pieces and
        ends with one Finished. Once `cancelled()` is True the request leaves its batch at the
        next step and the iterator ends with a Finished(CANCELLED)."""

    def generate_batch(
        self, prompts: list[list[int]], sampling: Sampling, cancelled: Callable[[], bool]
    ) -> list[Finished]:
        """Generates for all `prompts` submitted together (admitted into the batch at the same
        step) and returns their Finished events in order, once all are done."""

    def generate_to(
        self,
        prompt_ids: list[int],
        sampling: Sampling,
        cancelled: Callable[[], bool],
        deliver: Callable[[Piece | Finished | BaseException], None],
    ) -> None:
        """`generate` without a waiting thread: each event (or the exception that failed the
        request) is handed to `deliver` as it happens, on the engine's own thread; `deliver`
        must not block."""

    def close(self) -> None:
        """Frees the model (called on unload/eviction once no request uses it)."""


LoadEngine = Callable[..., Engine]


def kv_cache_bytes(arch: ArchitectureConfig, itemsize: int, rows: int) -> int:
    """Bytes of a KV cache of `rows` full-context rows: a key and a value of `head_dim` items
    per KV head, per layer, per token (what an engine reserves beside its weights)."""
    per_token = 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim * itemsize
    return rows * arch.context_length * per_token
