"""The domain error → status table covers the whole hierarchy in tunix_rt.common.errors."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from tunix_rt.common import errors
from tunix_rt.common.error_status import (
    ERROR_DOMAIN,
    MAX_DETAILS_BYTES,
    MAX_MESSAGE_BYTES,
    code_for,
    shorten_quoted,
    status_proto_for,
)
from tunix_rt.common.errors import TunixError


def all_subclasses(cls: type[TunixError]) -> list[type[TunixError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


DOMAIN_ERRORS = [cls for cls in all_subclasses(TunixError) if cls.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=lambda cls: cls.__name__)
def test_every_domain_error_has_a_code(cls: type[TunixError]) -> None:
    # A new error class in errors.py must get a row in CODE_BY_ERROR (or inherit one).
    error = cls.__new__(cls)  # no __init__: constructors differ per class
    assert code_for(error) not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, None)


def test_subclass_inherits_its_parents_code() -> None:
    class TraceNotFound(errors.NotFound):
        pass

    assert code_for(TraceNotFound("trace", "traces/t1")) == grpc.StatusCode.NOT_FOUND


def test_base_error_is_unknown_with_its_message() -> None:
    status = status_proto_for(TunixError("odd", reason="ODD", metadata={"k": "v"}))
    assert status.code == grpc.StatusCode.UNKNOWN.value[0]
    assert status.message == "odd"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == ("ODD", ERROR_DOMAIN, {"k": "v"})


def test_several_field_violations() -> None:
    error = errors.InvalidArgument.fields(
        [
            errors.FieldViolation("page_size", "must be <= 1000"),
            errors.FieldViolation("filter", "unknown field 'x'"),
        ]
    )
    status = status_proto_for(error)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["page_size", "filter"]


def test_long_quoted_values_are_shortened_to_their_head_and_length() -> None:
    message = shorten_quoted(f"model_id: {'x' * 20_000!r} is invalid; it's the registry's 'm1'")
    head = "x" * 40
    assert message == (
        f"model_id: '{head}…' (20000 characters) is invalid; it's the registry's 'm1'"
    )


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidArgument.fields(
            [errors.FieldViolation(f"steps[{i}].content" * 20, "é" * 5_000) for i in range(500)]
        ),
        errors.NotFound("model", "m" * 100_000),
        TunixError("x" * 100_000, metadata={str(i) * 300: "v" * 5_000 for i in range(200)}),
    ],
    ids=["many_violations", "huge_name", "huge_metadata"],
)
def test_status_size_is_bounded(error: TunixError) -> None:
    status = status_proto_for(error)
    assert status.ByteSize() <= MAX_DETAILS_BYTES
    assert len(status.message.encode()) <= MAX_MESSAGE_BYTES
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == error.reason


def test_bounding_keeps_field_names() -> None:
    error = errors.InvalidArgument.fields(
        [errors.FieldViolation(f"f{i}", "x" * 10_000) for i in range(40)]
    )
    bad_request = error_details_pb2.BadRequest()
    assert status_proto_for(error).details[1].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == [f"f{i}" for i in range(8)]
