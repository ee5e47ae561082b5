"""The Open Inference Protocol v2 (`inference.GRPCInferenceService`) over the same models, so
standard clients such as `tritonclient.grpc` call tunix-rt unchanged.

A model's name is a model reference (`reasoning-small@candidate`, `reasoning-small/3`,
`reasoning-small`, `models/m/versions/3`); a non-empty `model_version` names the version of a
bare model name. Every model has one input and one output:

    text_input   BYTES [N]   prompts (UTF-8), rendered with the model's chat template unless the
                             request parameter `raw_prompt` is true
    text_output  BYTES [N]   the generated texts, in raw_output_contents

Inputs may travel as `contents.bytes_contents` or as `raw_input_contents` (what tritonclient
sends: each element a 4-byte little-endian length, then its bytes). Request parameters
`max_new_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `max_reasoning_tokens` and
`raw_prompt` set sampling for every element, with the ranges of SamplingParams (a `seed` may
also be a uint64_param: its 64 bits are the int64 seed); the N prompts are generated
concurrently, so they share the engine's batches.

Triton's RepositoryIndex and ModelStreamInfer (token streaming as Triton's decoupled LLM backends
do it) are served too; `oip_triton` says how.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from importlib import metadata
from typing import Any

import grpc

from tunix_rt.common.blocking import BlockingPool
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.inference import generation, oip_triton
from tunix_rt.inference.engines import base
from tunix_rt.inference.model_store import ModelStore
from tunix_rt.v1 import inference_pb2, oip_grpc_service_pb2_grpc
from tunix_rt.v1 import oip_grpc_service_pb2 as oip

SERVICE_NAME = "inference.GRPCInferenceService"
INPUT_NAME = "text_input"
OUTPUT_NAME = "text_output"
BYTES = "BYTES"
PLATFORM = "tunix-rt"
_INT_PARAMETERS = ("max_new_tokens", "top_k", "max_reasoning_tokens")
_FLOAT_PARAMETERS = ("temperature", "top_p")
_LENGTH = struct.Struct("<I")
_INT64_END = 1 << 63


def decode_bytes_tensor(raw: bytes, field: str) -> list[bytes]:
    """The elements of a raw BYTES tensor: 4-byte little-endian length-prefixed strings."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + _LENGTH.size > len(raw):
            raise InvalidArgument.field(field, "a BYTES element's 4-byte length is cut short")
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + size > len(raw):
            raise InvalidArgument.field(field, "a BYTES element is longer than the tensor")
        elements.append(raw[offset : offset + size])
        offset += size
    return elements


def encode_bytes_tensor(elements: list[bytes]) -> bytes:
    """The raw form of a BYTES tensor (see decode_bytes_tensor)."""
    return b"".join(_LENGTH.pack(len(e)) + e for e in elements)


def reference_of(name: str, version: str) -> str:
    """The model reference of an OIP model name and version."""
    if not name.strip():
        raise InvalidArgument.field("model_name", "must not be empty")
    if version and "@" not in name and "/" not in name:
        return f"{name}/{version}"
    return name


def _parameter(value: oip.InferParameter) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return getattr(value, kind) if kind else None


def _is_true(given: Any) -> bool:
    """A flag parameter's value, given as a bool, a string or a number."""
    return str(given).lower() in ("true", "1")


def sampling_of(parameters: Any) -> tuple[inference_pb2.SamplingParams, bool]:
    """SamplingParams and raw_prompt from the request's parameters (their ranges are checked
    later, with the rest of the request, by `validation.sampling_from_proto`)."""
    params = inference_pb2.SamplingParams()
    raw_prompt = False
    for key, value in parameters.items():
        given = _parameter(value)
        if key == "raw_prompt":
            raw_prompt = _is_true(given)
        elif key in _FLOAT_PARAMETERS or key in _INT_PARAMETERS or key == "seed":
            _set_number(params, key, given)
    return params, raw_prompt


