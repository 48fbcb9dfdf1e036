"""The error catalogue: every failure a caller can see, one class per ErrorInfo reason.

A reason's class derives from exactly one class per canonical code (`NotFound`,
`AlreadyExists`, ...), so a reason can only ever be sent with one code; the API layer
maps the code classes to statuses by walking the class hierarchy. The reasons are listed
for callers in the service comment of `organization_service.proto`.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field

# Rejected values are quoted in messages only up to this many characters, so hostile
# input never inflates an error beyond what a client accepts in its trailers.
MAX_QUOTED_CHARACTERS = 64
# A message names this many bad fields; BadRequest details list them all (as many as fit).
_NAMED_FIELDS = 5


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field, reported as a google.rpc.BadRequest violation."""

    field: str
    description: str


class DomainError(Exception):
    """Base class: `reason` becomes ErrorInfo.reason, `message` the status message."""

    reason = "ERROR"
    default_message = "error"

    def __init__(self, message: str = "", *, metadata: Mapping[str, str] | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.metadata: Mapping[str, str] = metadata or {}


def quoted(value: str) -> str:
    """`value` in quotes for a message, cut to MAX_QUOTED_CHARACTERS as shown: control
    characters show escaped (`\\x1f`), so they count for more than one."""
    if len(repr(value)) - 2 <= MAX_QUOTED_CHARACTERS:
        return repr(value)
    cut = value[: MAX_QUOTED_CHARACTERS - 1]
    while len(repr(cut)) - 2 > MAX_QUOTED_CHARACTERS - 1:
        cut = cut[:-1]
    return repr(cut + "…")


# --- one class per canonical code -----------------------------------------------------


class InvalidArgument(DomainError):
    reason = "INVALID_ARGUMENT"
    default_message = "invalid request"

    def __init__(
        self,
        message: str = "",
        *,
        violations: list[FieldViolation] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.violations = violations or []


class NotFound(DomainError):
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    reason = "ALREADY_EXISTS"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"
    default_message = "permission denied"


class FailedPrecondition(DomainError):
    reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    reason = "ABORTED"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"
    # One message for every failure: the caller learns nothing about why.
    default_message = "missing or invalid bearer token"


class Unavailable(DomainError):
    reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    reason = "DEADLINE_EXCEEDED"
    default_message = "the call ran out of time; retry with a longer deadline"


class ResourceExhausted(DomainError):
    reason = "RESOURCE_EXHAUSTED"


class OutOfRange(DomainError):
    reason = "OUT_OF_RANGE"


# --- the reasons ----------------------------------------------------------------------


class UnknownRole(InvalidArgument):
    reason = "UNKNOWN_ROLE"

    def __init__(self, name: str, field_path: str = "role") -> None:
        super().__init__(
            f"the organization has no role {quoted(name)}",
            violations=[FieldViolation(field_path, "names no role of the organization")],
        )


class RequestIdReused(InvalidArgument):
    reason = "REQUEST_ID_REUSED"
    default_message = "request_id was already used for a different request"


class OrganizationNotFound(NotFound):
    reason = "ORGANIZATION_NOT_FOUND"
    # One message for "does not exist" and "you are not a member": no existence leak.
    default_message = "organization not found"


class MemberNotFound(NotFound):
    reason = "MEMBER_NOT_FOUND"
    default_message = "member not found"


class UserNotFound(NotFound):
    reason = "USER_NOT_FOUND"
    default_message = "no such user; invite them by email instead"


class RoleNotFound(NotFound):
    reason = "ROLE_NOT_FOUND"
    default_message = "role not found"


class InvitationNotFound(NotFound):
    reason = "INVITATION_NOT_FOUND"
    default_message = "invitation not found"


class WorkspaceNotFound(NotFound):
    reason = "WORKSPACE_NOT_FOUND"
    default_message = "workspace not found"


class DomainNotFound(NotFound):
    reason = "DOMAIN_NOT_FOUND"
    default_message = "the organization has no such domain"


class SlugTaken(AlreadyExists):
    reason = "SLUG_TAKEN"

    def __init__(self, slug: str, *, scope: str = "") -> None:
        where = f" in this {scope}" if scope else ""
        super().__init__(
            f"the slug {quoted(slug)} is already taken{where}", metadata={"slug": slug[:63]}
        )


class AlreadyMember(AlreadyExists):
    reason = "ALREADY_MEMBER"
    default_message = "the user is already a member of the organization"


class InvitationPending(AlreadyExists):
    reason = "INVITATION_PENDING"
    default_message = "a pending invitation for the email exists already"


class RoleExists(AlreadyExists):
    reason = "ROLE_EXISTS"

    def __init__(self, name: str) -> None:
        super().__init__(f"a role named {quoted(name)} already exists")


class DomainExists(AlreadyExists):
    reason = "DOMAIN_EXISTS"

    def __init__(self, name: str) -> None:
        super().__init__(f"the organization holds the domain {quoted(name)} already")


class DomainTaken(AlreadyExists):
    reason = "DOMAIN_TAKEN"

    def __init__(self, name: str) -> None:
        super().__init__(f"another organization has verified the domain {quoted(name)}")


def missing_permission(permission: str, message: str = "") -> PermissionDenied:
    """The caller lacks `permission`; ErrorInfo metadata names it."""
    return PermissionDenied(
        message or f"permission {permission!r} is required", metadata={"permission": permission}
    )


class OwnerRequired(PermissionDenied):
    reason = "OWNER_REQUIRED"


class LastOwner(FailedPrecondition):
    reason = "LAST_OWNER"
    default_message = "the organization must keep at least one owner"


class OrganizationDeleted(FailedPrecondition):
    reason = "ORGANIZATION_DELETED"
    default_message = "the organization is deleted; undelete it first"


class OrganizationNotDeleted(FailedPrecondition):
    reason = "ORGANIZATION_NOT_DELETED"
    default_message = "the organization is not deleted"


class InvitationExpired(FailedPrecondition):
    reason = "INVITATION_EXPIRED"
    default_message = "the invitation has expired"


class InvitationNotPending(FailedPrecondition):
    reason = "INVITATION_NOT_PENDING"


class InvitedRoleDeleted(FailedPrecondition):
    reason = "INVITED_ROLE_DELETED"
    default_message = "the invited role no longer exists"


class BuiltInRole(FailedPrecondition):
    reason = "BUILT_IN_ROLE"


class RoleInUse(FailedPrecondition):
    reason = "ROLE_IN_USE"


class AmbiguousUser(FailedPrecondition):
    reason = "AMBIGUOUS_USER"
    default_message = "several users match; add the user by user_id"


class NotAMember(FailedPrecondition):
    reason = "NOT_A_MEMBER"


class MemberLimitReached(FailedPrecondition):
    reason = "MEMBER_LIMIT_REACHED"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the organization has reached its limit of {limit} member(s)",
            metadata={"max_members": str(limit)},
        )


class EmailDomainNotAllowed(FailedPrecondition):
    reason = "EMAIL_DOMAIN_NOT_ALLOWED"
    default_message = (
        "invitations are restricted to email addresses of the organization's verified domains"
    )


class DomainLimitReached(FailedPrecondition):
    reason = "DOMAIN_LIMIT_REACHED"

    def __init__(self, limit: int) -> None:
        super().__init__(f"an organization may hold at most {limit} domains")


class DomainNotVerified(FailedPrecondition):
    reason = "DOMAIN_NOT_VERIFIED"

    def __init__(self, record_name: str) -> None:
        super().__init__(
            f"no TXT record {quoted(record_name)} holds the verification value; publish it "
            "and retry (DNS changes may take a while to appear)"
        )


class EtagMismatch(Aborted):
    reason = "ETAG_MISMATCH"
    default_message = (
        "the resource changed since it was read (etag mismatch); read it again and retry"
    )


class DatabaseUnavailable(Unavailable):
    reason = "DATABASE_UNAVAILABLE"
    default_message = "the database is unavailable; retry with backoff"


class DnsUnavailable(Unavailable):
    reason = "DNS_UNAVAILABLE"
    default_message = "the DNS resolver failed or did not answer in time; retry later"


class ShuttingDown(Unavailable):
    reason = "SHUTTING_DOWN"
    default_message = "the server is shutting down; retry on another replica"


class CallDeadlineExceeded(DeadlineExceeded):
    reason = "DEADLINE_EXCEEDED"


class TooManyRequests(ResourceExhausted):
    reason = "TOO_MANY_REQUESTS"
    default_message = "the server is at capacity; retry with backoff"


class CursorExpired(OutOfRange):
    reason = "CURSOR_EXPIRED"
    default_message = (
        "events after the cursor were purged; list the audit events again and watch from "
        "the new watch_cursor"
    )


# --- input validation helpers ---------------------------------------------------------


@dataclass
class Violations:
    """Collects field violations so a request reports every bad field at once."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def raise_if_any(self) -> None:
        if self.items:
            fields = list(dict.fromkeys(v.field for v in self.items))
            named = ", ".join(fields[:_NAMED_FIELDS])
            if len(fields) > _NAMED_FIELDS:
                named += f" and {len(fields) - _NAMED_FIELDS} more"
            raise InvalidArgument(f"invalid request: {named}", violations=self.items)


def invalid(field_path: str, description: str) -> InvalidArgument:
    """An InvalidArgument for a single bad field."""
    return InvalidArgument(
        f"invalid {field_path}: {description}", violations=[FieldViolation(field_path, description)]
    )


def catalogue() -> Iterator[type[DomainError]]:
    """Every error class, depth first: the code classes and their reasons."""
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        if cls is not DomainError:
            yield cls
        pending.extend(reversed(cls.__subclasses__()))
