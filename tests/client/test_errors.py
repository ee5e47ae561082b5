"""Readable errors: rich `google.rpc.Status` details, as a real gRPC server sends them."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tunix_rt.client.channel import ChannelSettings, build_aio_channel, build_channel
from tunix_rt.client.errors import describe_rpc_error, field_violations
from tunix_rt.client.registry import REGISTRY_IDEMPOTENT, REGISTRY_SERVICE, RegistryClient
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2_grpc

from .fake_transport import fake_registry


def _status(code: int, message: str, *details: Message) -> status_pb2.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=code, message=message, details=packed)


def _aborting(status: status_pb2.Status) -> Any:
    def behaviour(request: Any, context: grpc.ServicerContext, attempt: int) -> Any:
        context.abort_with_status(rpc_status.to_status(status))

    return behaviour


def _error_of(status: status_pb2.Status) -> grpc.RpcError:
    with fake_registry({"GetDataset": _aborting(status)}) as (address, _):
        settings = ChannelSettings(address=address)
        with RegistryClient(build_channel(settings, {})) as client:
            with pytest.raises(grpc.RpcError) as caught:
                client.get_dataset("d")
            return caught.value


BAD_REQUEST = error_details_pb2.BadRequest(
    field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="dataset_id", description="is required"),
        error_details_pb2.BadRequest.FieldViolation(
            field="split.eval_fraction", description="must be in [0, 1)"
        ),
    ]
)


def test_field_violations_are_listed_once() -> None:
    # The message already names the first field; only the second is added.
    error = _error_of(_status(code_pb2.INVALID_ARGUMENT, "dataset_id: is required", BAD_REQUEST))
    assert describe_rpc_error(error) == (
        "INVALID_ARGUMENT: dataset_id: is required [split.eval_fraction: must be in [0, 1)]"
    )
    assert field_violations(error) == [
        ("dataset_id", "is required"),
        ("split.eval_fraction", "must be in [0, 1)"),
    ]


def test_resource_info_and_error_info_add_what_the_message_lacks() -> None:
    resource = error_details_pb2.ResourceInfo(resource_type="dataset", resource_name="datasets/d")
    info = error_details_pb2.ErrorInfo(reason="DATASET_IN_USE", domain="tunix-rt")
    error = _error_of(_status(code_pb2.FAILED_PRECONDITION, "in use\nby runs", resource, info))
    assert describe_rpc_error(error) == (
        "FAILED_PRECONDITION: in use by runs [dataset datasets/d; reason DATASET_IN_USE]"
    )
    assert field_violations(error) == []


def test_error_without_details_is_code_and_message() -> None:
    # An ErrorInfo whose reason is just the code says nothing new.
    info = error_details_pb2.ErrorInfo(reason="NOT_FOUND")
    error = _error_of(_status(code_pb2.NOT_FOUND, "dataset 'd' not found", info))
    assert describe_rpc_error(error) == "NOT_FOUND: dataset 'd' not found"


def test_status_that_disagrees_with_the_call_is_ignored() -> None:
    def behaviour(request: Any, context: grpc.ServicerContext, attempt: int) -> Any:
        # A proxy-rewritten status: the details say INVALID_ARGUMENT, the call says INTERNAL.
        rich = _status(code_pb2.INVALID_ARGUMENT, "other", BAD_REQUEST)
        context.set_trailing_metadata((("grpc-status-details-bin", rich.SerializeToString()),))
        context.abort(grpc.StatusCode.INTERNAL, "boom")

    with (
        fake_registry({"GetDataset": behaviour}) as (address, _),
        RegistryClient(build_channel(ChannelSettings(address=address), {})) as client,
        pytest.raises(grpc.RpcError) as caught,
    ):
        client.get_dataset("d")
    assert describe_rpc_error(caught.value) == "INTERNAL: boom"
    assert field_violations(caught.value) == []


def test_aio_errors_are_described_too() -> None:
    status = _status(code_pb2.INVALID_ARGUMENT, "bad request", BAD_REQUEST)

    async def call(address: str) -> str:
        settings = ChannelSettings(address=address)
        async with build_aio_channel(settings, {REGISTRY_SERVICE: REGISTRY_IDEMPOTENT}) as channel:
            stub = registry_service_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
            try:
                await stub.GetDataset(pb.GetDatasetRequest(name="datasets/d"), timeout=5)
            except grpc.aio.AioRpcError as error:
                return describe_rpc_error(error)
            raise AssertionError("the call should fail")

    with fake_registry({"GetDataset": _aborting(status)}) as (address, _):
        text = asyncio.run(call(address))
    assert text == (
        "INVALID_ARGUMENT: bad request "
        "[dataset_id: is required; split.eval_fraction: must be in [0, 1)]"
    )
