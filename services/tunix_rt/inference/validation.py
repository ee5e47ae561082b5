"""Checks of generation requests: SamplingParams → engines.base.Sampling, and prompt lengths (in
chars, then in tokens).

Every violation names its field (`sampling.temperature`, `prompt`, ...) and all of a request's
violations are reported together, as INVALID_ARGUMENT with BadRequest field violations.
"""

from __future__ import annotations

import secrets

from tunix_rt.common.errors import FieldViolation, InvalidArgument
from tunix_rt.inference.engines.base import Sampling
from tunix_rt.v1 import inference_pb2

DEFAULT_MAX_NEW_TOKENS = 128
MAX_NEW_TOKENS = 4096
MAX_TEMPERATURE = 2.0
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 256
MAX_PROMPT_CHARS = 1_000_000
# Seeds the service picks: non-negative and well inside int64, so they print and round-trip.
_SEED_BITS = 62


def sampling_from_proto(
    params: inference_pb2.SamplingParams, field: str = "sampling"
) -> tuple[Sampling, int]:
    """The engine's Sampling for `params` and the seed used (the request's or a random one);
    InvalidArgument naming each out-of-range field."""
    bad: list[FieldViolation] = []

    def check(ok: bool, name: str, description: str) -> None:
        if not ok:
            bad.append(FieldViolation(f"{field}.{name}", description))

    temperature = params.temperature
    check(
        0.0 <= temperature <= MAX_TEMPERATURE,
        "temperature",
        f"must be in [0, {MAX_TEMPERATURE:g}] (0 = greedy), got {temperature:g}",
    )
    check(params.top_k >= 0, "top_k", f"must be at least 0 (0 = no limit), got {params.top_k}")
    # 0 is the proto default, meaning "no nucleus cut", as 1 does.
    check(
        0.0 <= params.top_p <= 1.0,
        "top_p",
        f"must be in (0, 1] (0 or 1 = no limit), got {params.top_p:g}",
    )
    max_new = params.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    check(
        1 <= max_new <= MAX_NEW_TOKENS,
        "max_new_tokens",
        f"must be in [1, {MAX_NEW_TOKENS}] (0 = {DEFAULT_MAX_NEW_TOKENS}), "
        f"got {params.max_new_tokens}",
    )
    check(
        params.max_reasoning_tokens >= 0,
        "max_reasoning_tokens",
        f"must be at least 0 (0 = no limit), got {params.max_reasoning_tokens}",
    )
    stops = list(params.stop_sequences)
    check(
        len(stops) <= MAX_STOP_SEQUENCES,
        "stop_sequences",
        f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(stops)}",
    )
    for index, stop in enumerate(stops):
        check(
            1 <= len(stop) <= MAX_STOP_CHARS,
            f"stop_sequences[{index}]",
            f"must be 1-{MAX_STOP_CHARS} chars, got {len(stop)}",
        )
    if bad:
        raise InvalidArgument.fields(bad)
    seed = params.seed if params.HasField("seed") else secrets.randbits(_SEED_BITS)
    sampling = Sampling(
        max_new_tokens=max_new,
        temperature=temperature,
        top_k=params.top_k,
        top_p=params.top_p or 1.0,
        seed=seed,
        stop=tuple(stops),
        max_reasoning_tokens=params.max_reasoning_tokens,
    )
    return sampling, seed


def check_prompt_text(prompt: str, field: str = "prompt") -> None:
    """The prompt is 1 to 1,000,000 chars."""
    if not prompt:
        raise InvalidArgument.field(field, "must not be empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgument.field(
            field, f"is {len(prompt)} chars, more than the limit of {MAX_PROMPT_CHARS}"
        )


def check_prompt_chars(
    prompt_chars: int, limit: int | None, context_length: int, field: str = "prompt"
) -> None:
    """A prompt over `limit` chars cannot fit the context whatever its tokens (see
    `prompt_bound`); refusing it here spares tokenizing it. None = no such limit."""
    if limit is not None and prompt_chars > limit:
        raise InvalidArgument.field(
            field,
            f"the prompt is {prompt_chars} chars, but the model's context length is "
            f"{context_length} tokens, which no prompt over {limit} chars can fit",
        )


def check_prompt_tokens(prompt_tokens: int, context_length: int, field: str = "prompt") -> None:
    """A prompt must leave room for at least one generated token in the model's context."""
    if prompt_tokens >= context_length:
        raise InvalidArgument.field(
            field,
            f"the prompt is {prompt_tokens} tokens, but the model's context length is "
            f"{context_length} tokens (and generation needs at least one more)",
        )
