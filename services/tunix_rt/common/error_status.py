"""Domain errors (`tunix_rt.common.errors`) as gRPC statuses with `google.rpc.Status` details.

Every status carries a `google.rpc.ErrorInfo` (reason, domain "tunix-rt", metadata) so a client
can branch on a stable reason (AIP-193); InvalidArgument adds a `BadRequest` naming each field,
NotFound / AlreadyExists a `ResourceInfo`. Read them on the client with
`grpc_status.rpc_status.from_call(err)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from tunix_rt.common.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    TunixError,
    Unauthenticated,
    Unavailable,
)

ERROR_DOMAIN = "tunix-rt"

CODE_BY_ERROR: Mapping[type[TunixError], grpc.StatusCode] = MappingProxyType(
    {
        InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        NotFound: grpc.StatusCode.NOT_FOUND,
        AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
        ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
        Aborted: grpc.StatusCode.ABORTED,
        Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        Unavailable: grpc.StatusCode.UNAVAILABLE,
    }
)


def code_for(error: TunixError) -> grpc.StatusCode:
    """The status code of `error`, found along its MRO so subclasses inherit their parent's code.

    A TunixError outside the table (the base class itself) gives UNKNOWN: its message is domain
    text, safe to show, but no code claims to describe it.
    """
    for cls in type(error).__mro__:
        code = CODE_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.UNKNOWN


def status_proto_for(error: TunixError) -> status_pb2.Status:
    """`error` as a google.rpc.Status: code, its message, and details."""
    status = status_pb2.Status(code=code_for(error).value[0], message=error.message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=dict(error.metadata)
        )
    )
    if isinstance(error, InvalidArgument):
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    elif isinstance(error, NotFound | AlreadyExists):
        status.details.add().Pack(
            error_details_pb2.ResourceInfo(
                resource_type=error.resource.resource_type,
                resource_name=error.resource.resource_name,
                description=error.message,
            )
        )
    return status


def grpc_status_for(error: TunixError) -> grpc.Status:
    """`error` as a grpc.Status for `context.abort_with_status` (details in trailing metadata)."""
    return rpc_status.to_status(status_proto_for(error))


def internal_status(error_id: str) -> grpc.Status:
    """INTERNAL for an unexpected exception: only an id to find the logged traceback by."""
    status = status_pb2.Status(
        code=grpc.StatusCode.INTERNAL.value[0], message=f"internal error (id={error_id})"
    )
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason="INTERNAL", domain=ERROR_DOMAIN, metadata={"error_id": error_id}
        )
    )
    return rpc_status.to_status(status)


def unimplemented_status(method: str) -> grpc.Status:
    """UNIMPLEMENTED for a servicer method that raised NotImplementedError (the generated base)."""
    status = status_pb2.Status(
        code=grpc.StatusCode.UNIMPLEMENTED.value[0], message=f"{method} is not implemented"
    )
    return rpc_status.to_status(status)
