"""Domain objects to protobuf messages, and the well-known types of requests to Python
values (checked: protobuf accepts values Python cannot represent)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.struct_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp
from orgs.v1 import resources_pb2 as pb

from orgservice.domain import models
from orgservice.domain.errors import invalid

# The ranges google/protobuf/{duration,timestamp}.proto define.
_MAX_DURATION_SECONDS = 315_576_000_000
_MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_NANOS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ORGANIZATION_STATES = {
    models.OrganizationState.ACTIVE: pb.ORGANIZATION_STATE_ACTIVE,
    models.OrganizationState.DELETED: pb.ORGANIZATION_STATE_DELETED,
}


def set_time(target: Timestamp, value: datetime | None) -> None:
    """Writes `value` into a message's Timestamp field (None leaves it unset).

    Arithmetic on the aware datetime: several times faster than Timestamp.FromDatetime,
    which converts through naive UTC and validates."""
    if value is not None:
        delta = value - _EPOCH
        target.seconds = delta.days * 86_400 + delta.seconds
        target.nanos = delta.microseconds * 1000


def _set_struct(target: Struct, document: models.Metadata | None) -> None:
    if document is not None:
        target.SetInParent()  # present even when empty
        target.update(document)


def metadata(value: Struct, field: str) -> models.MetadataInput:
    """A Struct as a JSON-like document (its size and strings are checked by the use
    case, after authorization)."""
    return models.MetadataInput(
        {key: _plain(item, field) for key, item in value.fields.items()}, value.ByteSize()
    )


def _plain(value: Value, field: str) -> object:
    kind = value.WhichOneof("kind")
    if kind is None:
        raise invalid(field, "every value must be set")
    if kind == "struct_value":
        return {key: _plain(item, field) for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_plain(item, field) for item in value.list_value.values]
    if kind == "null_value":
        return None
    return getattr(value, kind)


def settings_fields(
    value: pb.OrganizationSettings, names: frozenset[str], field: str = "settings"
) -> models.OrganizationSettings:
    """The settings named in `names` (others keep their defaults, unread)."""
    ttl = None
    if "default_invitation_ttl" in names and value.HasField("default_invitation_ttl"):
        ttl = to_timedelta(value.default_invitation_ttl, f"{field}.default_invitation_ttl")
    return models.OrganizationSettings(
        auto_join_role=value.auto_join_role,
        restrict_invitations_to_domains=value.restrict_invitations_to_domains,
        max_members=value.max_members,
        default_invitation_ttl=ttl,
    )


_INVITATION_STATES = {
    models.InvitationState.PENDING: pb.INVITATION_STATE_PENDING,
    models.InvitationState.ACCEPTED: pb.INVITATION_STATE_ACCEPTED,
    models.InvitationState.DECLINED: pb.INVITATION_STATE_DECLINED,
    models.InvitationState.REVOKED: pb.INVITATION_STATE_REVOKED,
    models.InvitationState.EXPIRED: pb.INVITATION_STATE_EXPIRED,
}
_INVITATION_STATES_FROM_PROTO = {proto: state for state, proto in _INVITATION_STATES.items()}


def invitation_state(value: int, field: str = "state") -> models.InvitationState | None:
    """A state filter: unspecified means any; unknown numbers are refused."""
    if value == pb.INVITATION_STATE_UNSPECIFIED:
        return None
    state: models.InvitationState | None = _INVITATION_STATES_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if state is None:
        raise invalid(field, f"unknown state {value}")
    return state


def to_timedelta(value: Duration, field: str) -> timedelta:
    seconds, nanos = value.seconds, value.nanos
    if (
        abs(seconds) > _MAX_DURATION_SECONDS
        or abs(nanos) >= _NANOS
        or (seconds > 0 > nanos)
        or (seconds < 0 < nanos)
    ):
        raise invalid(field, "is not a valid duration")
    return timedelta(seconds=seconds, microseconds=nanos // 1000)


def to_datetime(value: Timestamp, field: str) -> datetime:
    if not (_MIN_TIMESTAMP_SECONDS <= value.seconds <= _MAX_TIMESTAMP_SECONDS) or not (
        0 <= value.nanos < _NANOS
    ):
        raise invalid(field, "is not a valid timestamp")
    return value.ToDatetime(tzinfo=UTC)


# Each resource has a `fill_x(target, value)` that writes into a message in place (a
# repeated field's add(), a response's field: no copies, the hot paths' choice) and an
# `x(value)` that returns a new message.

M = TypeVar("M", bound=Message)
V = TypeVar("V")


def _building(cls: type[M], fill: Callable[[M, V], None]) -> Callable[[V], M]:
    def build(value: V) -> M:
        message = cls()
        fill(message, value)
        return message

    return build


def fill_user(target: pb.User, value: models.User) -> None:
    target.id = value.id
    target.subject = value.subject
    target.username = value.username
    target.email = value.email
    target.display_name = value.display_name
    set_time(target.create_time, value.create_time)


def fill_organization(target: pb.Organization, value: models.Organization) -> None:
    target.id = value.id
    target.slug = value.slug
    target.name = value.name
    target.description = value.description
    target.labels.update(value.labels)
    target.personal = value.personal
    target.state = _ORGANIZATION_STATES[value.state]
    target.member_count = value.member_count
    target.workspace_count = value.workspace_count
    set_time(target.create_time, value.create_time)
    set_time(target.update_time, value.update_time)
    set_time(target.delete_time, value.delete_time)
    set_time(target.purge_time, value.purge_time)
    target.etag = value.etag
    settings, values = target.settings, value.settings
    settings.SetInParent()
    settings.auto_join_role = values.auto_join_role
    settings.restrict_invitations_to_domains = values.restrict_invitations_to_domains
    settings.max_members = values.max_members
    if values.default_invitation_ttl is not None:
        settings.default_invitation_ttl.FromTimedelta(values.default_invitation_ttl)
    _set_struct(target.public_metadata, value.public_metadata)
    # None when the caller may not see it: the field stays unset.
    _set_struct(target.private_metadata, value.private_metadata)


def fill_member(target: pb.Member, value: models.Member) -> None:
    target.organization_id = value.organization_id
    fill_user(target.user, value.user)
    target.role = value.role
    set_time(target.create_time, value.create_time)
    set_time(target.update_time, value.update_time)


def fill_role(target: pb.Role, value: models.Role) -> None:
    target.organization_id = value.organization_id
    target.name = value.name
    target.description = value.description
    target.permissions.extend(value.permissions)
    target.built_in = value.built_in


def fill_audit_event(target: pb.AuditEvent, value: models.AuditEvent) -> None:
    target.id = value.id
    target.organization_id = value.organization_id
    target.actor_user_id = value.actor_user_id
    target.action = value.action
    target.target_type = value.target_type
    target.target_id = value.target_id
    target.details.update(value.details)
    set_time(target.create_time, value.create_time)


def fill_invitation(target: pb.Invitation, value: models.Invitation) -> None:
    target.id = value.id
    target.organization_id = value.organization_id
    target.email = value.email
    target.role = value.role
    target.state = _INVITATION_STATES[value.state]
    target.inviter_user_id = value.inviter_user_id
    set_time(target.create_time, value.create_time)
    set_time(target.update_time, value.update_time)
    set_time(target.expire_time, value.expire_time)


def fill_workspace(target: pb.Workspace, value: models.Workspace) -> None:
    target.id = value.id
    target.organization_id = value.organization_id
    target.slug = value.slug
    target.name = value.name
    target.description = value.description
    set_time(target.create_time, value.create_time)
    set_time(target.update_time, value.update_time)
    target.etag = value.etag


_DOMAIN_STATES = {
    models.DomainState.PENDING: pb.DOMAIN_STATE_PENDING,
    models.DomainState.VERIFIED: pb.DOMAIN_STATE_VERIFIED,
}


def fill_domain(target: pb.Domain, value: models.Domain) -> None:
    target.organization_id = value.organization_id
    target.name = value.name
    target.state = _DOMAIN_STATES[value.state]
    target.verification_record_name = value.record_name
    target.verification_record_value = value.record_value
    set_time(target.verify_time, value.verify_time)
    set_time(target.create_time, value.create_time)


user = _building(pb.User, fill_user)
organization = _building(pb.Organization, fill_organization)
member = _building(pb.Member, fill_member)
role = _building(pb.Role, fill_role)
audit_event = _building(pb.AuditEvent, fill_audit_event)
invitation = _building(pb.Invitation, fill_invitation)
workspace = _building(pb.Workspace, fill_workspace)
domain = _building(pb.Domain, fill_domain)
