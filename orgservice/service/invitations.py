"""Invitation use cases and their state machine:

PENDING -> ACCEPTED (accept) | DECLINED (decline) | REVOKED (revoke) | EXPIRED (time)
EXPIRED -> PENDING (resend, with a new token)

Accepting is single-use and atomic: it locks the organization row, re-reads the
invitation and only then adds the member.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from functools import partial
from typing import TypeVar

from orgservice.domain.authorization import Access
from orgservice.domain.authorization import Requirement
from orgservice.domain.authorization import to_change
from orgservice.domain.authorization import to_read
from orgservice.domain.errors import AlreadyMember
from orgservice.domain.errors import DomainError
from orgservice.domain.errors import InvalidArgument
from orgservice.domain.errors import InvitationExpired
from orgservice.domain.errors import InvitationNotFound
from orgservice.domain.errors import InvitationNotPending
from orgservice.domain.errors import InvitationPending
from orgservice.domain.errors import InvitedRoleDeleted
from orgservice.domain.errors import OrganizationNotFound
from orgservice.domain.errors import Violations
from orgservice.domain.errors import invalid
from orgservice.domain.invitation_tokens import hash_token
from orgservice.domain.invitation_tokens import new_token
from orgservice.domain.models import Call
from orgservice.domain.models import Caller
from orgservice.domain.models import Deferred
from orgservice.domain.models import Invitation
from orgservice.domain.models import InvitationState
from orgservice.domain.models import Member
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationState
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import Role
from orgservice.domain.permissions import INVITATIONS_CREATE
from orgservice.domain.permissions import INVITATIONS_LIST
from orgservice.domain.permissions import INVITATIONS_REVOKE
from orgservice.domain.permissions import INVITATIONS_UPDATE
from orgservice.domain.validation import MAX_INVITATION_TTL
from orgservice.domain.validation import canonical_uuid
from orgservice.domain.validation import check_count
from orgservice.domain.validation import check_invitation_ttl
from orgservice.domain.validation import new_id
from orgservice.domain.validation import normalized_email
from orgservice.domain.validation import normalized_request_id
from orgservice.service import audit
from orgservice.service.authorization import authorize
from orgservice.service.idempotency import earlier_result
from orgservice.service.members import check_may_grant
from orgservice.service.members import existing_role
from orgservice.service.members import load_member
from orgservice.service.organizations import load_organization
from orgservice.service.policies import ensure_free_seat
from orgservice.service.policies import ensure_invitable
from orgservice.service.ports import UnitOfWork
from orgservice.service.use_cases import UseCases

T = TypeVar("T")

DEFAULT_TTL = timedelta(days=7)
MAX_BATCH = 100
MAX_TTL = MAX_INVITATION_TTL

LIST = to_read(INVITATIONS_LIST)
CREATE = to_change(INVITATIONS_CREATE)
UPDATE = to_change(INVITATIONS_UPDATE)
REVOKE = to_change(INVITATIONS_REVOKE)
# Resending issues a new invitation token: it takes the right to invite.
RESEND = to_change(INVITATIONS_CREATE)


@dataclass(frozen=True)
class NewInvitation:
    """One invitation of a batch; `ttl` is parsed only once the caller is authorized."""

    email: str
    role: str
    ttl: Callable[[], timedelta | None]


@dataclass(frozen=True)
class InvitationChanges:
    """What an UpdateInvitation changes; None leaves a field as it is."""

    role: str | None = None
    expire_time: datetime | None = None


def checked_ttl(
    ttl: timedelta | None, field: str = "ttl", *, default: timedelta | None = None
) -> timedelta:
    """The requested lifetime, else `default` (the organization's), else 7 days."""
    if ttl is None:
        return default or DEFAULT_TTL
    violations = Violations()
    check_invitation_ttl(violations, field, ttl)
    violations.raise_if_any()
    return ttl


def _require_pending(invitation: Invitation) -> None:
    if invitation.state is InvitationState.EXPIRED:
        raise InvitationExpired()
    if invitation.state is not InvitationState.PENDING:
        raise InvitationNotPending(f"the invitation is {invitation.state.value}, not pending")


class InvitationService(UseCases):
    def create(
        self,
        call: Call,
        organization_id: str,
        *,
        email: str,
        role: str,
        ttl: Callable[[], timedelta | None],
        request_id: str = "",
    ) -> tuple[Invitation, str]:
        """Returns the invitation and its token (empty when a request_id replays)."""
        with self._database.transaction(call.budget) as uow:
            access = authorize(uow, call.caller, organization_id, CREATE)
            organization_id = access.organization_id
            email = normalized_email(email)
            organization = load_organization(uow, organization_id)
            lifetime = checked_ttl(ttl(), default=organization.settings.default_invitation_ttl)
            key = normalized_request_id(request_id)
            check_may_grant(access, existing_role(uow, organization_id, role))
            now = self._clock()
            invitation_id = new_id()
            earlier = earlier_result(
                uow,
                call.caller,
                key,
                operation="CreateInvitation",
                request={
                    "organization_id": organization_id,
                    "email": email,
                    "role": role,
                    "ttl": lifetime.total_seconds(),
                },
                resource_id=invitation_id,
                now=now,
            )
            if earlier is not None:
                return _reload(uow, earlier, now), ""
            _check_sendable(uow, organization, email, now)
            sent = _send(
                uow,
                call.caller,
                organization_id,
                invitation_id,
                email,
                role,
                expire_time=now + lifetime,
                now=now,
            )
            uow.commit()
            return sent

    def batch_create(
        self, call: Call, organization_id: str, entries: Sequence[NewInvitation]
    ) -> list[tuple[Invitation, str]]:
        """All or nothing (AIP-233): every entry is validated (INVALID_ARGUMENT naming
        each bad field), then checked like a single CreateInvitation (the first that
        fails decides the error, its message naming the entry), and only then are they
        all sent."""
        with self._database.transaction(call.budget) as uow:
            access = authorize(uow, call.caller, organization_id, CREATE)
            organization = load_organization(uow, access.organization_id)
            organization_id = organization.id
            checked = _checked_batch(uow, organization, entries)
            now = self._clock()
            for index, (email, role, _) in enumerate(checked):
                with _naming_entry(index):
                    check_may_grant(access, role)
                    _check_sendable(uow, organization, email, now)
            sent = [
                _send(
                    uow,
                    call.caller,
                    organization_id,
                    new_id(),
                    email,
                    role.name,
                    expire_time=now + lifetime,
                    now=now,
                )
                for email, role, lifetime in checked
            ]
            uow.commit()
            return sent

    def list(
        self,
        call: Call,
        organization_id: str,
        page: Deferred[PageRequest],
        *,
        state: Callable[[], InvitationState | None] = lambda: None,
    ) -> Page[Invitation]:
        """`state` filters (None: any state); parsed, like `page`, once authorized."""
        with self._database.snapshot(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, LIST).organization_id
            return uow.invitations.find_page(organization_id, state(), self._clock(), page())

    def get(self, call: Call, invitation_id: str) -> Invitation:
        """Administrators see their organization's invitations; invitees their own."""
        with self._database.snapshot(call.budget) as uow:
            invitation = _find(uow, invitation_id, self._clock())
            if _addressed_to(invitation, call.caller):
                return invitation
            self._authorize(uow, call.caller, invitation, LIST)
            return invitation

    def update(
        self, call: Call, invitation_id: str, changes: Callable[[], InvitationChanges]
    ) -> Invitation:
        with self._database.transaction(call.budget) as uow:
            now = self._clock()
            found = _find(uow, invitation_id, now)
            access = self._authorize(uow, call.caller, found, UPDATE)
            wanted = changes()
            current = _reload(uow, found.id, now)
            _require_pending(current)
            if wanted.expire_time is not None and not now < wanted.expire_time <= now + MAX_TTL:
                raise invalid("invitation.expire_time", "must be in the next 30 days")
            if wanted.role is not None:
                check_may_grant(
                    access,
                    existing_role(uow, current.organization_id, wanted.role, "invitation.role"),
                )
            invitation = uow.invitations.update(
                current.organization_id,
                current.id,
                now,
                role=wanted.role,
                expire_time=wanted.expire_time,
            )
            audit.record(
                uow,
                call.caller,
                current.organization_id,
                "invitation.updated",
                now,
                target_type="invitation",
                target_id=current.id,
                role=invitation.role,
            )
            uow.commit()
            return invitation

    def revoke(self, call: Call, invitation_id: str) -> Invitation:
        with self._database.transaction(call.budget) as uow:
            now = self._clock()
            found = _find(uow, invitation_id, now)
            self._authorize(uow, call.caller, found, REVOKE)
            current = _reload(uow, found.id, now)
            _require_pending(current)
            invitation = _set_state(uow, call.caller, current, InvitationState.REVOKED, now)
            uow.commit()
            return invitation

    def resend(
        self, call: Call, invitation_id: str, ttl: Callable[[], timedelta | None]
    ) -> tuple[Invitation, str]:
        """A new token and expiry; the old token stops working at once."""
        with self._database.transaction(call.budget) as uow:
            now = self._clock()
            found = _find(uow, invitation_id, now)
            self._authorize(uow, call.caller, found, RESEND)
            organization = load_organization(uow, found.organization_id)
            lifetime = checked_ttl(ttl(), default=organization.settings.default_invitation_ttl)
            current = _reload(uow, found.id, now)
            if current.state not in {InvitationState.PENDING, InvitationState.EXPIRED}:
                _require_pending(current)
            ensure_invitable(uow, organization, current.email)
            if current.state is InvitationState.EXPIRED:
                _free_pending_slot(uow, current.organization_id, current.email, now, current.id)
            token, token_hash = new_token()
            invitation = uow.invitations.update(
                current.organization_id,
                current.id,
                now,
                state=InvitationState.PENDING,
                expire_time=now + lifetime,
                token_hash=token_hash,
            )
            audit.record(
                uow,
                call.caller,
                current.organization_id,
                "invitation.resent",
                now,
                target_type="invitation",
                target_id=current.id,
            )
            uow.commit()
            return invitation, token

    def accept(self, call: Call, *, invitation_id: str = "", token: str = "") -> Member:
        caller = call.caller
        with self._database.transaction(call.budget) as uow:
            now = self._clock()
            invitation = _addressed(uow, caller, invitation_id, token, now)
            organization_id = invitation.organization_id
            if uow.organizations.lock(organization_id) is not OrganizationState.ACTIVE:
                raise InvitationNotFound()
            # Re-read under the lock: a concurrent accept may have used it meanwhile.
            invitation = _reload(uow, invitation.id, now)
            _require_pending(invitation)
            if uow.memberships.get(organization_id, caller.user_id) is not None:
                raise AlreadyMember("you are already a member")
            if uow.roles.get(organization_id, invitation.role) is None:
                raise InvitedRoleDeleted()
            ensure_free_seat(uow, organization_id)
            uow.memberships.add(organization_id, caller.user_id, invitation.role, now)
            _set_state(uow, caller, invitation, InvitationState.ACCEPTED, now)
            member = load_member(uow, organization_id, caller.user_id)
            uow.commit()
            return member

    def decline(self, call: Call, *, invitation_id: str = "", token: str = "") -> Invitation:
        with self._database.transaction(call.budget) as uow:
            now = self._clock()
            found = _addressed(uow, call.caller, invitation_id, token, now)
            uow.organizations.lock(found.organization_id)
            current = _reload(uow, found.id, now)
            _require_pending(current)
            invitation = _set_state(uow, call.caller, current, InvitationState.DECLINED, now)
            uow.commit()
            return invitation

    def list_mine(self, call: Call, page: Deferred[PageRequest]) -> Page[Invitation]:
        caller = call.caller
        if not (caller.email and caller.email_verified):
            return Page(items=[], total_size=0)
        with self._database.snapshot(call.budget) as uow:
            return uow.invitations.find_pending_for_email(
                caller.email.strip().lower(), self._clock(), page()
            )

    @staticmethod
    def _authorize(
        uow: UnitOfWork, caller: Caller, invitation: Invitation, requirement: Requirement
    ) -> Access:
        """For those who may not see its organization, an invitation does not exist."""
        try:
            return authorize(uow, caller, invitation.organization_id, requirement)
        except OrganizationNotFound as error:
            raise InvitationNotFound() from error


def _checked_batch(
    uow: UnitOfWork, organization: Organization, entries: Sequence[NewInvitation]
) -> list[tuple[str, Role, timedelta]]:
    """Each entry's email, role and lifetime; INVALID_ARGUMENT with one violation per
    bad field of any entry (never quoting values) when one is malformed."""
    violations = Violations()
    if not entries:
        violations.add("invitations", "must have at least one entry")
    check_count(violations, "invitations", entries, MAX_BATCH)
    violations.raise_if_any()
    first_entry_of: dict[str, int] = {}
    checked: list[tuple[str, Role, timedelta]] = []
    default_ttl = organization.settings.default_invitation_ttl
    roles_found: dict[str, Role] = {}  # a batch names few roles: each is read once
    for index, entry in enumerate(entries):
        field = f"invitations[{index}]"
        email = _violations_of(violations, partial(normalized_email, entry.email, f"{field}.email"))
        role = roles_found.get(entry.role) or _violations_of(
            violations, partial(existing_role, uow, organization.id, entry.role, f"{field}.role")
        )
        if role is not None:
            roles_found[entry.role] = role
        lifetime = _violations_of(
            violations, partial(_checked_entry_ttl, entry, f"{field}.ttl", default_ttl)
        )
        if email is not None:
            first = first_entry_of.setdefault(email, index)
            if first != index:
                violations.add(f"{field}.email", f"repeats invitations[{first}].email")
        if email is not None and role is not None and lifetime is not None:
            checked.append((email, role, lifetime))
    violations.raise_if_any()
    return checked


def _checked_entry_ttl(entry: NewInvitation, field: str, default: timedelta | None) -> timedelta:
    return checked_ttl(entry.ttl(), field, default=default)  # parsing the ttl may fail too


def _violations_of(violations: Violations, parse: Callable[[], T]) -> T | None:
    """What `parse` returns, or None with its InvalidArgument's violations recorded."""
    try:
        return parse()
    except InvalidArgument as error:
        violations.items.extend(error.violations)
        return None


@contextmanager
def _naming_entry(index: int) -> Iterator[None]:
    """Errors of one batch entry name it (`invitations[i]`) in their message."""
    try:
        yield
    except DomainError as error:
        error.message = f"invitations[{index}]: {error.message}"
        error.args = (error.message,)
        raise


def _check_sendable(uow: UnitOfWork, organization: Organization, email: str, now: datetime) -> None:
    """What must hold for an invitation to `email` (the organization row is locked)."""
    if uow.memberships.has_member_with_email(organization.id, email):
        raise AlreadyMember("the email belongs to a member of the organization already")
    ensure_invitable(uow, organization, email)
    _free_pending_slot(uow, organization.id, email, now)


def _send(
    uow: UnitOfWork,
    caller: Caller,
    organization_id: str,
    invitation_id: str,
    email: str,
    role: str,
    *,
    expire_time: datetime,
    now: datetime,
) -> tuple[Invitation, str]:
    """Stores a pending invitation and its audit event; returns it with its token."""
    token, token_hash = new_token()
    invitation = Invitation(
        id=invitation_id,
        organization_id=organization_id,
        email=email,
        role=role,
        state=InvitationState.PENDING,
        inviter_user_id=caller.user_id,
        create_time=now,
        update_time=now,
        expire_time=expire_time,
    )
    uow.invitations.add(invitation, token_hash)
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
    return _reload(uow, invitation_id, now), token


def _set_state(
    uow: UnitOfWork, caller: Caller, invitation: Invitation, state: InvitationState, now: datetime
) -> Invitation:
    updated = uow.invitations.update(invitation.organization_id, invitation.id, now, state=state)
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


def _free_pending_slot(
    uow: UnitOfWork, organization_id: str, email: str, now: datetime, keep: str = ""
) -> None:
    """An email has one pending slot: a live invitation holds it (ALREADY_EXISTS), an
    expired one gives it up by turning EXPIRED for good. `keep`: the invitation being
    revived, which may hold the slot itself."""
    prior = uow.invitations.stored_pending_for(organization_id, email, now)
    if prior is None or prior.id == keep:
        return
    if prior.state is InvitationState.PENDING:
        raise InvitationPending()
    uow.invitations.update(organization_id, prior.id, now, state=InvitationState.EXPIRED)


def _find(uow: UnitOfWork, invitation_id: str, now: datetime) -> Invitation:
    if not invitation_id:
        raise invalid("invitation_id", "is required")
    canonical = canonical_uuid(invitation_id)
    invitation = uow.invitations.get(canonical, now) if canonical else None
    if invitation is None:
        raise InvitationNotFound()
    return invitation


def _reload(uow: UnitOfWork, invitation_id: str, now: datetime) -> Invitation:
    invitation = uow.invitations.get(invitation_id, now)
    if invitation is None:
        raise InvitationNotFound()
    return invitation


def _addressed(
    uow: UnitOfWork, caller: Caller, invitation_id: str, token: str, now: datetime
) -> Invitation:
    """By token: whoever holds it. By id: only the invited (verified) email."""
    if token:
        invitation = uow.invitations.get_by_token_hash(hash_token(token), now)
        if invitation is None:
            raise InvitationNotFound()
        return invitation
    invitation = _find(uow, invitation_id, now)
    if not _addressed_to(invitation, caller):
        raise InvitationNotFound()
    return invitation


def _addressed_to(invitation: Invitation, caller: Caller) -> bool:
    return caller.email_verified and caller.email.strip().lower() == invitation.email
