"""Text generation with a transformers causal LM (KV cache, greedy or top-p/top-k sampling).

Prompts are encoded as the training data is (`bos + prompt`), left-padded into chunks, and
continued with `model.generate` (which derives position ids from the attention mask, so padding
does not shift positions); the text of each stops at the first EOS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from tunix_rt.training.tokenizer import TextTokenizer

DEFAULT_CHUNK = 16


class Generator:
    """Generates continuations of prompts with one model (by reference) and tokenizer."""

    def __init__(
        self, model: Any, tokenizer: TextTokenizer, autocast: torch.dtype | None = None
    ) -> None:
        self.model, self.tokenizer, self.autocast = model, tokenizer, autocast

    def _chunk(
        self, prompts: Sequence[str], max_new_tokens: int, sampling: dict[str, Any]
    ) -> list[str]:
        tok = self.tokenizer
        device = next(self.model.parameters()).device
        context = int(getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30)
        room = max(1, context - max_new_tokens)
        encoded = [[tok.bos_id(), *tok.encode(p)][-room:] for p in prompts]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), tok.pad_id(), dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, tokens in enumerate(encoded):
            ids[row, width - len(tokens) :] = torch.tensor(tokens)
            mask[row, width - len(tokens) :] = 1
        with (
            torch.no_grad(),
            torch.autocast(
                device.type, dtype=self.autocast or torch.float32, enabled=bool(self.autocast)
            ),
        ):
            out = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                eos_token_id=tok.eos_id(),
                pad_token_id=tok.pad_id(),
                **sampling,
            )
        texts = []
        for row in out[:, width:].tolist():
            if tok.eos_id() in row:
                row = row[: row.index(tok.eos_id())]
            texts.append(tok.decode(row))
        return texts

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
        is greedy; above 0 samples (`seed` fixes the draw). `should_stop` is asked between
        chunks; once it says True the remaining prompts get ""."""
        if not prompts or max_new_tokens <= 0:
            return [""] * len(prompts)
        sampling: dict[str, Any] = {"do_sample": False, "num_beams": 1}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p or 1.0}
            sampling["top_k"] = top_k or 0
            torch.manual_seed(seed)
        training = self.model.training
        self.model.eval()
        out: list[str] = []
        try:
            for start in range(0, len(prompts), chunk_size):
                if should_stop is not None and should_stop():
                    return out + [""] * (len(prompts) - len(out))
                chunk = prompts[start : start + chunk_size]
                out.extend(self._chunk(chunk, max_new_tokens, sampling))
        finally:
            self.model.train(training)
        return out


def generate(
    model: Any,
    tokenizer: TextTokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    seed: int = 0,
) -> list[str]:
    """One-off generation."""
    return Generator(model, tokenizer)(prompts, max_new_tokens, temperature, top_p, top_k, seed)
