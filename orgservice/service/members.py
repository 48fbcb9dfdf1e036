"""Membership use cases, including the owner rules:

- only owners grant the owner role, change an owner's role or remove an owner;
- an organization always keeps at least one owner (LAST_OWNER), which holds under
  concurrency because every membership change locks the organization row first.
"""

from __future__ import annotations

from orgservice.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    invalid,
)
from orgservice.domain.models import Caller, Member, Page, PageRequest, Role, UserRef
from orgservice.domain.permissions import (
    MEMBERS_ADD,
    MEMBERS_LIST,
    MEMBERS_REMOVE,
    MEMBERS_UPDATE,
    OWNER,
)
from orgservice.domain.validation import is_uuid
from orgservice.service import audit
from orgservice.service.access import Access, authorize, check_grantable
from orgservice.service.clock import Clock, system_clock
from orgservice.storage.unit_of_work import Database, UnitOfWork


def member_not_found() -> NotFound:
    return NotFound("member not found", reason="MEMBER_NOT_FOUND")


def existing_role(uow: UnitOfWork, organization_id: str, name: str, field: str = "role") -> Role:
    if not name:
        raise invalid(field, "is required")
    role = uow.roles.get(organization_id, name)
    if role is None:
        raise InvalidArgument(
            f"the organization has no role {name!r}",
            reason="ROLE_NOT_FOUND",
            violations=[FieldViolation(field, f"no role named {name!r}")],
        )
    return role


def check_may_grant(access: Access, role: Role) -> None:
    """Owner rules plus no escalation: the role's permissions must be the caller's too."""
    if role.name == OWNER and not access.acts_as_owner:
        raise PermissionDenied("only owners may grant the owner role", reason="OWNER_REQUIRED")
    check_grantable(access, role.permissions)


def ensure_not_last_owner(uow: UnitOfWork, organization_id: str) -> None:
    """Call with the organization row locked, before an owner stops being one."""
    if uow.memberships.count_with_role(organization_id, OWNER) <= 1:
        raise FailedPrecondition(
            "the organization must keep at least one owner", reason="LAST_OWNER"
        )


class MemberService:
    def __init__(self, database: Database, clock: Clock = system_clock) -> None:
        self._database = database
        self._clock = clock

    def list(
        self, caller: Caller, organization_id: str, page: PageRequest, *, role: str = ""
    ) -> Page[Member]:
        with self._database.snapshot() as uow:
            authorize(uow, caller, organization_id, MEMBERS_LIST, allow_deleted=True)
            return uow.memberships.find_page(organization_id, role.strip(), page)

    def add(self, caller: Caller, organization_id: str, user: UserRef, role_name: str) -> Member:
        if not (user.user_id or user.username or user.email):
            raise invalid("user_id", "one of user_id, username or email is required")
        with self._database.transaction() as uow:
            access = authorize(uow, caller, organization_id, MEMBERS_ADD, lock=True)
            role = existing_role(uow, organization_id, role_name)
            check_may_grant(access, role)
            user_id = self._resolve_user(uow, user)
            if uow.memberships.get(organization_id, user_id) is not None:
                raise AlreadyExists("the user is already a member", reason="ALREADY_MEMBER")
            now = self._clock()
            uow.memberships.add(organization_id, user_id, role.name, now)
            audit.record(
                uow,
                caller,
                organization_id,
                "member.added",
                now,
                target_type="member",
                target_id=user_id,
                role=role.name,
            )
            member = self._reload(uow, organization_id, user_id)
            uow.commit()
            return member

    def update(self, caller: Caller, organization_id: str, user_id: str, role_name: str) -> Member:
        with self._database.transaction() as uow:
            access = authorize(uow, caller, organization_id, MEMBERS_UPDATE, lock=True)
            current = self._reload(uow, organization_id, user_id)
            role = existing_role(uow, organization_id, role_name)
            check_may_grant(access, role)
            if current.role == role.name:
                return current
            if current.role == OWNER:
                if not access.acts_as_owner:
                    raise PermissionDenied(
                        "only owners may change an owner's role", reason="OWNER_REQUIRED"
                    )
                ensure_not_last_owner(uow, organization_id)
            now = self._clock()
            uow.memberships.set_role(organization_id, user_id, role.name, now)
            audit.record(
                uow,
                caller,
                organization_id,
                "member.updated",
                now,
                target_type="member",
                target_id=user_id,
                old_role=current.role,
                role=role.name,
            )
            member = self._reload(uow, organization_id, user_id)
            uow.commit()
            return member

    def remove(self, caller: Caller, organization_id: str, user_id: str) -> None:
        leaving = user_id == caller.user_id
        with self._database.transaction() as uow:
            # Any member may leave; removing someone else takes members.remove.
            access = authorize(
                uow, caller, organization_id, None if leaving else MEMBERS_REMOVE, lock=True
            )
            current = self._reload(uow, organization_id, user_id)
            if current.role == OWNER:
                if not (leaving or access.acts_as_owner):
                    raise PermissionDenied(
                        "only owners may remove an owner", reason="OWNER_REQUIRED"
                    )
                ensure_not_last_owner(uow, organization_id)
            now = self._clock()
            uow.memberships.remove(organization_id, user_id)
            audit.record(
                uow,
                caller,
                organization_id,
                "member.left" if leaving else "member.removed",
                now,
                target_type="member",
                target_id=user_id,
                role=current.role,
            )
            uow.commit()

    @staticmethod
    def _resolve_user(uow: UnitOfWork, ref: UserRef) -> str:
        if ref.user_id and not is_uuid(ref.user_id):
            raise invalid("user_id", "must be a UUID")
        matches = uow.users.find(ref)
        if not matches:
            raise NotFound("no such user; invite them by email instead", reason="USER_NOT_FOUND")
        if len(matches) > 1:
            raise FailedPrecondition(
                "several users match; add the user by user_id", reason="AMBIGUOUS_USER"
            )
        return matches[0].id

    @staticmethod
    def _reload(uow: UnitOfWork, organization_id: str, user_id: str) -> Member:
        member = uow.memberships.get(organization_id, user_id) if is_uuid(user_id) else None
        if member is None:
            raise member_not_found()
        return member
