"""Registry calls made by the inference service, and their failures as domain errors: the
caller's NOT_FOUND and INVALID_ARGUMENT stay theirs (naming the field), anything else means the
registry is unavailable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from tunix_rt.common.errors import InvalidArgument, NotFound, TunixError, Unavailable


def registry_error(
    err: grpc.RpcError, name: str, field: str = "model", kind: str = "model"
) -> TunixError:
    """The domain error of a failed registry call about `name` (a `kind`, e.g. model; "" when
    the name says what it is, such as `datasets/x`), blamed on request field `field`."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    if code == grpc.StatusCode.NOT_FOUND:
        what = f"{kind} {name!r}" if kind else repr(name)
        return NotFound(kind or "resource", name, f"{what} not found: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument.field(field, f"{name!r}: {details}")
    code_name = code.name if code is not None else "UNKNOWN"
    return Unavailable(f"registry call failed: {code_name}: {details}")


def registry_call(call: Callable[[], Any], name: str, field: str, kind: str = "") -> Any:
    """Runs a registry call about `name`, its failure turned into `registry_error`."""
    try:
        return call()
    except grpc.RpcError as err:
        raise registry_error(err, name, field, kind) from None
