"""gRPC server reflection (what `grpcurl list` / `buf curl` use) for a tunix-rt server, served as
both `grpc.reflection.v1` (what current tools ask for first) and `grpc.reflection.v1alpha` (what
older tools such as grpcurl 1.8 know).

The stock servicer looks symbols up in protobuf's default descriptor pool, which (upb backend)
cannot find a method symbol such as `tunix_rt.v1.RegistryService.GetTrace`, so
`grpcurl describe <Service>.<Method>` failed. `MethodAwarePool` resolves a method to the file of its
service and defers everything else to the default pool.

grpcio-reflection ships only the v1alpha service. The v1 protocol is the v1alpha one under another
package (grpc-proto made `grpc/reflection/v1/reflection.proto` by renaming the package: the same
messages with the same field numbers), so the same servicer answers both, and the v1 file
descriptor is the v1alpha one with its package renamed, registered in the default pool so that
reflection describes the v1 service too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
V1_PACKAGE = "grpc.reflection.v1"
V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
# Both reflection services, as `list` shows them.
REFLECTION_SERVICE_NAMES: tuple[str, ...] = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)


class MethodAwarePool:
    """A descriptor pool view whose `FindFileContainingSymbol` also knows service methods."""

    def __init__(self, pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self._pool = pool if pool is not None else descriptor_pool.Default()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str) -> FileDescriptor:
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service_name, _, method = symbol.rpartition(".")
            try:
                service = self._pool.FindServiceByName(service_name)
            except KeyError:
                service = None
            if service is None or method not in service.methods_by_name:
                raise
            file: FileDescriptor = service.file
            return file


def v1_file_descriptor(pool: descriptor_pool.DescriptorPool | None = None) -> FileDescriptor:
    """`grpc/reflection/v1/reflection.proto` in `pool` (the default one): added, derived from the
    v1alpha file, unless something already registered it."""
    pool = pool if pool is not None else descriptor_pool.Default()
    try:
        existing: FileDescriptor = pool.FindFileByName(V1_FILE)
        return existing
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old_prefix = f".{reflection_pb2.DESCRIPTOR.package}."
    proto.name, proto.package = V1_FILE, V1_PACKAGE
    proto.ClearField("options")  # v1alpha's file options (deprecated, java package) are not v1's
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old_prefix):
                field.type_name = f".{V1_PACKAGE}.{field.type_name[len(old_prefix) :]}"
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old_prefix, f".{V1_PACKAGE}.", 1)
            method.output_type = method.output_type.replace(old_prefix, f".{V1_PACKAGE}.", 1)
    pool.AddSerializedFile(proto.SerializeToString())
    added: FileDescriptor = pool.FindFileByName(V1_FILE)
    return added


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection, v1 and v1alpha, for `service_names` plus the reflection services."""
    v1_file_descriptor()
    servicer = reflection.aio.ReflectionServicer(
        [*service_names, *REFLECTION_SERVICE_NAMES], pool=MethodAwarePool()
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    # The same bidirectional stream under the v1 name; the v1alpha message classes read and write
    # the v1 messages, whose wire format is the same.
    v1_method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                V1_SERVICE_NAME, {"ServerReflectionInfo": v1_method}
            ),
        )
    )
