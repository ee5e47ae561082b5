"""Readable one-line descriptions of failed gRPC calls, with their `google.rpc.Status` details.

tunix-rt servers put the useful part of an error in rich status details (DESIGN.md, decision 7):
`BadRequest` field violations for INVALID_ARGUMENT, `ResourceInfo` for NOT_FOUND and
ALREADY_EXISTS, `ErrorInfo` otherwise. A bare `str(grpc.RpcError)` shows none of it and spans many
lines; this module turns an error into `CODE: message [field: why; ...]` for people, and into
field violations for code.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


def rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The `google.rpc.Status` a server attached to `error`, or None.

    Works for sync and asyncio errors alike: both carry code(), details() and trailing_metadata().
    """
    if not hasattr(error, "trailing_metadata"):
        return None
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except ValueError:
        # The status proto disagrees with the call's own code or message: a proxy rewrote one of
        # them. The call's code and message are what the caller saw, so trust those alone.
        return None
    return status


def _unpack(status: status_pb2.Status) -> list[Any]:
    kinds = (
        error_details_pb2.BadRequest,
        error_details_pb2.ResourceInfo,
        error_details_pb2.ErrorInfo,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.QuotaFailure,
    )
    found: list[Any] = []
    for detail in status.details:
        for kind in kinds:
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found.append(message)
    return found


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of the error's `BadRequest` details, in order."""
    status = rich_status(error)
    if status is None:
        return []
    return [
        (v.field, v.description)
        for detail in _unpack(status)
        if isinstance(detail, error_details_pb2.BadRequest)
        for v in detail.field_violations
    ]


def _detail_notes(detail: Any) -> list[str]:
    if isinstance(detail, error_details_pb2.BadRequest):
        return [f"{v.field}: {v.description}" for v in detail.field_violations]
    if isinstance(detail, error_details_pb2.PreconditionFailure | error_details_pb2.QuotaFailure):
        return [v.description for v in detail.violations if v.description]
    if isinstance(detail, error_details_pb2.ResourceInfo):
        return [f"{detail.resource_type} {detail.resource_name}".strip()]
    if isinstance(detail, error_details_pb2.ErrorInfo) and detail.reason:
        return [f"reason {detail.reason}"]
    return []


def describe_rpc_error(error: grpc.RpcError) -> str:
    """One line: `CODE: message`, then in brackets whatever the details add to the message.

    Notes that the message already contains (servers usually name the bad field in it) are left
    out, so nothing is said twice.
    """
    code = error.code() if hasattr(error, "code") else None
    message = (error.details() if hasattr(error, "details") else None) or ""
    code_name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    status = rich_status(error)
    notes: list[str] = []
    if status is not None:
        for detail in _unpack(status):
            for note in _detail_notes(detail):
                if note and note not in message and note != f"reason {code_name}":
                    notes.append(note)
    text = f"{code_name}: {message}" if message else code_name
    if notes:
        text += " [" + "; ".join(dict.fromkeys(notes)) + "]"
    return " ".join(text.split())


class IntegrityError(RuntimeError):
    """Downloaded bytes do not match what the registry says the artifact holds."""
