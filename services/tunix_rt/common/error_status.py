"""Domain errors (`tunix_rt.common.errors`) as gRPC statuses with `google.rpc.Status` details.

Every status carries a `google.rpc.ErrorInfo` (reason, domain "tunix-rt", metadata) so a client
can branch on a stable reason (AIP-193); InvalidArgument adds a `BadRequest` naming each field,
NotFound / AlreadyExists a `ResourceInfo`. Read them on the client with
`grpc_status.rpc_status.from_call(err)`.

Statuses are bounded: gRPC sends the message and the details as trailing metadata, and a client
refuses trailers past its metadata limit (8 KiB soft, 16 KiB hard by default) with
RESOURCE_EXHAUSTED, hiding the real status. A value quoted in a message (`{value!r}`) longer than
`MAX_QUOTED_CHARS` is shortened, every string is clipped, and the whole status stays under
`MAX_MESSAGE_BYTES` + `MAX_DETAILS_BYTES` however long the caller's bad value was.
"""

from __future__ import annotations

import re
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

# UTF-8 bytes of a status message. gRPC percent-encodes it (grpc-message), up to 3 bytes per byte
# for non-ASCII text, so the header is at most 1.5 KiB.
MAX_MESSAGE_BYTES = 512
# The serialized google.rpc.Status (which repeats the message); base64 makes it ~2.7 KiB at most,
# so both headers together stay near half the 8 KiB soft limit, leaving room for other trailers.
MAX_DETAILS_BYTES = 2048
# A quoted value longer than this many characters is shortened to its head and its length.
MAX_QUOTED_CHARS = 64
_QUOTED_HEAD_CHARS = 40
# (most characters of one detail string, most repeated items) tried in turn until the details fit.
_DETAIL_LIMITS = ((256, 16), (128, 8), (64, 4), (0, 0))
# A Python repr-quoted value: an opening quote at a word boundary, up to the matching closing
# one. Apostrophes inside words ("can't", "registry's") never open one.
_QUOTED = re.compile(r"""(?<![\w'"])('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", re.DOTALL)

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
    """`error` as a google.rpc.Status: code, its message, and details, bounded in size (the
    module docstring says why): the first of `_DETAIL_LIMITS` under which it fits wins."""
    message = clip(shorten_quoted(error.message), MAX_MESSAGE_BYTES)
    for chars, items in _DETAIL_LIMITS:
        status = _status_proto(error, message, chars, items)
        if status.ByteSize() <= MAX_DETAILS_BYTES:
            break
    return status


def _status_proto(error: TunixError, message: str, chars: int, items: int) -> status_pb2.Status:
    """The status of `error` with each detail string clipped to `chars` characters and at most
    `items` metadata entries or field violations (the message lists every field anyway)."""

    def text(value: str) -> str:
        value = shorten_quoted(value)
        if len(value) <= chars:
            return value
        return value[: chars - 1] + "…" if chars else ""

    status = status_pb2.Status(code=code_for(error).value[0], message=message)
    metadata = dict(sorted(error.metadata.items())[:items])
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason=error.reason,
            domain=ERROR_DOMAIN,
            metadata={text(key): text(value) for key, value in metadata.items()},
        )
    )
    if isinstance(error, InvalidArgument) and items:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=text(v.field), description=text(v.description)
                    )
                    for v in error.violations[:items]
                ]
            )
        )
    elif isinstance(error, NotFound | AlreadyExists) and items:
        status.details.add().Pack(
            error_details_pb2.ResourceInfo(
                resource_type=text(error.resource.resource_type),
                resource_name=text(error.resource.resource_name),
                description=text(message),
            )
        )
    return status


def shorten_quoted(text: str) -> str:
    """`text` with every quoted value longer than MAX_QUOTED_CHARS cut to its head, e.g.
    `model_id: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…' (20000 characters) is too long`."""

    def shorten(match: re.Match[str]) -> str:
        quoted = match.group(0)
        inner = quoted[1:-1]
        if len(inner) <= MAX_QUOTED_CHARS:
            return quoted
        quote = quoted[0]
        return f"{quote}{inner[:_QUOTED_HEAD_CHARS]}…{quote} ({len(inner)} characters)"

    return _QUOTED.sub(shorten, text)


def clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes, ending in "…" when cut."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return text
    ellipsis = "…".encode()
    kept = encoded[: max(max_bytes - len(ellipsis), 0)].decode("utf-8", "ignore")
    return kept + "…"


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
