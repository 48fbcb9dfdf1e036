"""Membership use cases, including the owner rules:

- only owners grant the owner role, change an owner's role or remove an owner;
- an organization always keeps at least one owner (LAST_OWNER), which holds under
  concurrency because every membership change locks the organization row first;
- an owner may hand ownership to another member in one step (TransferOwnership).
"""

from __future__ import annotations

from orgservice.domain.authorization import Access
from orgservice.domain.authorization import to_change
from orgservice.domain.authorization import to_read
from orgservice.domain.errors import AlreadyMember
from orgservice.domain.errors import AmbiguousUser
from orgservice.domain.errors import LastOwner
from orgservice.domain.errors import MemberNotFound
from orgservice.domain.errors import NotAMember
from orgservice.domain.errors import OwnerRequired
from orgservice.domain.errors import UnknownRole
from orgservice.domain.errors import UserNotFound
from orgservice.domain.errors import invalid
from orgservice.domain.models import Call
from orgservice.domain.models import Deferred
from orgservice.domain.models import Member
from orgservice.domain.models import Organization
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import Role
from orgservice.domain.models import UserRef
from orgservice.domain.permissions import ADMIN
from orgservice.domain.permissions import MEMBERS_ADD
from orgservice.domain.permissions import MEMBERS_LIST
from orgservice.domain.permissions import MEMBERS_REMOVE
from orgservice.domain.permissions import MEMBERS_UPDATE
from orgservice.domain.permissions import OWNER
from orgservice.domain.search import fold
from orgservice.domain.validation import MAX_EMAIL_LENGTH
from orgservice.domain.validation import MAX_USERNAME_LENGTH
from orgservice.domain.validation import canonical_uuid
from orgservice.domain.validation import checked_line
from orgservice.domain.validation import search_text
from orgservice.domain.validation import slug_to_look_up
from orgservice.service import audit
from orgservice.service.authorization import authorize
from orgservice.service.authorization import require_grantable
from orgservice.service.policies import ensure_free_seat
from orgservice.service.ports import UnitOfWork
from orgservice.service.use_cases import UseCases

LIST = to_read(MEMBERS_LIST)
ADD = to_change(MEMBERS_ADD)
UPDATE = to_change(MEMBERS_UPDATE)
REMOVE = to_change(MEMBERS_REMOVE)
LEAVE = to_change(None)  # any member may leave
TRANSFER = to_change(None)  # owners only, checked on the role itself


def existing_role(uow: UnitOfWork, organization_id: str, name: str, field: str = "role") -> Role:
    if not name:
        raise invalid(field, "is required")
    known = slug_to_look_up(field, name)
    role = uow.roles.get(organization_id, known) if known else None
    if role is None:
        raise UnknownRole(name, field)
    return role


def check_may_grant(access: Access, role: Role) -> None:
    """Owner rules plus no escalation: the role's permissions must be the caller's too."""
    if role.name == OWNER and not access.acts_as_owner:
        raise OwnerRequired("only owners may grant the owner role")
    require_grantable(access, role.permissions)


def ensure_not_last_owner(uow: UnitOfWork, organization_id: str) -> None:
    """Call with the organization row locked, before an owner stops being one."""
    if uow.memberships.count_with_role(organization_id, OWNER) <= 1:
        raise LastOwner()


def load_member(uow: UnitOfWork, organization_id: str, user_id: str) -> Member:
    canonical = canonical_uuid(user_id)
    member = uow.memberships.get(organization_id, canonical) if canonical else None
    if member is None:
        raise MemberNotFound()
    return member


