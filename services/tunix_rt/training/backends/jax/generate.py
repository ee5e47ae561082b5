"""Text generation with tunix's Sampler (KV cache, greedy or top-p sampling).

A `Generator` keeps one Sampler per cache size, so repeated calls (periodic evaluation) reuse
the compiled prefill and decode functions. The Sampler reads the model's variables by reference,
so it always generates with the current weights. Prompts are processed in fixed-size chunks
(the last one filled with copies) so every call has the same shapes and compiles once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flax import nnx

from tunix_rt.training.tokenizer import TextTokenizer

DEFAULT_CHUNK = 16


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class Generator:
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
        """The generated text (prompt excluded, stopping at EOS) of each prompt.

        `temperature` 0 is greedy; above 0 samples (top-p 1.0 unless given; `seed` fixes the
        draw). The KV cache holds the longest prompt (rounded up to a power of two, so prompt
        lengths share compilations) plus `max_new_tokens`. `should_stop` is asked between
        chunks; once it says True the remaining prompts get "".
        """
        if not prompts:
            return []
        lengths = [1 + len(self.tokenizer.encode(p)) for p in prompts]  # + BOS
        prompt_room = _next_power_of_two(max(lengths))
        cache_size = prompt_room + max_new_tokens
        sampler = self._sampler(cache_size)
        sampling: dict[str, Any] = {}
        if temperature > 0:
            sampling = dict(temperature=temperature, top_p=1.0 if top_p is None else top_p)
            sampling.update(top_k=top_k, seed=seed)
        chunk_size = min(chunk_size, len(prompts))
        out: list[str] = []
        for start in range(0, len(prompts), chunk_size):
            if should_stop is not None and should_stop():
                return out + [""] * (len(prompts) - len(out))
            chunk = list(prompts[start : start + chunk_size])
            real = len(chunk)
            chunk += [chunk[-1]] * (chunk_size - real)
            result = sampler(
                chunk,
                max_generation_steps=max_new_tokens,
                max_prompt_length=prompt_room,
                **sampling,
            )
            out.extend(str(text) for text in result.text[:real])
        return out


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
