"""Text generation with a transformers causal LM (KV cache, greedy or top-p/top-k sampling).

Prompts are encoded as the training data is (`bos + prompt`), left-padded into chunks, and
continued with `model.generate` (which derives position ids from the attention mask, so padding
does not shift positions); the text of each stops at the first EOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tunix_rt.models.tokenizer import TextTokenizer
from tunix_rt.training.backends.generation import ChunkedGenerator, Request, in_chunks


class Generator(ChunkedGenerator):
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

    def _generate(self, request: Request) -> list[str]:
        max_new_tokens = request.max_new_tokens
        if max_new_tokens <= 0:
            return [""] * len(request.prompts)
        options: dict[str, Any] = {"do_sample": False, "num_beams": 1}
        if request.temperature > 0:
            options = {
                "do_sample": True,
                "temperature": request.temperature,
                "top_p": request.top_p or 1.0,
            }
            options["top_k"] = request.top_k or 0
            torch.manual_seed(request.seed)
        training = self.model.training
        self.model.eval()
        try:
            return in_chunks(
                request,
                request.chunk_size,
                lambda chunk: self._chunk(chunk, max_new_tokens, options),
            )
        finally:
            self.model.train(training)


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
