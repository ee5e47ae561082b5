"""Triton's extensions of the Open Inference Protocol that tritonclient users expect:
`RepositoryIndex` and `ModelStreamInfer` (used by `oip.OipServicer`).

RepositoryIndex lists every registered model version (name `reasoning-small`, version `3`) and
every model in memory that the registry does not list (a local checkpoint directory, named by its
path), sorted by name and version, each with Triton's state: `READY`, `LOADING`, `UNLOADING`, or
`UNAVAILABLE` with the reason (`unloaded`: not in memory, which it enters on its first request; or
why its load failed). `ready: true` keeps the READY ones only.

ModelStreamInfer streams tokens the way Triton's decoupled LLM backends (vLLM, TensorRT-LLM) do:
each request of the stream holds one prompt and is answered by one ModelStreamInferResponse per
generated text piece (`text_output` BYTES [1], parameter `triton_final_response` false), then a
final response with `triton_final_response` true. The final response has no outputs when the
request set `triton_enable_empty_final_response` (what tritonclient's
`async_stream_infer(..., enable_empty_final_response=True)` sends), exactly as Triton answers
it; otherwise, since tunix-rt learns that a generation ended only after its last piece, it holds
an empty piece, so a client that reads `text_output` of every response keeps working. Requests of
one stream run concurrently and their responses interleave (`id` tells them apart, as with
Triton). A request's error is a response's `error_message` and the stream goes on, as Triton does.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import aclosing
from functools import partial
from typing import Any

from tunix_rt.common.blocking import BlockingPool
from tunix_rt.common.error_status import status_proto_for
from tunix_rt.common.errors import InvalidArgument, TunixError
from tunix_rt.common.outgoing import registry_call
from tunix_rt.inference import generation
from tunix_rt.inference.model_store import ModelStore
from tunix_rt.inference.references import REGISTRY_DEADLINE_S
from tunix_rt.v1 import inference_pb2
from tunix_rt.v1 import oip_grpc_service_pb2 as oip
from tunix_rt.v1 import registry_service_pb2 as rpb

FINAL_PARAMETER = "triton_final_response"
EMPTY_FINAL_PARAMETER = "triton_enable_empty_final_response"
READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
UNLOADED = "unloaded"
_STATES = {
    inference_pb2.LOADED_MODEL_STATE_LOADING: "LOADING",
    inference_pb2.LOADED_MODEL_STATE_READY: READY,
    inference_pb2.LOADED_MODEL_STATE_FAILED: UNAVAILABLE,
    inference_pb2.LOADED_MODEL_STATE_UNLOADING: "UNLOADING",
}
_PAGE_SIZE = 1000
_VERSIONS = "/versions/"
_MODELS = "models/"

log = logging.getLogger("tunix_rt.inference.oip")

ModelIndex = oip.RepositoryIndexResponse.ModelIndex


# RepositoryIndex.


def repository_index(
    store: ModelStore, registry_stub: Any, request: oip.RepositoryIndexRequest
) -> oip.RepositoryIndexResponse:
    """Blocking (call it in a thread): the index the module docstring describes."""
    if request.repository_name:
        raise InvalidArgument.field(
            "repository_name", "tunix-rt serves one repository: leave the name empty"
        )
    loaded = {m.model_version or m.checkpoint_dir: m for m in store.loaded()}
    entries: list[ModelIndex] = []
    if registry_stub is not None:
        for version_name in _registered_versions(registry_stub):
            entries.append(_entry(version_name, loaded.pop(version_name, None)))
    # In memory but not listed: a checkpoint directory, or a version registered meanwhile.
    entries.extend(_entry(key, model) for key, model in loaded.items())
    if request.ready:
        entries = [e for e in entries if e.state == READY]
    entries.sort(key=lambda e: (e.name, int(e.version) if e.version.isdigit() else -1))
    return oip.RepositoryIndexResponse(models=entries)


def _registered_versions(stub: Any) -> Iterator[str]:
    """`models/{m}/versions/{v}` of every registered version, read page by page."""

    def models(token: str) -> Any:
        request = rpb.ListModelsRequest(page_size=_PAGE_SIZE, page_token=token)
        return stub.ListModels(request, timeout=REGISTRY_DEADLINE_S)

    for model in _pages(models, "models", "models"):
        versions = partial(_list_versions, stub, model.name)
        for version in _pages(versions, model.name, "model_versions"):
            yield version.name


def _list_versions(stub: Any, parent: str, token: str) -> Any:
    request = rpb.ListModelVersionsRequest(parent=parent, page_size=_PAGE_SIZE, page_token=token)
    return stub.ListModelVersions(request, timeout=REGISTRY_DEADLINE_S)


def _pages(call: Callable[[str], Any], name: str, items: str) -> Iterator[Any]:
    """The `items` of every page `call(page_token)` returns; registry errors as domain errors."""
    token = ""
    while True:
        page = registry_call(partial(call, token), name, "model", "model")
        yield from getattr(page, items)
        token = page.next_page_token
        if not token:
            return


def _entry(key: str, model: inference_pb2.LoadedModel | None) -> ModelIndex:
    """The index entry of a version name or checkpoint directory, in memory or not."""
    if key.startswith(_MODELS) and _VERSIONS in key:
        name, _, version = key.removeprefix(_MODELS).partition(_VERSIONS)
    else:
        name, version = key, ""
    if model is None:
        return ModelIndex(name=name, version=version, state=UNAVAILABLE, reason=UNLOADED)
    state = _STATES.get(model.state, UNAVAILABLE)
    reason = model.error.message if model.HasField("error") else ""
    return ModelIndex(name=name, version=version, state=state, reason=reason)


# ModelStreamInfer.

Answer = Callable[[oip.ModelInferRequest], AsyncGenerator[oip.ModelInferResponse, None]]


async def stream_infer(
    requests: AsyncIterator[oip.ModelInferRequest], answer: Answer
) -> AsyncGenerator[oip.ModelStreamInferResponse, None]:
    """The responses to a stream of requests, `answer(request)` giving each request's responses
    (it raises TunixError for a bad request). Requests run concurrently; a request's error is an
    `error_message` response. Closing this iterator (the caller went away) cancels every answer
    still running."""
    queue: asyncio.Queue[oip.ModelStreamInferResponse | None] = asyncio.Queue()
    running: set[asyncio.Future[None]] = set()

    async def read() -> None:
        async for request in requests:
            task = asyncio.ensure_future(_answer(answer(request), queue.put_nowait))
            running.add(task)
            task.add_done_callback(running.discard)
        while running:
            await asyncio.wait(set(running))

    reader = asyncio.ensure_future(read())
    # Whatever ends the reader (the last answer, or an undecodable request) ends the responses.
    reader.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (response := await queue.get()) is not None:
            yield response
        reader.result()  # an undecodable request fails the call, as any RPC's bad body does
    finally:
        reader.cancel()
        for task in list(running):
            task.cancel()


async def _answer(
    responses: AsyncGenerator[oip.ModelInferResponse, None],
    put: Callable[[oip.ModelStreamInferResponse], None],
) -> None:
    """Puts one request's responses, or its error, on the stream."""
    try:
        async with aclosing(responses):
            async for response in responses:
                put(oip.ModelStreamInferResponse(infer_response=response))
    except TunixError as error:
        put(oip.ModelStreamInferResponse(error_message=status_proto_for(error).message))
    except Exception:
        # As for a unary RPC: the traceback goes to the log under an id, nothing internal out.
        error_id = uuid.uuid4().hex
        log.exception("stream request failed", extra={"error_id": error_id})
        put(oip.ModelStreamInferResponse(error_message=f"internal error (error id {error_id})"))


async def prepare_in_thread(
    blocking: BlockingPool, prepare: Callable[[], generation.Request]
) -> generation.Request:
    """`prepare()` on one of `blocking`'s threads. Cancelled while it runs (the client went
    away), the thread still finishes, and the model it acquired is released then instead of
    held forever."""
    future = asyncio.ensure_future(blocking.run(prepare))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_prepared)
        raise


def _close_prepared(future: asyncio.Future[generation.Request]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()
