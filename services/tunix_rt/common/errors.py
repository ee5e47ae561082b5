"""Domain exceptions shared by every tunix-rt service; the error interceptor maps them to statuses.

Domain code raises these (never a bare `Exception`); only the servicer boundary knows gRPC::

    TunixError                      base; never raised itself
    ├── InvalidArgument             INVALID_ARGUMENT  + BadRequest field violations
    ├── NotFound                    NOT_FOUND         + ResourceInfo
    ├── AlreadyExists               ALREADY_EXISTS    + ResourceInfo
    ├── FailedPrecondition          FAILED_PRECONDITION + ErrorInfo
    ├── ResourceExhausted           RESOURCE_EXHAUSTED  + ErrorInfo
    ├── Aborted                     ABORTED (a concurrent change won; retry) + ErrorInfo
    ├── Unauthenticated             UNAUTHENTICATED
    └── Unavailable                 UNAVAILABLE (a dependency is down; retry) + ErrorInfo
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: `field` is a path such as `trace.steps[2].content`."""

    field: str
    description: str


class TunixError(Exception):
    """Base of all tunix-rt domain errors; `reason` is a stable UPPER_SNAKE machine code."""

    reason: str = "ERROR"

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(TunixError):
    """The request itself is wrong; `violations` name each bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations: list[FieldViolation] = list(violations or [])

    @classmethod
    def field(cls, field_path: str, description: str) -> InvalidArgument:
        """One violation, with a message that names the field."""
        return cls(f"{field_path}: {description}", [FieldViolation(field_path, description)])

    @classmethod
    def fields(cls, violations: list[FieldViolation]) -> InvalidArgument:
        """Several violations; the message names every field."""
        text = "; ".join(f"{v.field}: {v.description}" for v in violations)
        return cls(text, violations)


@dataclass
class _Resource:
    resource_type: str
    resource_name: str
    description: str = field(default="")


class NotFound(TunixError):
    """A named resource does not exist."""

    reason = "NOT_FOUND"

    def __init__(self, resource_type: str, resource_name: str, message: str | None = None) -> None:
        super().__init__(message or f"{resource_type} {resource_name!r} not found")
        self.resource = _Resource(resource_type, resource_name)


class AlreadyExists(TunixError):
    """A resource with that name already exists."""

    reason = "ALREADY_EXISTS"

    def __init__(self, resource_type: str, resource_name: str, message: str | None = None) -> None:
        super().__init__(message or f"{resource_type} {resource_name!r} already exists")
        self.resource = _Resource(resource_type, resource_name)


class FailedPrecondition(TunixError):
    """The system is not in a state that allows the operation (e.g. an illegal state change)."""

    reason = "FAILED_PRECONDITION"


class ResourceExhausted(TunixError):
    """A quota, budget or size limit would be exceeded."""

    reason = "RESOURCE_EXHAUSTED"


class Aborted(TunixError):
    """A concurrent change conflicted with this one; the caller may retry."""

    reason = "ABORTED"


class Unauthenticated(TunixError):
    """Missing or wrong credentials."""

    reason = "UNAUTHENTICATED"


class Unavailable(TunixError):
    """A dependency (database, another service) cannot be reached now; the caller may retry."""

    reason = "UNAVAILABLE"
