"""One generation request from the event loop's side: validate → acquire the model → render and
encode the prompt → run the engine on its own thread → events on the loop → a GenerationSummary.

The engine's `generate` blocks between tokens (it waits for its batch), so each request gets its
own thread, never a slot of the loop's small default executor: sixteen concurrent streams must be
able to wait in one engine batch together. Whoever stops consuming (client cancel, deadline,
server shutdown) sets the request's cancel event, and the engine drops the request at its next
step.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from google.protobuf import duration_pb2

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.common.rendering import CHAT_TEMPLATES, DEFAULT_TEMPLATE, render_prompt
from tunix_rt.inference import validation
from tunix_rt.inference.engines import base
from tunix_rt.inference.model_store import ModelStore, Served
from tunix_rt.models.answers import extract_answer
from tunix_rt.v1 import inference_pb2

FINISH_REASONS = {
    base.LENGTH: inference_pb2.FINISH_REASON_LENGTH,
    base.STOP: inference_pb2.FINISH_REASON_STOP,
    base.END_OF_SEQUENCE: inference_pb2.FINISH_REASON_END_OF_SEQUENCE,
    base.CONTEXT_LENGTH: inference_pb2.FINISH_REASON_CONTEXT_LENGTH,
}


@dataclass
class Request:
    """A generation request that passed validation, holding its model until `close`."""

    served: Served
    prompt_ids: list[int]
    sampling: base.Sampling
    seed: int
    cancel: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        self.cancel.set()
        self.served.release()


def prepare(
    store: ModelStore,
    model: str,
    prompt: str,
    params: inference_pb2.SamplingParams,
    raw_prompt: bool,
) -> Request:
    """Blocking (call it in a thread): checks the request and acquires its model. The caller
    must `close()` the result."""
    if not model.strip():
        raise InvalidArgument.field("model", "must not be empty")
    validation.check_prompt_text(prompt)
    sampling, seed = validation.sampling_from_proto(params)
    served = store.acquire(model)
    try:
        text = prompt if raw_prompt else render_prompt(prompt, _template(served.chat_template))
        ids = encode_prompt(served, text)
    except BaseException:
        served.release()
        raise
    return Request(served, ids, sampling, seed)


def encode_prompt(served: Served, text: str, field: str = "prompt") -> list[int]:
    """The token ids of the rendered prompt `text`; InvalidArgument naming `field` when it cannot
    fit the model's context. Every path that generates (Generate, GenerateStream, ModelInfer,
    each item of BatchPredict and Evaluate) encodes here. A text over the model's chars limit is
    refused before it is tokenized: tokenizing a million chars costs a second and memory that
    the allocator keeps (issue 10, finding 6)."""
    validation.check_prompt_chars(
        len(text), served.prompt_chars_limit, served.context_length, field
    )
    ids = served.engine.encode_prompt(text)
    validation.check_prompt_tokens(len(ids), served.context_length, field)
    return ids


def _template(name: str) -> str:
    return name if name in CHAT_TEMPLATES else DEFAULT_TEMPLATE


async def events(request: Request) -> AsyncIterator[base.Piece | base.Finished]:
    """The engine's events for `request`, put on this event loop by the engine's thread as they
    happen (no thread per request: at 16 streams those threads' wake-ups cost more than the
    streams' own work). Leaving the iteration early (or being cancelled) cancels the
    generation: the engine drops the row at its next step."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[base.Piece | base.Finished | BaseException] = asyncio.Queue()
    cancel = request.cancel

    def deliver(event: base.Piece | base.Finished | BaseException) -> None:
        try:
            loop.call_soon_threadsafe(arrived.put_nowait, event)
        except RuntimeError:  # the loop has closed (shutdown): nobody is listening
            cancel.set()

    request.served.engine.generate_to(request.prompt_ids, request.sampling, cancel.is_set, deliver)
    try:
        while True:
            event = await arrived.get()
            if isinstance(event, BaseException):
                raise event
            yield event
            if isinstance(event, base.Finished):
                return
    finally:
        cancel.set()


def summary(finished: base.Finished, seed: int) -> inference_pb2.GenerationSummary:
    """The GenerationSummary of a finished generation (Generate, GenerateStream and each
    prediction of BatchPredict and Evaluate report it alike)."""
    answer = extract_answer(finished.text)
    return inference_pb2.GenerationSummary(
        finish_reason=FINISH_REASONS.get(
            finished.finish_reason, inference_pb2.FINISH_REASON_UNSPECIFIED
        ),
        usage=inference_pb2.TokenUsage(
            prompt_tokens=finished.prompt_tokens,
            completion_tokens=finished.completion_tokens,
            reasoning_tokens=finished.reasoning_tokens,
            total_tokens=finished.prompt_tokens + finished.completion_tokens,
        ),
        answer=answer or "",
        seed=seed,
        time_to_first_token=duration(finished.time_to_first_token),
        total_time=duration(finished.total_time),
    )


def duration(seconds: float) -> duration_pb2.Duration:
    """`seconds` as a Duration (a negative clock difference counts as 0)."""
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(max(0.0, seconds) * 1e9))
    return value


async def generate_text(request: Request) -> tuple[str, base.Finished]:
    """Runs `request` to the end: the whole text and its Finished event."""
    started = time.monotonic()
    async for event in events(request):
        if isinstance(event, base.Finished):
            return event.text, event
    # The engine ended without a Finished: it was cancelled.
    elapsed = time.monotonic() - started
    return "", base.Finished(base.CANCELLED, "", len(request.prompt_ids), 0, 0, elapsed, elapsed)