def _set_number(params: inference_pb2.SamplingParams, key: str, given: Any) -> None:
    field = f"parameters.{key}"
    try:
        number = float(given) if key in _FLOAT_PARAMETERS else int(given)
    except (TypeError, ValueError, OverflowError):  # int(inf) overflows, int(nan) is a ValueError
        raise InvalidArgument.field(field, f"must be a number, got {given!r}") from None
    if key == "seed" and _INT64_END <= number < 2 * _INT64_END:
        number -= 2 * _INT64_END  # a uint64_param seed: the same 64 bits as an int64
    try:
        setattr(params, key, number)
    except ValueError:  # past the field's integer type
        raise InvalidArgument.field(field, f"is out of range, got {given!r}") from None


def prompts_of(request: oip.ModelInferRequest) -> list[str]:
    """The prompts of the `text_input` tensor."""
    for index, tensor in enumerate(request.inputs):
        if tensor.name != INPUT_NAME:
            continue
        field = f"inputs[{index}]"
        if tensor.datatype != BYTES:
            raise InvalidArgument.field(
                f"{field}.datatype", f"must be BYTES, got {tensor.datatype}"
            )
        if request.raw_input_contents:
            if index >= len(request.raw_input_contents):
                raise InvalidArgument.field("raw_input_contents", f"has no entry for {field}")
            elements = decode_bytes_tensor(request.raw_input_contents[index], "raw_input_contents")
        else:
            elements = list(tensor.contents.bytes_contents)
        count = 1
        for dim in tensor.shape:
            count *= dim
        if tensor.shape and count != len(elements):
            raise InvalidArgument.field(
                f"{field}.shape", f"says {count} elements, but {len(elements)} were sent"
            )
        if not elements:
            raise InvalidArgument.field(field, "holds no prompt")
        try:
            return [e.decode("utf-8") for e in elements]
        except UnicodeDecodeError:
            raise InvalidArgument.field(field, "prompts must be UTF-8") from None
    raise InvalidArgument.field("inputs", f"needs a BYTES tensor named {INPUT_NAME!r}")


def _version_number(model_version: str) -> str:
    return model_version.rsplit("/", 1)[-1] if model_version else ""


def _tensor(name: str) -> oip.ModelMetadataResponse.TensorMetadata:
    return oip.ModelMetadataResponse.TensorMetadata(name=name, datatype=BYTES, shape=[-1])


def _check_outputs(request: oip.ModelInferRequest) -> None:
    for index, wanted in enumerate(request.outputs):
        if wanted.name != OUTPUT_NAME:
            raise InvalidArgument.field(
                f"outputs[{index}].name", f"the only output is {OUTPUT_NAME!r}"
            )


def _response(
    request: oip.ModelInferRequest, model_version: str, texts: list[str] | None
) -> oip.ModelInferResponse:
    """The response to `request` with `texts` as `text_output` (None: no output at all)."""
    response = oip.ModelInferResponse(
        model_name=request.model_name, model_version=_version_number(model_version), id=request.id
    )
    if texts is not None:
        response.outputs.add(name=OUTPUT_NAME, datatype=BYTES, shape=[len(texts)])
        response.raw_output_contents.append(
            encode_bytes_tensor([text.encode("utf-8") for text in texts])
        )
    return response


