"""Domain objects to protobuf messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from orgs.v1 import resources_pb2 as pb

from orgservice.domain import models

_ORGANIZATION_STATES = {
    models.OrganizationState.ACTIVE: pb.ORGANIZATION_STATE_ACTIVE,
    models.OrganizationState.DELETED: pb.ORGANIZATION_STATE_DELETED,
}


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    result = Timestamp()
    result.FromDatetime(value)
    return result


_INVITATION_STATES = {
    models.InvitationState.PENDING: pb.INVITATION_STATE_PENDING,
    models.InvitationState.ACCEPTED: pb.INVITATION_STATE_ACCEPTED,
    models.InvitationState.DECLINED: pb.INVITATION_STATE_DECLINED,
    models.InvitationState.REVOKED: pb.INVITATION_STATE_REVOKED,
    models.InvitationState.EXPIRED: pb.INVITATION_STATE_EXPIRED,
}
INVITATION_STATES_FROM_PROTO = {proto: state for state, proto in _INVITATION_STATES.items()}


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