class MemberService(UseCases):
    def list(
        self,
        call: Call,
        organization_id: str,
        page: Deferred[PageRequest],
        *,
        role: str = "",
        query: str = "",
    ) -> Page[Member]:
        """`query`: members found by a prefix of their username, email or display name
        words, ignoring case (domain.search)."""
        with self._database.snapshot(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, LIST).organization_id
            role = role.strip()
            if role and slug_to_look_up("role", role) is None:
                return Page(items=[], total_size=0)  # no such role: nobody holds it
            folded = fold(search_text("query", query))
            organization = uow.organization(organization_id)
            total = organization.member_count if organization else 0
            if folded:
                return uow.memberships.find_page(
                    organization_id, role, page(), total=total, query=folded
                )
            return uow.member_page(organization_id, role, page(), total=total)

    def add(self, call: Call, organization_id: str, user: UserRef, role_name: str) -> Member:
        with self._database.transaction(call.budget) as uow:
            access = authorize(uow, call.caller, organization_id, ADD)
            organization_id = access.organization_id
            ref = _checked_ref(user)
            role = existing_role(uow, organization_id, role_name)
            check_may_grant(access, role)
            user_id = _resolve_user(uow, ref)
            if uow.memberships.get(organization_id, user_id) is not None:
                raise AlreadyMember()
            ensure_free_seat(uow, organization_id)
            now = self._clock()
            uow.memberships.add(organization_id, user_id, role.name, now)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "member.added",
                now,
                target_type="member",
                target_id=user_id,
                role=role.name,
            )
            member = load_member(uow, organization_id, user_id)
            uow.commit()
            return member

    def update(self, call: Call, organization_id: str, user_id: str, role_name: str) -> Member:
        with self._database.transaction(call.budget) as uow:
            access = authorize(uow, call.caller, organization_id, UPDATE)
            organization_id = access.organization_id
            current = load_member(uow, organization_id, user_id)
            role = existing_role(uow, organization_id, role_name)
            check_may_grant(access, role)
            if current.role == role.name:
                return current
            if current.role == OWNER:
                if not access.acts_as_owner:
                    raise OwnerRequired("only owners may change an owner's role")
                ensure_not_last_owner(uow, organization_id)
            now = self._clock()
            user_id = current.user.id
            uow.memberships.set_role(organization_id, user_id, role.name, now)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "member.updated",
                now,
                target_type="member",
                target_id=user_id,
                old_role=current.role,
                role=role.name,
            )
            member = load_member(uow, organization_id, user_id)
            uow.commit()
            return member

    def remove(self, call: Call, organization_id: str, user_id: str) -> None:
        caller = call.caller
        leaving = canonical_uuid(user_id) == caller.user_id
        with self._database.transaction(call.budget) as uow:
            # Any member may leave; removing someone else takes members.remove.
            access = authorize(uow, caller, organization_id, LEAVE if leaving else REMOVE)
            organization_id = access.organization_id
            current = load_member(uow, organization_id, user_id)
            if current.role == OWNER:
                if not (leaving or access.acts_as_owner):
                    raise OwnerRequired("only owners may remove an owner")
                ensure_not_last_owner(uow, organization_id)
            now = self._clock()
            uow.memberships.remove(organization_id, current.user.id)
            audit.record(
                uow,
                caller,
                organization_id,
                "member.left" if leaving else "member.removed",
                now,
                target_type="member",
                target_id=current.user.id,
                role=current.role,
            )
            uow.commit()

    def transfer_ownership(self, call: Call, organization_id: str, user_id: str) -> Organization:
        """The member becomes an owner and the calling owner an admin, under the
        organization row lock: concurrent transfers and removals apply one after the
        other, so the organization always keeps an owner."""
        caller = call.caller
        with self._database.transaction(call.budget) as uow:
            access = authorize(uow, caller, organization_id, TRANSFER)
            organization_id = access.organization_id
            if access.role is not None and access.role != OWNER:
                raise OwnerRequired("only owners may transfer ownership")
            if not user_id:
                raise invalid("user_id", "is required")
            target_id = canonical_uuid(user_id)
            if target_id is None:
                raise invalid("user_id", "must be a UUID")
            if target_id == caller.user_id:
                raise invalid("user_id", "names the caller; name the member to become an owner")
            if access.role is None:
                raise NotAMember("you are not a member, so you hold no ownership to transfer")
            target = uow.memberships.get(organization_id, target_id)
            if target is None:
                raise NotAMember("the user is not a member of the organization")
            now = self._clock()
            if target.role != OWNER:
                uow.memberships.set_role(organization_id, target_id, OWNER, now)
            uow.memberships.set_role(organization_id, caller.user_id, ADMIN, now)
            audit.record(
                uow,
                caller,
                organization_id,
                "member.ownership_transferred",
                now,
                target_type="member",
                target_id=target_id,
                old_role=target.role,
                previous_owner_id=caller.user_id,
            )
            organization = uow.organizations.get(organization_id)
            assert organization is not None, "the organization row is locked"
            uow.commit()
            return organization


def _checked_ref(user: UserRef) -> UserRef:
    """One of user_id, username or email, well-formed."""
    if user.user_id:
        canonical = canonical_uuid(user.user_id)
        if canonical is None:
            raise invalid("user_id", "must be a UUID")
        return UserRef(user_id=canonical)
    if user.username:
        return UserRef(
            username=checked_line("username", user.username, max_length=MAX_USERNAME_LENGTH)
        )
    if user.email:
        return UserRef(email=checked_line("email", user.email, max_length=MAX_EMAIL_LENGTH))
    raise invalid("user_id", "one of user_id, username or email is required")


def _resolve_user(uow: UnitOfWork, ref: UserRef) -> str:
    matches = uow.users.find(ref)
    if not matches:
        raise UserNotFound()
    if len(matches) > 1:
        raise AmbiguousUser()
    return matches[0].id
