"""Text generation with tunix's Sampler (KV cache, greedy or top-p sampling).

A `Generator` keeps one Sampler per cache size, so repeated calls (periodic evaluation) reuse
the compiled prefill and decode functions. The Sampler reads the model's variables by reference,
so it always generates with the current weights. Prompts are processed in fixed-size chunks
(the last one filled with copies) so every call has the same shapes and compiles once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flax import nnx

from tunix_rt.models.tokenizer import TextTokenizer
from tunix_rt.training.backends.generation import ChunkedGenerator, Request, in_chunks


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class Generator(ChunkedGenerator):
    """Generates continuations of prompts with one model and tokenizer."""

    def __init__(self, model: nnx.Module, tokenizer: TextTokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer
        self._samplers: dict[int, Any] = {}

    def _sampler(self, cache_size: int) -> Any:
        if cache_size not in self._samplers:
            from tunix.generate import sampler as sampler_lib

            config: Any = self.model.config  # type: ignore[attr-defined]
            cache = sampler_lib.CacheConfig(
                cache_size=cache_size,
                num_layers=config.num_layers,
                num_kv_heads=config.num_kv_heads,
                head_dim=config.head_dim,
            )
            self._samplers[cache_size] = sampler_lib.Sampler(self.model, self.tokenizer, cache)
        return self._samplers[cache_size]

    def _generate(self, request: Request) -> list[str]:
        """The KV cache holds the longest prompt (rounded up to a power of two, so prompt
        lengths share compilations) plus `max_new_tokens`."""
        prompts, max_new_tokens = request.prompts, request.max_new_tokens
        lengths = [1 + len(self.tokenizer.encode(p)) for p in prompts]  # + BOS
        prompt_room = _next_power_of_two(max(lengths))
        cache_size = prompt_room + max_new_tokens
        sampler = self._sampler(cache_size)
        options: dict[str, Any] = {}
        if request.temperature > 0:
            top_p = 1.0 if request.top_p is None else request.top_p
            options = dict(temperature=request.temperature, top_p=top_p)
            options.update(top_k=request.top_k, seed=request.seed)
        chunk_size = min(request.chunk_size, len(prompts))

        def generate_chunk(part: Sequence[str]) -> list[str]:
            chunk = list(part)
            real = len(chunk)  # the rest are copies, so every call has the same shapes
            chunk += [chunk[-1]] * (chunk_size - real)
            result = sampler(
                chunk,
                max_generation_steps=max_new_tokens,
                max_prompt_length=prompt_room,
                **options,
            )
            return [str(text) for text in result.text[:real]]

        return in_chunks(request, chunk_size, generate_chunk)


def generate(
    model: nnx.Module,
    tokenizer: TextTokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    seed: int = 0,
) -> list[str]:
    """One-off generation (builds a Generator; keep a Generator to generate repeatedly)."""
    return Generator(model, tokenizer)(prompts, max_new_tokens, temperature, top_p, top_k, seed)
