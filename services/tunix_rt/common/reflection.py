"""gRPC server reflection (what `grpcurl list` / `grpcurl describe` use) for a tunix-rt server.

The stock servicer looks symbols up in protobuf's default descriptor pool, which (upb backend)
cannot find a method symbol such as `tunix_rt.v1.RegistryService.GetTrace`, so
`grpcurl describe <Service>.<Method>` failed. `MethodAwarePool` resolves a method to the file of its
service and defers everything else to the default pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection

REFLECTION_SERVICE_NAME: str = reflection.SERVICE_NAME


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


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection for `service_names` plus the reflection service itself."""
    names = [*service_names, REFLECTION_SERVICE_NAME]
    reflection.enable_server_reflection(names, server, pool=MethodAwarePool())
