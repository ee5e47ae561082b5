"""InferenceClient: a typed Python client of the tunix-rt inference service.

A thin layer over the generated `InferenceServiceStub`, shaped like `RegistryClient` and
`TrainingClient`: plain arguments in, messages out, default deadlines, pages iterated. Anything it
does not wrap is one call away on `client.stub`. Failed calls raise `grpc.RpcError`.

    with InferenceClient.connect("127.0.0.1:50053") as inference:
        reply = inference.generate("reasoning-small@production", "What is 2 + 3?", seed=1)
        print(reply.text, reply.summary.answer)
        for piece in inference.generate_stream("reasoning-small@production", "Why?"):
            print(piece.text, end="", flush=True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import grpc

from tunix_rt.client.channel import idempotent_methods
from tunix_rt.client.service_client import Endpoint, ServiceClient, set_given
from tunix_rt.v1 import backend_pb2, inference_pb2
from tunix_rt.v1 import inference_service_pb2 as pb
from tunix_rt.v1.inference_service_pb2_grpc import InferenceServiceStub

INFERENCE_SERVICE = "tunix_rt.v1.InferenceService"
INFERENCE_ENV = "TUNIX_RT_INFERENCE"
DEFAULT_INFERENCE_ADDRESS = "127.0.0.1:50053"

# Reads, and loads/unloads (loading a loaded model or unloading twice changes nothing more).
# Generation is not retried: a sampled answer sent twice costs twice.
INFERENCE_IDEMPOTENT = idempotent_methods(
    pb.DESCRIPTOR.services_by_name["InferenceService"], extra={"LoadModel"}
)

# A unary call that takes longer than this has hung; generating and loading can take minutes.
DEFAULT_TIMEOUT_S = 300.0
# Streams (generation, prediction, evaluation) run as long as they need.
DEFAULT_STREAM_TIMEOUT_S: float | None = None
DEFAULT_PAGE_SIZE = 100

BACKENDS = {"auto": backend_pb2.BACKEND_UNSPECIFIED, "jax": backend_pb2.BACKEND_JAX}
BACKENDS["torch"] = backend_pb2.BACKEND_TORCH
PRECISIONS = {
    "auto": backend_pb2.PRECISION_UNSPECIFIED,
    "float32": backend_pb2.PRECISION_FLOAT32,
    "mixed_bfloat16": backend_pb2.PRECISION_MIXED_BFLOAT16,
    "bfloat16": backend_pb2.PRECISION_BFLOAT16,
}


def sampling_params(
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    max_new_tokens: int | None = None,
    stop: Sequence[str] = (),
    seed: int | None = None,
    max_reasoning_tokens: int | None = None,
) -> inference_pb2.SamplingParams:
    """SamplingParams from plain values; None leaves the service's default."""
    params = inference_pb2.SamplingParams(stop_sequences=list(stop))
    set_given(
        params,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        max_reasoning_tokens=max_reasoning_tokens,
    )
    return params


class InferenceClient(ServiceClient[InferenceServiceStub]):
    """Calls one inference service over a channel it owns."""

    ENDPOINT = Endpoint(
        INFERENCE_SERVICE, INFERENCE_ENV, DEFAULT_INFERENCE_ADDRESS, INFERENCE_IDEMPOTENT
    )

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT_S,
    ) -> None:
        super().__init__(channel, timeout=timeout, stream_timeout=stream_timeout)
        self._stub = InferenceServiceStub(channel)  # type: ignore[no-untyped-call]

    # Models in memory.

    def load_model(
        self, model: str, *, backend: str = "auto", precision: str = "auto", pin: bool = False
    ) -> inference_pb2.LoadedModel:
        request = pb.LoadModelRequest(
            model=model, backend=BACKENDS[backend], precision=PRECISIONS[precision], pin=pin
        )
        response: pb.LoadModelResponse = self._stub.LoadModel(request, timeout=self.timeout)
        return response.loaded_model

    def unload_model(self, model: str) -> inference_pb2.LoadedModel:
        response: pb.UnloadModelResponse = self._stub.UnloadModel(
            pb.UnloadModelRequest(model=model), timeout=self.timeout
        )
        return response.loaded_model

    def get_loaded_model(self, model: str) -> inference_pb2.LoadedModel:
        response: pb.GetLoadedModelResponse = self._stub.GetLoadedModel(
            pb.GetLoadedModelRequest(model=model), timeout=self.timeout
        )
        return response.loaded_model

    def list_loaded_models(
        self, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> tuple[list[inference_pb2.LoadedModel], int, int]:
        """Every model in memory (most recently used first), the memory used and the budget."""
        models: list[inference_pb2.LoadedModel] = []
        token = ""
        while True:
            response: pb.ListLoadedModelsResponse = self._stub.ListLoadedModels(
                pb.ListLoadedModelsRequest(page_size=page_size, page_token=token),
                timeout=self.timeout,
            )
            models.extend(response.loaded_models)
            token = response.next_page_token
            if not token:
                return models, response.memory_used_bytes, response.memory_budget_bytes

    # Generation.

    def generate(
        self,
        model: str,
        prompt: str,
        *,
        raw_prompt: bool = False,
        sampling: inference_pb2.SamplingParams | None = None,
        **params: object,
    ) -> pb.GenerateResponse:
        """One completion; `params` are `sampling_params` keywords (temperature, seed, ...)."""
        request = pb.GenerateRequest(
            model=model,
            prompt=prompt,
            raw_prompt=raw_prompt,
            sampling=sampling or sampling_params(**params),  # type: ignore[arg-type]
        )
        response: pb.GenerateResponse = self._stub.Generate(request, timeout=self.timeout)
        return response

    def generate_stream(
        self,
        model: str,
        prompt: str,
        *,
        raw_prompt: bool = False,
        sampling: inference_pb2.SamplingParams | None = None,
        **params: object,
    ) -> Iterator[pb.GenerateStreamResponse]:
        """The completion as it is generated; the last message carries the summary. Closing the
        iterator early cancels the generation on the server."""
        request = pb.GenerateStreamRequest(
            model=model,
            prompt=prompt,
            raw_prompt=raw_prompt,
            sampling=sampling or sampling_params(**params),  # type: ignore[arg-type]
        )
        call = self._stub.GenerateStream(request, timeout=self.stream_timeout)
        try:
            yield from call
        finally:
            call.cancel()
