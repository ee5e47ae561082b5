"""InferenceService: proto in, proto out. Model bookkeeping is `model_store`'s, one generation is
`generation`'s, BatchPredict is `prediction`'s and Evaluate `evaluation`'s; this module only
adapts them to grpc.aio. Domain errors propagate to the error interceptor, which maps them to
statuses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import aclosing
from typing import Any

import grpc

from tunix_rt.common import pagination
from tunix_rt.common.blocking import BlockingPool
from tunix_rt.inference import evaluation, generation, prediction
from tunix_rt.inference.engines import base
from tunix_rt.inference.model_store import BACKEND_NAMES, PRECISION_NAMES, ModelStore
from tunix_rt.inference.threaded import iterate_in_thread
from tunix_rt.v1 import inference_service_pb2 as pb
from tunix_rt.v1 import inference_service_pb2_grpc


class CallContext:
    """What evaluation code running on a worker thread may ask of its RPC: whether the caller is
    still there and how much time is left (grpc.aio's context is the event loop's)."""

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        # Everything read from the grpc context is read here, on the event loop while the call
        # is alive: worker threads must not touch a call that grpc.aio may already have freed
        # (asking a cancelled call for its deadline or peer can segfault, see interceptors).
        remaining = context.time_remaining()
        self._deadline = None if remaining is None else time.monotonic() + remaining
        self._metadata = context.invocation_metadata()
        self._done = threading.Event()
        context.add_done_callback(lambda _: self._done.set())

    def is_active(self) -> bool:
        """False once the client cancelled, the deadline passed or the server is stopping."""
        if self._done.is_set():
            return False
        remaining = self.time_remaining()
        return remaining is None or remaining > 0

    def cancelled(self) -> bool:
        return not self.is_active()

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def stop(self) -> None:
        self._done.set()

    def invocation_metadata(self) -> Any:
        return self._metadata


class InferenceServicer(inference_service_pb2_grpc.InferenceServiceServicer):
    """The InferenceService RPCs over one ModelStore."""

    def __init__(self, store: ModelStore, registry_stub: Any, blocking: BlockingPool) -> None:
        self.store = store
        self.registry_stub = registry_stub
        self.blocking = blocking

    async def LoadModel(
        self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.LoadModelResponse:
        served = await self.blocking.run(
            self.store.acquire,
            request.model,
            backend=BACKEND_NAMES.get(request.backend, ""),
            precision=PRECISION_NAMES.get(request.precision, ""),
            # proto3 cannot tell "not asked" from false: `pin` pins, unloading unpins.
            pin=True if request.pin else None,
        )
        try:
            return pb.LoadModelResponse(loaded_model=served.loaded_model)
        finally:
            served.release()

    async def UnloadModel(
        self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.UnloadModelResponse:
        model = await self.blocking.run(self.store.unload, request.model)
        return pb.UnloadModelResponse(loaded_model=model)

    async def GetLoadedModel(
        self, request: pb.GetLoadedModelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetLoadedModelResponse:
        model = await self.blocking.run(self.store.get, request.model)
        return pb.GetLoadedModelResponse(loaded_model=model)

    async def ListLoadedModels(
        self, request: pb.ListLoadedModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListLoadedModelsResponse:
        size = pagination.page_size(request.page_size)
        start = int(pagination.decode(request.page_token, "loaded") or 0)
        models = self.store.loaded()
        page = models[start : start + size]
        more = start + size < len(models)
        return pb.ListLoadedModelsResponse(
            loaded_models=page,
            next_page_token=pagination.encode(start + size, "loaded") if more else "",
            memory_budget_bytes=self.store.memory_budget_bytes,
            memory_used_bytes=self.store.memory_used_bytes(),
        )

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GenerateResponse:
        prepared = await self._prepare(request, context)
        try:
            text, finished = await generation.generate_text(prepared)
        finally:
            prepared.close()
        return pb.GenerateResponse(
            text=text,
            model_version=prepared.served.model_version,
            summary=generation.summary(finished, prepared.seed),
        )

    async def GenerateStream(
        self, request: pb.GenerateStreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        prepared = await self._prepare(request, context)
        try:
            first = True
            async for event in generation.events(prepared):
                message = pb.GenerateStreamResponse()
                if first:
                    message.model_version = prepared.served.model_version
                    first = False
                if isinstance(event, base.Piece):
                    message.text = event.text
                    message.token_count = event.token_count
                elif event.finish_reason == base.CANCELLED:
                    return
                else:
                    message.summary.CopyFrom(generation.summary(event, prepared.seed))
                yield message
        finally:
            prepared.close()

    async def BatchPredict(
        self, request: pb.BatchPredictRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.BatchPredictResponse]:
        async with aclosing(
            self._on_thread(prediction.batch_predict, request, context)
        ) as messages:
            async for message in messages:
                yield message

    async def Evaluate(
        self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.EvaluateResponse]:
        async with aclosing(self._on_thread(evaluation.evaluate, request, context)) as messages:
            async for message in messages:
                yield message

    def _on_thread(
        self,
        stream: Callable[[ModelStore, Any, Any, CallContext], Iterator[Any]],
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncGenerator[Any, None]:
        """The messages of a blocking response stream (BatchPredict, Evaluate), produced on a
        thread of their own, which stops once the caller goes away or the messages are closed."""
        call = CallContext(context)
        return iterate_in_thread(
            lambda: stream(self.store, self.registry_stub, request, call),
            call.is_active,
            call.stop,
            "rpc-stream",
        )

    async def _prepare(
        self,
        request: pb.GenerateRequest | pb.GenerateStreamRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> generation.Request:
        prepared = await self.blocking.run(
            generation.prepare,
            self.store,
            request.model,
            request.prompt,
            request.sampling,
            request.raw_prompt,
        )
        # A cancelled call or a passed deadline stops the engine at its next step, even while
        # the handler is not awaiting anything.
        context.add_done_callback(lambda _: prepared.cancel.set())
        return prepared
