"""Errors raised by use cases; the API layer maps each class to one status code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field, reported as a google.rpc.BadRequest violation."""

    field: str
    description: str


class DomainError(Exception):
    """Base class: `reason` becomes ErrorInfo.reason, `message` the status message."""

    default_reason = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: Mapping[str, str] = metadata or {}


class InvalidArgument(DomainError):
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: list[FieldViolation] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = violations or []


class NotFound(DomainError):
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    default_reason = "ALREADY_EXISTS"


class PermissionDenied(DomainError):
    default_reason = "PERMISSION_DENIED"


class FailedPrecondition(DomainError):
    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    default_reason = "ABORTED"


@dataclass
class Violations:
    """Collects field violations so a request reports every bad field at once."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def raise_if_any(self) -> None:
        if self.items:
            fields = ", ".join(v.field for v in self.items)
            raise InvalidArgument(f"invalid request: {fields}", violations=self.items)


def invalid(field_path: str, description: str) -> InvalidArgument:
    """An InvalidArgument for a single bad field."""
    return InvalidArgument(
        f"invalid {field_path}: {description}",
        violations=[FieldViolation(field_path, description)],
    )


def etag_mismatch() -> Aborted:
    return Aborted(
        "the resource changed since it was read (etag mismatch); read it again and retry",
        reason="ETAG_MISMATCH",
    )
