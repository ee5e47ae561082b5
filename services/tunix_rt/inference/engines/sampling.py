"""Per-request decoding logic shared by every engine: token choice, stops, streaming, finish.

An engine's model step gives, for each row of its batch, the greedy token and (only when some row
samples) the row's float32 logits. `RequestState` turns that into the request's next token and
its stream of text:

- sampling on the host with numpy and the request's own `np.random.Generator(seed)`, one draw per
  token, so the same request and seed give the same text whatever else shares the batch;
- stop sequences found in the decoded text (also when split across tokens) and cut off;
- EOS, max_new_tokens and the context length;
- max_reasoning_tokens: after that many tokens without an "Answer:" the tokens of "\\nAnswer:" are
  fed to the model as if it had generated them;
- incremental detokenization: the whole generated id list is decoded and only the new, stable
  suffix is streamed, holding back a possibly incomplete character and any tail that could still
  become a stop sequence.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from tunix_rt.inference.engines.base import (
    CANCELLED,
    CONTEXT_LENGTH,
    END_OF_SEQUENCE,
    LENGTH,
    STOP,
    Finished,
    Piece,
    Sampling,
)
from tunix_rt.models.tokenizer import TextTokenizer

FORCED_ANSWER = "\nAnswer:"
# What counts as the answer line (as tunix_rt.models.answers reads it: any case, any spacing).
_ANSWER = re.compile(r"answer\s*[:\uff1a]", re.IGNORECASE)
_INCOMPLETE = "\ufffd"  # what a partial UTF-8 sequence decodes to
_SEED_SPACE = 1 << 64  # seeds are taken modulo this (see RequestState)


def sample_token(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """One token from a row of logits: temperature, then top-k, then top-p (nucleus).

    Exactly one uniform draw per call, so a request's sequence of draws does not depend on the
    values it samples from."""
    draw = rng.random()
    scaled = logits.astype(np.float64) / sampling.temperature
    if 0 < sampling.top_k < scaled.shape[0]:
        kth = np.partition(scaled, -sampling.top_k)[-sampling.top_k]
        scaled = np.where(scaled >= kth, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if sampling.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        sorted_probs = probs[order]
        cumulative = np.cumsum(sorted_probs)
        # Keep the smallest prefix whose mass reaches top_p (at least the most likely token).
        keep = int(np.searchsorted(cumulative, sampling.top_p)) + 1
        order, sorted_probs = order[:keep], sorted_probs[:keep]
        cumulative = np.cumsum(sorted_probs)
        index = int(np.searchsorted(cumulative, draw * cumulative[-1], side="right"))
        return int(order[min(index, keep - 1)])
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, draw * cumulative[-1], side="right"))
    return min(index, int(probs.shape[0]) - 1)


@dataclass
class RequestState:
    """One request's progress; driven by the scheduler thread only."""

    prompt_ids: list[int]
    sampling: Sampling
    tokenizer: TextTokenizer
    context_length: int
    submitted: float = field(default_factory=time.monotonic)
    generated: list[int] = field(default_factory=list)
    first_token_at: float = 0.0
    text: str = ""  # decoded generated text (no EOS)
    emitted: int = 0  # characters of `text` already streamed
    pending_tokens: int = 0  # tokens not yet covered by a streamed Piece
    forced: list[int] = field(default_factory=list)  # tokens to feed instead of sampling
    answer_at: int = -1  # tokens before the Answer: line once it appeared
    text_lengths: list[int] = field(default_factory=list)  # len(text) after each token
    finished: Finished | None = None

    def __post_init__(self) -> None:
        # Any int64 is a seed: a negative one seeds with its 64-bit two's complement, as
        # torch.Generator.manual_seed (and so vLLM) reads it; numpy refuses negative seeds.
        self.rng = np.random.default_rng(self.sampling.seed % _SEED_SPACE)
        self._eos = self.tokenizer.eos_id()
        self._hold = max((len(s) for s in self.sampling.stop), default=1) - 1

    @property
    def needs_logits(self) -> bool:
        """Whether the next token is sampled (the engine must return this row's logits)."""
        return self.sampling.temperature > 0 and not self.forced

    def steps_without_host(self) -> int:
        """Tokens this request can take before the host must act on it: before its context is
        full or its reasoning limit forces tokens. (Tokens past max_new_tokens or a stop are
        simply dropped, so they do not count.)"""
        left = self.context_length - len(self.prompt_ids) - len(self.generated)
        limit = self.sampling.max_reasoning_tokens
        if limit > 0 and self.answer_at < 0:
            left = min(left, limit - len(self.generated))
        return max(1, left)

    def next_token(self, greedy: int, logits: np.ndarray | None) -> tuple[int, bool]:
        """The token that follows, from the model's output for this row, and whether it was
        forced rather than chosen by the model."""
        if self.forced:
            return self.forced.pop(0), True
        if self.sampling.temperature <= 0 or logits is None:
            return int(greedy), False
        return sample_token(logits, self.sampling, self.rng), False

    def advance(self, token: int, was_forced: bool = False) -> list[Piece | Finished]:
        """Appends `token`; returns the events it causes (a Piece and/or the Finished)."""
        now = time.monotonic()
        if not self.generated:
            self.first_token_at = now
        self.generated.append(token)
        self.pending_tokens += 1
        if token == self._eos and not was_forced:
            return self._finish(END_OF_SEQUENCE, len(self.text), now)
        self.text = self.tokenizer.decode(self.generated)
        self.text_lengths.append(len(self.text))
        stop_at = self._find_stop()
        if stop_at >= 0:
            return self._finish(STOP, stop_at, now)
        self._note_answer()
        if len(self.generated) >= self.sampling.max_new_tokens:
            return self._finish(LENGTH, len(self.text), now)
        if len(self.prompt_ids) + len(self.generated) >= self.context_length:
            return self._finish(CONTEXT_LENGTH, len(self.text), now)
        self._maybe_force_answer()
        return self._stream()

    def cancel(self) -> list[Piece | Finished]:
        return self._finish(CANCELLED, self.emitted, time.monotonic())

    def _find_stop(self) -> int:
        """Index in `text` of the earliest stop sequence, or -1. Only the tail that the last
        token could have completed is searched."""
        best = -1
        for stop in self.sampling.stop:
            start = max(0, self.emitted - len(stop))
            index = self.text.find(stop, start)
            if index >= 0 and (best < 0 or index < best):
                best = index
        return best

    def _note_answer(self) -> None:
        if self.answer_at >= 0:
            return
        match = _ANSWER.search(self.text)
        if match is None:
            return
        # Tokens before the Answer line: the whitespace (line break) before "Answer:" belongs to
        # the answer line, so a forced "\nAnswer:" leaves exactly the limit as reasoning.
        line_start = len(self.text[: match.start()].rstrip())
        self.answer_at = sum(1 for n in self.text_lengths if n <= line_start)

    def _maybe_force_answer(self) -> None:
        limit = self.sampling.max_reasoning_tokens
        if limit <= 0 or self.answer_at >= 0 or self.forced or len(self.generated) < limit:
            return
        self.forced = self.tokenizer.encode(FORCED_ANSWER)

    def _stable_end(self) -> int:
        """How much of `text` can be streamed now."""
        end = len(self.text)
        while end > self.emitted and self.text[end - 1] == _INCOMPLETE:
            end -= 1
        # Hold back the longest tail that is a prefix of some stop sequence.
        for size in range(min(self._hold, end - self.emitted), 0, -1):
            tail = self.text[end - size : end]
            if any(stop.startswith(tail) for stop in self.sampling.stop):
                return end - size
        return end

    def _stream(self) -> list[Piece | Finished]:
        end = self._stable_end()
        if end <= self.emitted:
            return []
        piece = Piece(self.text[self.emitted : end], self.pending_tokens)
        self.emitted, self.pending_tokens = end, 0
        return [piece]

    def _finish(self, reason: str, text_end: int, now: float) -> list[Piece | Finished]:
        events: list[Piece | Finished] = []
        if text_end > self.emitted:
            events.append(Piece(self.text[self.emitted : text_end], self.pending_tokens))
            self.emitted = text_end
        completion = len(self.generated)
        reasoning = self.answer_at if self.answer_at >= 0 else completion
        self.finished = Finished(
            finish_reason=reason,
            text=self.text[:text_end],
            prompt_tokens=len(self.prompt_ids),
            completion_tokens=completion,
            reasoning_tokens=min(reasoning, completion),
            time_to_first_token=(self.first_token_at or now) - self.submitted,
            total_time=now - self.submitted,
        )
        events.append(self.finished)
        return events
