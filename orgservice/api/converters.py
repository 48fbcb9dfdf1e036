"""Domain objects to protobuf messages, and the well-known types of requests to Python
values (checked: protobuf accepts values Python cannot represent)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
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


def timestamp(value: datetime | None) -> Timestamp | None:
    # Arithmetic on the aware datetime: several times faster than
    # Timestamp.FromDatetime, which converts through naive UTC and validates.
    if value is None:
        return None
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def duration(value: timedelta | None) -> Duration | None:
    if value is None:
        return None
    result = Duration()
    result.FromTimedelta(value)
    return result


def struct(document: models.Metadata | None) -> Struct | None:
    if document is None:
        return None
    result = Struct()
    result.update(document)
    return result


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


def user(value: models.User) -> pb.User:
    return pb.User(
        id=value.id,
        subject=value.subject,
        username=value.username,
        email=value.email,
        display_name=value.display_name,
        create_time=timestamp(value.create_time),
    )


def organization(value: models.Organization) -> pb.Organization:
    return pb.Organization(
        id=value.id,
        slug=value.slug,
        name=value.name,
        description=value.description,
        labels=value.labels,
        personal=value.personal,
        state=_ORGANIZATION_STATES[value.state],
        member_count=value.member_count,
        workspace_count=value.workspace_count,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        delete_time=timestamp(value.delete_time),
        purge_time=timestamp(value.purge_time),
        etag=value.etag,
        settings=pb.OrganizationSettings(
            auto_join_role=value.settings.auto_join_role,
            restrict_invitations_to_domains=value.settings.restrict_invitations_to_domains,
            max_members=value.settings.max_members,
            default_invitation_ttl=duration(value.settings.default_invitation_ttl),
        ),
        public_metadata=struct(value.public_metadata),
        # None when the caller may not see it: the field stays unset.
        private_metadata=struct(value.private_metadata),
    )


def member(value: models.Member) -> pb.Member:
    return pb.Member(
        organization_id=value.organization_id,
        user=user(value.user),
        role=value.role,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
    )


def role(value: models.Role) -> pb.Role:
    return pb.Role(
        organization_id=value.organization_id,
        name=value.name,
        description=value.description,
        permissions=value.permissions,
        built_in=value.built_in,
    )


def audit_event(value: models.AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        id=value.id,
        organization_id=value.organization_id,
        actor_user_id=value.actor_user_id,
        action=value.action,
        target_type=value.target_type,
        target_id=value.target_id,
        details=value.details,
        create_time=timestamp(value.create_time),
    )


def invitation(value: models.Invitation) -> pb.Invitation:
    return pb.Invitation(
        id=value.id,
        organization_id=value.organization_id,
        email=value.email,
        role=value.role,
        state=_INVITATION_STATES[value.state],
        inviter_user_id=value.inviter_user_id,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        expire_time=timestamp(value.expire_time),
    )


def workspace(value: models.Workspace) -> pb.Workspace:
    return pb.Workspace(
        id=value.id,
        organization_id=value.organization_id,
        slug=value.slug,
        name=value.name,
        description=value.description,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        etag=value.etag,
    )


_DOMAIN_STATES = {
    models.DomainState.PENDING: pb.DOMAIN_STATE_PENDING,
    models.DomainState.VERIFIED: pb.DOMAIN_STATE_VERIFIED,
}


def domain(value: models.Domain) -> pb.Domain:
    return pb.Domain(
        organization_id=value.organization_id,
        name=value.name,
        state=_DOMAIN_STATES[value.state],
        verification_record_name=value.record_name,
        verification_record_value=value.record_value,
        verify_time=timestamp(value.verify_time),
        create_time=timestamp(value.create_time),
    )
