"""What the registry client's call groups share: the registry's endpoint, which calls gRPC may
retry, default deadlines and page size, and the stub and deadlines of one connected client."""

from __future__ import annotations

import grpc

from tunix_rt.client.channel import DEFAULT_REGISTRY_ADDRESS, REGISTRY_ENV, idempotent_methods
from tunix_rt.client.service_client import Endpoint, ServiceClient
from tunix_rt.v1 import registry_service_pb2 as pb
from tunix_rt.v1.registry_service_pb2_grpc import RegistryServiceStub

REGISTRY_SERVICE = "tunix_rt.v1.RegistryService"

# Safe to send twice for reasons the method names do not show (see channel.idempotent_methods for
# the rule that covers reads and creates with a request_id). SetModelAlias is deliberately absent: a
# retry that lands after another client moved the alias would move it back.
REGISTRY_IDEMPOTENT = idempotent_methods(
    pb.DESCRIPTOR.services_by_name["RegistryService"],
    extra={
        # Its request_id travels in the first message's options; import_traces always sets one.
        # gRPC replays a client stream only while it fits the per-call retry buffer (256 KiB by
        # default), so a large import is retried only if it fails before that much was sent.
        "ImportTraces",
        # Content-addressed: the same bytes are stored once, so a second upload changes nothing.
        "UploadArtifact",
        # Events whose sequence is already stored are skipped.
        "AppendRunEvents",
        # Recording the same step again replaces it with the same values.
        "CreateCheckpoint",
    },
)

# A unary call that takes longer than this has hung: fail it rather than the user's patience.
DEFAULT_TIMEOUT_S = 30.0
# Streams (imports, exports, downloads) last as long as their data does: no deadline by default.
DEFAULT_STREAM_TIMEOUT_S: float | None = None
# List page size: large enough for few round trips, small enough that a page of big traces (up to
# 1 MiB each) stays far below the 64 MiB message limit.
DEFAULT_PAGE_SIZE = 100


class RegistryCalls(ServiceClient[RegistryServiceStub]):
    """The base of every group of registry calls: one channel, its stub, default deadlines."""

    ENDPOINT = Endpoint(
        REGISTRY_SERVICE, REGISTRY_ENV, DEFAULT_REGISTRY_ADDRESS, REGISTRY_IDEMPOTENT
    )

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT_S,
    ) -> None:
        super().__init__(channel, timeout=timeout, stream_timeout=stream_timeout)
        self._stub = RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
