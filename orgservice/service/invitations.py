"""Invitation use cases and their state machine:

PENDING -> ACCEPTED (accept) | DECLINED (decline) | REVOKED (revoke) | EXPIRED (time)
EXPIRED -> PENDING (resend, with a new token)

Accepting is single-use and atomic: it locks the organization row, re-reads the
invitation and only then adds the member.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from orgservice.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    Violations,
    invalid,
)
from orgservice.domain.invitation_tokens import hash_token, new_token
from orgservice.domain.models import (
    Caller,
    Invitation,
    InvitationState,
    Member,
    OrganizationState,
    Page,
    PageRequest,
)
from orgservice.domain.permissions import (
    INVITATIONS_CREATE,
    INVITATIONS_LIST,
    INVITATIONS_REVOKE,
    INVITATIONS_UPDATE,
)
from orgservice.domain.validation import is_uuid
from orgservice.service import audit
from orgservice.service.access import authorize
from orgservice.service.clock import Clock, system_clock
from orgservice.service.idempotency import create_once
from orgservice.service.members import check_may_grant, existing_role
from orgservice.storage.unit_of_work import Database, UnitOfWork

DEFAULT_TTL = timedelta(days=7)
MAX_TTL = timedelta(days=30)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_EMAIL_LENGTH = 320


def invitation_not_found() -> NotFound:
    return NotFound("invitation not found", reason="INVITATION_NOT_FOUND")


def normalized_email(email: str) -> str:
    email = email.strip().lower()
    if not email:
        raise invalid("email", "is required")
    if len(email) > _MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise invalid("email", "must be an email address")
    return email


def checked_ttl(ttl: timedelta | None, field: str = "ttl") -> timedelta:
    if ttl is None:
        return DEFAULT_TTL
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        raise invalid(field, "must be positive and at most 30 days")
    return ttl


def _require_pending(invitation: Invitation) -> None:
    if invitation.state is InvitationState.EXPIRED:
        raise FailedPrecondition("the invitation has expired", reason="INVITATION_EXPIRED")
    if invitation.state is not InvitationState.PENDING:
        raise FailedPrecondition(
            f"the invitation is {invitation.state.value}, not pending",
            reason="INVITATION_NOT_PENDING",
        )


class InvitationService:
    def __init__(self, database: Database, clock: Clock = system_clock) -> None:
        self._database = database
        self._clock = clock

    def create(
        self,
        caller: Caller,
        organization_id: str,
        *,
        email: str,
        role: str,
        ttl: timedelta | None = None,
        request_id: str = "",
    ) -> tuple[Invitation, str]:
        """Returns the invitation and its token (empty when a request_id replays)."""
        email = normalized_email(email)
        lifetime = checked_ttl(ttl)

        def create(uow: UnitOfWork, invitation_id: str) -> tuple[Invitation, str]:
            access = authorize(uow, caller, organization_id, INVITATIONS_CREATE, lock=True)
            check_may_grant(access, existing_role(uow, organization_id, role))
            if uow.memberships.has_member_with_email(organization_id, email):
                raise AlreadyExists(
                    f"{email} is already a member of the organization", reason="ALREADY_MEMBER"
                )
            now = self._clock()
            self._free_pending_slot(uow, organization_id, email, now)
            token, token_hash = new_token()
            uow.invitations.add(
                organization_id=organization_id,
                invitation_id=invitation_id,
                email=email,
                role=role,
                inviter_user_id=caller.user_id,
                token_hash=token_hash,
                now=now,
                expire_time=now + lifetime,
            )
            audit.record(
                uow,
                caller,
                organization_id,
                "invitation.created",
                now,
                target_type="invitation",
                target_id=invitation_id,
                email=email,
                role=role,
            )
            return self._reload(uow, invitation_id, now), token

        def replay(uow: UnitOfWork, invitation_id: str) -> tuple[Invitation, str]:
            invitation = self._for_admin(uow, caller, invitation_id, INVITATIONS_LIST)
            return invitation, ""

        return create_once(
            self._database,
            self._clock,
            caller,
            request_id=request_id,
            operation="CreateInvitation",
            request={
                "organization_id": organization_id,
                "email": email,
                "role": role,
                "ttl": lifetime.total_seconds(),
            },
            create=create,
            replay=replay,
        )

    def list(
        self,
        caller: Caller,
        organization_id: str,
        page: PageRequest,
        *,
        state: InvitationState | None = None,
    ) -> Page[Invitation]:
        with self._database.snapshot() as uow:
            authorize(uow, caller, organization_id, INVITATIONS_LIST, allow_deleted=True)
            return uow.invitations.find_page(organization_id, state, self._clock(), page)

    def get(self, caller: Caller, invitation_id: str) -> Invitation:
        """Administrators see their organization's invitations; invitees their own."""
        with self._database.snapshot() as uow:
            invitation = self._find(uow, invitation_id)
            if _addressed_to(invitation, caller):
                return invitation
            return self._for_admin(uow, caller, invitation_id, INVITATIONS_LIST)

    def update(
        self,
        caller: Caller,
        invitation_id: str,
        *,
        role: str | None,
        expire_time: datetime | None,
    ) -> Invitation:
        with self._database.transaction() as uow:
            current = self._for_admin(uow, caller, invitation_id, INVITATIONS_UPDATE, lock=True)
            _require_pending(current)
            now = self._clock()
            violations = Violations()
            if expire_time is not None and not now < expire_time <= now + MAX_TTL:
                violations.add("invitation.expire_time", "must be in the next 30 days")
            violations.raise_if_any()
            if role is not None:
                access = authorize(uow, caller, current.organization_id, INVITATIONS_UPDATE)
                check_may_grant(
                    access, existing_role(uow, current.organization_id, role, "invitation.role")
                )
            invitation = uow.invitations.update(
                current.organization_id, invitation_id, now, role=role, expire_time=expire_time
            )
            audit.record(
                uow,
                caller,
                current.organization_id,
                "invitation.updated",
                now,
                target_type="invitation",
                target_id=invitation_id,
                role=invitation.role,
            )
            uow.commit()
            return invitation

    def revoke(self, caller: Caller, invitation_id: str) -> Invitation:
        with self._database.transaction() as uow:
            current = self._for_admin(uow, caller, invitation_id, INVITATIONS_REVOKE, lock=True)
            _require_pending(current)
            invitation = self._set_state(uow, caller, current, InvitationState.REVOKED)
            uow.commit()
            return invitation

    def resend(
        self, caller: Caller, invitation_id: str, ttl: timedelta | None = None
    ) -> tuple[Invitation, str]:
        """A new token and expiry; the old token stops working at once."""
        lifetime = checked_ttl(ttl)
        with self._database.transaction() as uow:
            current = self._for_admin(uow, caller, invitation_id, INVITATIONS_CREATE, lock=True)
            if current.state not in {InvitationState.PENDING, InvitationState.EXPIRED}:
                _require_pending(current)
            now = self._clock()
            token, token_hash = new_token()
            invitation = uow.invitations.update(
                current.organization_id,
                invitation_id,
                now,
                state=InvitationState.PENDING,
                expire_time=now + lifetime,
                token_hash=token_hash,
            )
            audit.record(
                uow,
                caller,
                current.organization_id,
                "invitation.resent",
                now,
                target_type="invitation",
                target_id=invitation_id,
            )
            uow.commit()
            return invitation, token

    def accept(self, caller: Caller, *, invitation_id: str = "", token: str = "") -> Member:
        with self._database.transaction() as uow:
            invitation = self._addressed(uow, caller, invitation_id, token)
            organization_id = invitation.organization_id
            if uow.organizations.lock(organization_id) is not OrganizationState.ACTIVE:
                raise invitation_not_found()
            # Re-read under the lock: a concurrent accept may have used it meanwhile.
            invitation = self._reload(uow, invitation.id, self._clock())
            _require_pending(invitation)
            if uow.memberships.get(organization_id, caller.user_id) is not None:
                raise AlreadyExists("you are already a member", reason="ALREADY_MEMBER")
            if uow.roles.get(organization_id, invitation.role) is None:
                raise FailedPrecondition(
                    "the invited role no longer exists", reason="ROLE_NOT_FOUND"
                )
            now = self._clock()
            uow.memberships.add(organization_id, caller.user_id, invitation.role, now)
            self._set_state(uow, caller, invitation, InvitationState.ACCEPTED, now=now)
            member = uow.memberships.get(organization_id, caller.user_id)
            assert member is not None, "added in this transaction"
            uow.commit()
            return member

    def decline(self, caller: Caller, *, invitation_id: str = "", token: str = "") -> Invitation:
        with self._database.transaction() as uow:
            found = self._addressed(uow, caller, invitation_id, token)
            uow.organizations.lock(found.organization_id)
            current = self._reload(uow, found.id, self._clock())
            _require_pending(current)
            invitation = self._set_state(uow, caller, current, InvitationState.DECLINED)
            uow.commit()
            return invitation

    def list_mine(self, caller: Caller, page: PageRequest) -> Page[Invitation]:
        if not (caller.email and caller.email_verified):
            return Page(items=[], total_size=0)
        with self._database.snapshot() as uow:
            return uow.invitations.find_pending_for_email(
                caller.email.strip().lower(), self._clock(), page
            )

    def _set_state(
        self,
        uow: UnitOfWork,
        caller: Caller,
        invitation: Invitation,
        state: InvitationState,
        now: datetime | None = None,
    ) -> Invitation:
        now = now or self._clock()
        updated = uow.invitations.update(
            invitation.organization_id, invitation.id, now, state=state
        )
        audit.record(
            uow,
            caller,
            invitation.organization_id,
            f"invitation.{state.value}",
            now,
            target_type="invitation",
            target_id=invitation.id,
            email=invitation.email,
            role=invitation.role,
        )
        return updated

    @staticmethod
    def _free_pending_slot(
        uow: UnitOfWork, organization_id: str, email: str, now: datetime
    ) -> None:
        """An email has one pending slot: a live invitation holds it (ALREADY_EXISTS),
        an expired one gives it up by turning EXPIRED for good."""
        prior = uow.invitations.stored_pending_for(organization_id, email, now)
        if prior is None:
            return
        if prior.state is InvitationState.PENDING:
            raise AlreadyExists(
                f"a pending invitation for {email} exists already", reason="INVITATION_PENDING"
            )
        uow.invitations.update(organization_id, prior.id, now, state=InvitationState.EXPIRED)

    def _find(self, uow: UnitOfWork, invitation_id: str) -> Invitation:
        if not invitation_id:
            raise invalid("invitation_id", "is required")
        invitation = (
            uow.invitations.get(invitation_id, self._clock()) if is_uuid(invitation_id) else None
        )
        if invitation is None:
            raise invitation_not_found()
        return invitation

    def _reload(self, uow: UnitOfWork, invitation_id: str, now: datetime) -> Invitation:
        invitation = uow.invitations.get(invitation_id, now)
        if invitation is None:
            raise invitation_not_found()
        return invitation

    def _for_admin(
        self,
        uow: UnitOfWork,
        caller: Caller,
        invitation_id: str,
        permission: str,
        *,
        lock: bool = False,
    ) -> Invitation:
        """The invitation, if the caller holds `permission` in its organization. For
        non-members it does not exist, whichever organization it belongs to. Reads
        (no lock) work in soft-deleted organizations too, as other reads do."""
        invitation = self._find(uow, invitation_id)
        try:
            authorize(
                uow,
                caller,
                invitation.organization_id,
                permission,
                lock=lock,
                allow_deleted=not lock,
            )
        except NotFound as error:
            raise invitation_not_found() from error
        return self._reload(uow, invitation_id, self._clock()) if lock else invitation

    def _addressed(
        self, uow: UnitOfWork, caller: Caller, invitation_id: str, token: str
    ) -> Invitation:
        """By token: whoever holds it. By id: only the invited (verified) email."""
        if token:
            invitation = uow.invitations.get_by_token_hash(hash_token(token), self._clock())
            if invitation is None:
                raise invitation_not_found()
            return invitation
        invitation = self._find(uow, invitation_id)
        if not _addressed_to(invitation, caller):
            raise invitation_not_found()
        return invitation


def _addressed_to(invitation: Invitation, caller: Caller) -> bool:
    return caller.email_verified and caller.email.strip().lower() == invitation.email