class OipServicer(oip_grpc_service_pb2_grpc.GRPCInferenceServiceServicer):
    """GRPCInferenceService over a ModelStore; RepositoryIndex lists the registry's models
    through `registry_stub` (a synchronous RegistryService stub; None: only those in memory)."""

    def __init__(self, store: ModelStore, registry_stub: Any, blocking: BlockingPool) -> None:
        self.store = store
        self.registry_stub = registry_stub
        self.blocking = blocking

    async def ServerLive(
        self, request: oip.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oip.ServerLiveResponse:
        return oip.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: oip.ServerReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oip.ServerReadyResponse:
        # Models load on demand, so a live server is ready to take requests for any of them.
        return oip.ServerReadyResponse(ready=True)

    async def ModelReady(
        self, request: oip.ModelReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oip.ModelReadyResponse:
        reference = reference_of(request.name, request.version)
        ready = await self.blocking.run(self.store.is_ready, reference)
        return oip.ModelReadyResponse(ready=ready)

    async def ServerMetadata(
        self, request: oip.ServerMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oip.ServerMetadataResponse:
        try:
            version = metadata.version("tunix-rt")
        except metadata.PackageNotFoundError:
            version = "0"
        return oip.ServerMetadataResponse(name=PLATFORM, version=version, extensions=[])

    async def ModelMetadata(
        self, request: oip.ModelMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oip.ModelMetadataResponse:
        reference = reference_of(request.name, request.version)
        target, _ = await self.blocking.run(self.store.resolve, reference)
        version = _version_number(target.model_version)
        return oip.ModelMetadataResponse(
            name=request.name,
            versions=[version] if version else [],
            platform=PLATFORM,
            inputs=[_tensor(INPUT_NAME)],
            outputs=[_tensor(OUTPUT_NAME)],
        )

    async def ModelInfer(
        self, request: oip.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oip.ModelInferResponse:
        reference = reference_of(request.model_name, request.model_version)
        _check_outputs(request)
        prompts = prompts_of(request)
        params, raw_prompt = sampling_of(request.parameters)
        texts = await asyncio.gather(
            *(self._one(reference, prompt, params, raw_prompt, context) for prompt in prompts)
        )
        return _response(request, texts[0][1], [text for text, _ in texts])

    async def RepositoryIndex(
        self, request: oip.RepositoryIndexRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> oip.RepositoryIndexResponse:
        return await self.blocking.run(
            oip_triton.repository_index, self.store, self.registry_stub, request
        )

    async def ModelStreamInfer(
        self,
        request_iterator: AsyncIterator[oip.ModelInferRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[oip.ModelStreamInferResponse]:
        # Closing this generator (grpc does when the call ends) cancels every generation. The
        # context is never touched: answers run on tasks that may outlive the call.
        async with aclosing(oip_triton.stream_infer(request_iterator, self._stream)) as responses:
            async for response in responses:
                yield response

    async def _stream(
        self, request: oip.ModelInferRequest
    ) -> AsyncGenerator[oip.ModelInferResponse, None]:
        """The responses to one request of ModelStreamInfer: a piece each, then the final one."""
        reference = reference_of(request.model_name, request.model_version)
        _check_outputs(request)
        prompts = prompts_of(request)
        if len(prompts) != 1:
            raise InvalidArgument.field(
                "inputs", f"a streamed request holds one prompt, got {len(prompts)}"
            )
        params, raw_prompt = sampling_of(request.parameters)
        wanted = request.parameters.get(oip_triton.EMPTY_FINAL_PARAMETER)
        empty_final = wanted is not None and _is_true(_parameter(wanted))
        prepared = await oip_triton.prepare_in_thread(
            self.blocking,
            lambda: generation.prepare(self.store, reference, prompts[0], params, raw_prompt),
        )
        try:
            version = prepared.served.model_version
            async for event in generation.events(prepared):
                if isinstance(event, base.Piece):
                    response = _response(request, version, [event.text])
                elif event.finish_reason == base.CANCELLED:
                    return
                else:
                    response = _response(request, version, None if empty_final else [""])
                final = not isinstance(event, base.Piece)
                response.parameters[oip_triton.FINAL_PARAMETER].bool_param = final
                yield response
        finally:
            prepared.close()

    async def _one(
        self,
        reference: str,
        prompt: str,
        params: inference_pb2.SamplingParams,
        raw_prompt: bool,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tuple[str, str]:
        prepared = await self.blocking.run(
            generation.prepare, self.store, reference, prompt, params, raw_prompt
        )
        context.add_done_callback(lambda _: prepared.cancel.set())
        try:
            text, _ = await generation.generate_text(prepared)
        finally:
            prepared.close()
        return text, prepared.served.model_version
