"""An in-memory implementation of the storage Protocols (`orgservice.service.ports`), so
use cases can be unit tested without a database.

Faithful where a use case can tell the difference:
- a unit of work reads and writes a private copy of the tables, taken at its first
  statement, and a transaction publishes the copy only on `commit()`, which refuses
  (DEADLINE_EXCEEDED) once less than the commit margin of the budget is left;
- a budget that may not block raises WouldBlock at the first statement, like the SQL
  unit of work's lazy connection; snapshots are read-only;
- the constraints of `storage/tables.py` hold (unique slugs, one pending invitation per
  email, foreign keys): what the SQL repositories turn into domain errors raises the same
  errors here, what the database would refuse outright raises ConstraintViolation;
- member and workspace counts are maintained with every change, audit events are
  numbered per organization, lists page by (create_time, id) keysets.

Not modelled: concurrency (transactions are meant to run one after another; a commit
over a newer commit is refused) and the read cache (`snapshot` records its `cached`
flag in `snapshot_modes` instead).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from typing import TypeVar

from orgservice.domain.budget import COMMIT_MARGIN_SECONDS
from orgservice.domain.budget import Budget
from orgservice.domain.budget import WouldBlock
from orgservice.domain.errors import InvitationPending
from orgservice.domain.errors import RoleExists
from orgservice.domain.errors import SlugTaken
from orgservice.domain.models import AccessRecord
from orgservice.domain.models import AuditEvent
from orgservice.domain.models import Cursor
from orgservice.domain.models import Domain
from orgservice.domain.models import DomainState
from orgservice.domain.models import Identity
from orgservice.domain.models import Invitation
from orgservice.domain.models import InvitationState
from orgservice.domain.models import Member
from orgservice.domain.models import Membership
from orgservice.domain.models import NewOrganization
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import OrganizationQuery
from orgservice.domain.models import OrganizationState
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import PriorRequest
from orgservice.domain.models import Role
from orgservice.domain.models import User
from orgservice.domain.models import UserRef
from orgservice.domain.models import Workspace
from orgservice.domain.models import WorkspaceFields
from orgservice.domain.permissions import BUILT_IN_ROLES
from orgservice.domain.permissions import OWNER
from orgservice.domain.search import member_terms
from orgservice.domain.validation import new_id
from orgservice.service import ports
from orgservice.storage.organizations import etag_of

T = TypeVar("T")


class ConstraintViolation(Exception):
    """What the database would refuse with an integrity error: a bug in the caller."""


# --- rows: immutable, replaced on change, so copying a table is copying a dict --------


@dataclass(frozen=True)
class UserRow:
    user: User
    email_verified: bool


@dataclass(frozen=True)
class OrganizationRow:
    organization: Organization
    version: int
    event_seq: int

    def bumped(self, now: datetime, **changes: object) -> OrganizationRow:
        """A new version: update_time and etag change with it."""
        version = self.version + 1
        organization = replace(
            self.organization,
            update_time=now,
            etag=etag_of(self.organization.id, version),
            **changes,  # type: ignore[arg-type]
        )
        return replace(self, organization=organization, version=version)


@dataclass(frozen=True)
class RoleRow:
    role: Role
    create_time: datetime


@dataclass(frozen=True)
class MembershipRow:
    role: str
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class WorkspaceRow:
    workspace: Workspace
    version: int

    @classmethod
    def first(
        cls,
        workspace_id: str,
        organization_id: str,
        slug: str,
        name: str,
        description: str,
        now: datetime,
    ) -> WorkspaceRow:
        """A new workspace's first version."""
        etag = etag_of(workspace_id, 1)
        workspace = Workspace(
            workspace_id, organization_id, slug, name, description, now, now, etag
        )
        return cls(workspace, version=1)


@dataclass(frozen=True)
class InvitationRow:
    stored: Invitation  # the stored state: "pending" past its expiry reads as EXPIRED
    token_hash: str

    def at(self, now: datetime) -> Invitation:
        if self.stored.state is InvitationState.PENDING and self.stored.expire_time <= now:
            return replace(self.stored, state=InvitationState.EXPIRED)
        return self.stored


@dataclass(frozen=True)
class IdempotencyRow:
    prior: PriorRequest
    create_time: datetime


@dataclass
class Tables:
    users: dict[str, UserRow] = field(default_factory=dict)
    slugs: dict[str, str] = field(default_factory=dict)  # slug -> organization id
    organizations: dict[str, OrganizationRow] = field(default_factory=dict)
    roles: dict[tuple[str, str], RoleRow] = field(default_factory=dict)
    memberships: dict[tuple[str, str], MembershipRow] = field(default_factory=dict)
    workspaces: dict[tuple[str, str], WorkspaceRow] = field(default_factory=dict)
    invitations: dict[str, InvitationRow] = field(default_factory=dict)
    audit: dict[str, AuditEvent] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotencyRow] = field(default_factory=dict)
    domains: dict[tuple[str, str], Domain] = field(default_factory=dict)
    verified_domains: dict[str, str] = field(default_factory=dict)  # name -> organization id
    auto_joins: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def copy(self) -> Tables:
        return Tables(**{f.name: dict(getattr(self, f.name)) for f in fields(self)})

    def organization_row(self, organization_id: str) -> OrganizationRow:
        row = self.organizations.get(organization_id)
        if row is None:
            raise ConstraintViolation(f"no organization {organization_id}")
        return row

    def count_change(self, organization_id: str, *, members: int = 0, workspaces: int = 0) -> None:
        row = self.organization_row(organization_id)
        organization = replace(
            row.organization,
            member_count=row.organization.member_count + members,
            workspace_count=row.organization.workspace_count + workspaces,
        )
        self.organizations[organization_id] = replace(row, organization=organization)


def page_of(
    rows: Iterable[tuple[Cursor, T]],
    page: PageRequest,
    *,
    total: int | None = None,
    newest_first: bool = False,
) -> Page[T]:
    """Keyset paging like `storage.paging.Pager`: `total` counted unless given."""

    def position(cursor: Cursor) -> tuple[datetime, str]:
        return cursor.create_time, cursor.id

    ordered = sorted(rows, key=lambda row: position(row[0]), reverse=newest_first)
    if total is None:
        total = len(ordered)
    if page.after is not None:
        after = position(page.after)
        ordered = [
            row
            for row in ordered
            if (position(row[0]) < after if newest_first else position(row[0]) > after)
        ]
    chunk = ordered[: page.limit + 1]
    next_cursor = None
    if len(chunk) > page.limit:
        chunk = chunk[: page.limit]
        next_cursor = chunk[-1][0]
    return Page([item for _, item in chunk], total, next_cursor)


def _found_by(user: User, query: str) -> bool:
    terms = member_terms(user.username, user.email, user.display_name)
    return any(term.startswith(query) for term in terms)


def _contains(text: str, *values: str) -> bool:
    """The SQL filters' case-insensitive substring match."""
    needle = text.lower()
    return any(needle in value.lower() for value in values)


# --- the unit of work ------------------------------------------------------------------


class Session:
    """What the repositories of one unit of work share: its copy of the tables."""

    def __init__(self, database: FakeDatabase, budget: Budget, *, writes: bool) -> None:
        self._database = database
        self._budget = budget
        self._writes = writes
        self._base: Tables | None = None
        self._tables: Tables | None = None

    @property
    def tables(self) -> Tables:
        """The tables for reading; the first use is where a budget stops the work."""
        if self._tables is None:
            if not self._budget.may_block:
                raise WouldBlock()
            self._budget.check()
            self._base = self._database.tables
            self._tables = self._base.copy()
        return self._tables

    def writing(self) -> Tables:
        """The tables for writing: only in a transaction."""
        if not self._writes:
            raise AssertionError("a snapshot is read-only")
        return self.tables

    def commit(self) -> None:
        self._budget.check(COMMIT_MARGIN_SECONDS)
        if self._tables is None:
            return  # nothing was read or written
        if not self._writes:
            raise AssertionError("a snapshot has nothing to commit")
        if self._database.tables is not self._base:
            raise ConstraintViolation("another transaction committed meanwhile")
        self._database.publish(self._tables)
        self._base = self._tables
        self._tables = self._tables.copy()


class _Repository:
    def __init__(self, session: Session) -> None:
        self._s = session


class FakeUsers(_Repository):
    def get(self, user_id: str) -> User | None:
        row = self._s.tables.users.get(user_id)
        return row.user if row else None

    def find(self, ref: UserRef, *, limit: int = 2) -> list[User]:
        def matches(user: User) -> bool:
            if ref.user_id:
                return user.id == ref.user_id
            if ref.username:
                return user.username == ref.username
            return user.email.lower() == ref.email.lower()

        found = [row.user for row in self._s.tables.users.values() if matches(row.user)]
        return sorted(found, key=lambda user: (user.create_time, user.id))[:limit]

    def ensure(self, identity: Identity, now: datetime) -> tuple[User, bool]:
        tables = self._s.writing()
        existing = next(
            (row for row in tables.users.values() if row.user.subject == identity.subject), None
        )
        user = User(
            id=existing.user.id if existing else new_id(),
            subject=identity.subject,
            username=identity.username,
            email=identity.email,
            display_name=identity.display_name,
            create_time=existing.user.create_time if existing else now,
        )
        tables.users[user.id] = UserRow(user, identity.email_verified)
        return user, existing is None


class FakeOrganizations(_Repository):
    def create(self, new: NewOrganization, *, commit: bool = False) -> Organization | None:
        tables = self._s.writing()
        slug = next((slug for slug in new.slugs if slug not in tables.slugs), None)
        if slug is None:
            return None
        if new.id in tables.organizations or new.owner_user_id not in tables.users:
            raise ConstraintViolation("duplicate organization or unknown owner")
        now = new.create_time
        organization = Organization(
            id=new.id,
            slug=slug,
            name=new.name,
            description=new.description,
            labels=dict(new.labels),
            personal=new.personal,
            state=OrganizationState.ACTIVE,
            member_count=1,
            workspace_count=1,
            create_time=now,
            update_time=now,
            delete_time=None,
            purge_time=None,
            etag=etag_of(new.id, 1),
        )
        tables.slugs[slug] = new.id
        tables.organizations[new.id] = OrganizationRow(organization, version=1, event_seq=0)
        for index, built_in in enumerate(BUILT_IN_ROLES):
            role = Role(new.id, built_in.name, built_in.description, built_in.permissions, True)
            # A microsecond apart, like storage: lists show the built-ins in table order.
            tables.roles[new.id, built_in.name] = RoleRow(role, now + timedelta(microseconds=index))
        tables.memberships[new.id, new.owner_user_id] = MembershipRow(OWNER, now, now)
        tables.workspaces[new.id, new.workspace_id] = WorkspaceRow.first(
            new.workspace_id, new.id, new.workspace_slug, new.workspace_name, "", now
        )
        FakeAudit(self._s).record(new.created_event_for(slug))
        if commit:
            self._s.commit()
        return organization

    def id_for_slug(self, slug: str) -> str | None:
        return self._s.tables.slugs.get(slug)

    def get(self, organization_id: str) -> Organization | None:
        row = self._s.tables.organizations.get(organization_id)
        return row.organization if row else None

    def lock(self, organization_id: str) -> OrganizationState | None:
        row = self._s.writing().organizations.get(organization_id)
        return row.organization.state if row else None

    def update(self, organization_id: str, fields: OrganizationFields, now: datetime) -> None:
        tables = self._s.writing()
        row = tables.organization_row(organization_id)
        changes: dict[str, object] = {
            name: value
            for name, value in (
                ("name", fields.name),
                ("description", fields.description),
                ("labels", fields.labels),
                ("public_metadata", fields.public_metadata and fields.public_metadata.document),
                ("private_metadata", fields.private_metadata and fields.private_metadata.document),
            )
            if value is not None
        }
        if fields.settings is not None:
            new = fields.settings.values
            changes["settings"] = replace(
                row.organization.settings,
                **{name: getattr(new, name) for name in fields.settings.fields},
            )
        current = row.organization.slug
        if fields.slug is not None and fields.slug != current:
            if fields.slug in tables.slugs:
                raise SlugTaken(fields.slug)
            del tables.slugs[current]
            tables.slugs[fields.slug] = organization_id
            changes["slug"] = fields.slug
        tables.organizations[organization_id] = row.bumped(now, **changes)

    def set_state(
        self,
        organization_id: str,
        state: OrganizationState,
        now: datetime,
        purge_time: datetime | None,
    ) -> None:
        tables = self._s.writing()
        tables.organizations[organization_id] = tables.organization_row(organization_id).bumped(
            now,
            state=state,
            delete_time=now if state is OrganizationState.DELETED else None,
            purge_time=purge_time,
        )

    def find_page(self, query: OrganizationQuery, page: PageRequest) -> Page[Organization]:
        tables = self._s.tables

        def visible(organization: Organization) -> bool:
            active = organization.state is OrganizationState.ACTIVE
            if query.member_user_id is None:
                return active or query.show_deleted
            membership = tables.memberships.get((organization.id, query.member_user_id))
            if membership is None:
                return False
            # Members see deleted organizations only where they could undelete them.
            return active or (query.show_deleted and membership.role == OWNER)

        return page_of(
            (
                (Cursor(o.create_time, o.id), o)
                for o in (row.organization for row in tables.organizations.values())
                if visible(o) and _contains(query.name_filter, o.name, o.slug)
            ),
            page,
        )


class FakeMemberships(_Repository):
    def add(self, organization_id: str, user_id: str, role: str, now: datetime) -> None:
        tables = self._s.writing()
        key = (organization_id, user_id)
        if key in tables.memberships or user_id not in tables.users:
            raise ConstraintViolation("duplicate membership or unknown user")
        if (organization_id, role) not in tables.roles:
            raise ConstraintViolation(f"no role {role!r}")
        tables.memberships[key] = MembershipRow(role, now, now)
        tables.count_change(organization_id, members=1)

    def get(self, organization_id: str, user_id: str) -> Member | None:
        tables = self._s.tables
        row = tables.memberships.get((organization_id, user_id))
        if row is None:
            return None
        user = tables.users[user_id].user
        return Member(organization_id, user, row.role, row.create_time, row.update_time)

    def find_page(
        self,
        organization_id: str,
        role: str,
        page: PageRequest,
        *,
        total: int | None,
        query: str = "",
    ) -> Page[Member]:
        """`query`: folded text; a member matches when one of its terms starts with it."""
        members = (
            self.get(org_id, user_id)
            for (org_id, user_id), row in self._s.tables.memberships.items()
            if org_id == organization_id and (not role or row.role == role)
        )
        return page_of(
            (
                (Cursor(m.create_time, m.user.id), m)
                for m in members
                if m is not None and (not query or _found_by(m.user, query))
            ),
            page,
            total=None if role or query else total,
        )

    def count_with_role(self, organization_id: str, role: str) -> int:
        return sum(
            1
            for (org_id, _), row in self._s.tables.memberships.items()
            if org_id == organization_id and row.role == role
        )

    def has_member_with_email(self, organization_id: str, email: str) -> bool:
        tables = self._s.tables
        return any(
            tables.users[user_id].user.email.lower() == email.lower()
            for org_id, user_id in tables.memberships
            if org_id == organization_id
        )

    def set_role(self, organization_id: str, user_id: str, role: str, now: datetime) -> None:
        tables = self._s.writing()
        row = tables.memberships.get((organization_id, user_id))
        if row is None:
            return  # an UPDATE of no row
        if (organization_id, role) not in tables.roles:
            raise ConstraintViolation(f"no role {role!r}")
        tables.memberships[organization_id, user_id] = replace(row, role=role, update_time=now)

    def remove(self, organization_id: str, user_id: str) -> None:
        tables = self._s.writing()
        if tables.memberships.pop((organization_id, user_id), None) is not None:
            tables.count_change(organization_id, members=-1)

    def permissions_in(
        self, user_id: str, organization_ids: Collection[str]
    ) -> dict[str, frozenset[str]]:
        tables = self._s.tables
        held = {}
        for organization_id in organization_ids:
            row = tables.memberships.get((organization_id, user_id))
            if row is not None:
                held[organization_id] = frozenset(
                    tables.roles[organization_id, row.role].role.permissions
                )
        return held

    def of_user(self, user_id: str) -> list[Membership]:
        tables = self._s.tables
        found = []
        for (org_id, member_id), row in tables.memberships.items():
            organization = tables.organizations[org_id].organization
            if member_id == user_id and organization.state is OrganizationState.ACTIVE:
                found.append(
                    (row.create_time, org_id, Membership(org_id, organization.slug, row.role))
                )
        return [membership for *_, membership in sorted(found, key=lambda f: f[:2])]


class FakeRoles(_Repository):
    def add(
        self,
        organization_id: str,
        name: str,
        description: str,
        permissions: Sequence[str],
        now: datetime,
    ) -> Role:
        tables = self._s.writing()
        if (organization_id, name) in tables.roles:
            raise RoleExists(name)
        tables.organization_row(organization_id)
        role = Role(organization_id, name, description, tuple(permissions), False)
        tables.roles[organization_id, name] = RoleRow(role, now)
        return role

    def get(self, organization_id: str, name: str) -> Role | None:
        row = self._s.tables.roles.get((organization_id, name))
        return row.role if row else None

    def find_page(self, organization_id: str, page: PageRequest) -> Page[Role]:
        return page_of(
            (
                (Cursor(row.create_time, name), row.role)
                for (org_id, name), row in self._s.tables.roles.items()
                if org_id == organization_id
            ),
            page,
        )

    def update(
        self,
        organization_id: str,
        name: str,
        *,
        description: str | None,
        permissions: Sequence[str] | None,
        now: datetime,
    ) -> Role:
        tables = self._s.writing()
        row = tables.roles[organization_id, name]
        role = replace(
            row.role,
            description=row.role.description if description is None else description,
            permissions=row.role.permissions if permissions is None else tuple(permissions),
        )
        tables.roles[organization_id, name] = replace(row, role=role)
        return role

    def delete(self, organization_id: str, name: str) -> None:
        tables = self._s.writing()
        if any(
            org_id == organization_id and row.role == name
            for (org_id, _), row in tables.memberships.items()
        ):
            raise ConstraintViolation(f"the role {name!r} is still held")
        tables.roles.pop((organization_id, name), None)


class FakeWorkspaces(_Repository):
    def add(
        self,
        *,
        organization_id: str,
        workspace_id: str,
        slug: str,
        name: str,
        description: str,
        now: datetime,
    ) -> bool:
        tables = self._s.writing()
        if (organization_id, workspace_id) in tables.workspaces or self._slug_taken(
            tables, organization_id, slug
        ):
            return False
        tables.organization_row(organization_id)
        tables.workspaces[organization_id, workspace_id] = WorkspaceRow.first(
            workspace_id, organization_id, slug, name, description, now
        )
        tables.count_change(organization_id, workspaces=1)
        return True

    def exists(self, organization_id: str, workspace_id: str) -> bool:
        return (organization_id, workspace_id) in self._s.tables.workspaces

    def get(self, organization_id: str, workspace_id: str) -> Workspace | None:
        row = self._s.tables.workspaces.get((organization_id, workspace_id))
        return row.workspace if row else None

    def find_page(
        self, organization_id: str, name_filter: str, page: PageRequest, *, total: int | None
    ) -> Page[Workspace]:
        workspaces = (
            row.workspace
            for (org_id, _), row in self._s.tables.workspaces.items()
            if org_id == organization_id
        )
        return page_of(
            (
                (Cursor(w.create_time, w.id), w)
                for w in workspaces
                if _contains(name_filter, w.name, w.slug)
            ),
            page,
            total=None if name_filter else total,
        )

    def update(
        self, organization_id: str, workspace_id: str, fields: WorkspaceFields, now: datetime
    ) -> None:
        tables = self._s.writing()
        row = tables.workspaces.get((organization_id, workspace_id))
        if row is None:
            return  # an UPDATE of no row
        if fields.slug not in (None, row.workspace.slug) and self._slug_taken(
            tables, organization_id, fields.slug
        ):
            raise SlugTaken(fields.slug or "", scope="organization")
        version = row.version + 1
        current = row.workspace
        workspace = replace(
            current,
            name=current.name if fields.name is None else fields.name,
            slug=current.slug if fields.slug is None else fields.slug,
            description=current.description if fields.description is None else fields.description,
            update_time=now,
            etag=etag_of(workspace_id, version),
        )
        tables.workspaces[organization_id, workspace_id] = WorkspaceRow(workspace, version)

    def delete(self, organization_id: str, workspace_id: str) -> None:
        tables = self._s.writing()
        if tables.workspaces.pop((organization_id, workspace_id), None) is not None:
            tables.count_change(organization_id, workspaces=-1)

    @staticmethod
    def _slug_taken(tables: Tables, organization_id: str, slug: str | None) -> bool:
        return any(
            org_id == organization_id and row.workspace.slug == slug
            for (org_id, _), row in tables.workspaces.items()
        )


class FakeInvitations(_Repository):
    def add(self, invitation: Invitation, token_hash: str) -> None:
        tables = self._s.writing()
        if self._stored_pending(tables, invitation.organization_id, invitation.email) is not None:
            raise InvitationPending()
        if invitation.id in tables.invitations:
            raise ConstraintViolation(f"duplicate invitation {invitation.id}")
        tables.organization_row(invitation.organization_id)
        pending = replace(invitation, state=InvitationState.PENDING)
        tables.invitations[invitation.id] = InvitationRow(pending, token_hash)

    def get(self, invitation_id: str, now: datetime) -> Invitation | None:
        row = self._s.tables.invitations.get(invitation_id)
        return row.at(now) if row else None

    def get_by_token_hash(self, token_hash: str, now: datetime) -> Invitation | None:
        return next(
            (
                row.at(now)
                for row in self._s.tables.invitations.values()
                if row.token_hash == token_hash
            ),
            None,
        )

    def stored_pending_for(
        self, organization_id: str, email: str, now: datetime
    ) -> Invitation | None:
        row = self._stored_pending(self._s.tables, organization_id, email)
        return row.at(now) if row else None

    def find_page(
        self, organization_id: str, state: InvitationState | None, now: datetime, page: PageRequest
    ) -> Page[Invitation]:
        return self._page(
            lambda i: i.organization_id == organization_id and state in (None, i.state), now, page
        )

    def find_pending_for_email(
        self, email: str, now: datetime, page: PageRequest
    ) -> Page[Invitation]:
        return self._page(
            lambda i: i.email == email and i.state is InvitationState.PENDING, now, page
        )

    def count_pending_with_role(self, organization_id: str, role: str, now: datetime) -> int:
        return sum(
            1
            for i in (row.at(now) for row in self._s.tables.invitations.values())
            if i.organization_id == organization_id
            and i.role == role
            and i.state is InvitationState.PENDING
        )

    def update(
        self,
        organization_id: str,
        invitation_id: str,
        now: datetime,
        *,
        state: InvitationState | None = None,
        role: str | None = None,
        expire_time: datetime | None = None,
        token_hash: str | None = None,
    ) -> Invitation:
        tables = self._s.writing()
        row = tables.invitations.get(invitation_id)
        if row is None or row.stored.organization_id != organization_id:
            raise ConstraintViolation(f"no invitation {invitation_id}")
        if state is InvitationState.PENDING:
            holder = self._stored_pending(tables, organization_id, row.stored.email)
            if holder is not None and holder.stored.id != invitation_id:
                raise ConstraintViolation("the email's pending slot is taken")
        stored = replace(
            row.stored,
            update_time=now,
            state=row.stored.state if state is None else state,
            role=row.stored.role if role is None else role,
            expire_time=row.stored.expire_time if expire_time is None else expire_time,
        )
        updated = InvitationRow(stored, row.token_hash if token_hash is None else token_hash)
        tables.invitations[invitation_id] = updated
        return updated.at(now)

    def _page(
        self, keep: Callable[[Invitation], bool], now: datetime, page: PageRequest
    ) -> Page[Invitation]:
        return page_of(
            (
                (Cursor(i.create_time, i.id), i)
                for i in (row.at(now) for row in self._s.tables.invitations.values())
                if keep(i)
            ),
            page,
        )

    @staticmethod
    def _stored_pending(tables: Tables, organization_id: str, email: str) -> InvitationRow | None:
        return next(
            (
                row
                for row in tables.invitations.values()
                if row.stored.organization_id == organization_id
                and row.stored.email == email
                and row.stored.state is InvitationState.PENDING
            ),
            None,
        )


class FakeAudit(_Repository):
    def record(self, event: AuditEvent) -> None:
        tables = self._s.writing()
        row = tables.organization_row(event.organization_id)
        seq = row.event_seq + 1
        tables.organizations[event.organization_id] = replace(row, event_seq=seq)
        tables.audit[event.id] = replace(event, details=dict(event.details), seq=seq)

    def find_page(self, organization_id: str, action: str, page: PageRequest) -> Page[AuditEvent]:
        return page_of(
            (
                (Cursor(e.create_time, e.id), e)
                for e in self._s.tables.audit.values()
                if e.organization_id == organization_id
                and (not action or e.action == action or e.action.startswith(f"{action}."))
            ),
            page,
            newest_first=True,
        )


class FakeFeed(_Repository):
    """The feed without concurrency: events are placed in organization then seq order."""

    def heads(self, organization_ids: Sequence[str]) -> dict[str, int]:
        rows = self._s.tables.organizations
        return {org: rows[org].event_seq for org in organization_ids if org in rows}

    def after(self, organization_id: str, seq: int, limit: int) -> list[AuditEvent]:
        events = [
            event
            for event in self._s.tables.audit.values()
            if event.organization_id == organization_id and event.seq > seq
        ]
        return sorted(events, key=lambda event: event.seq)[:limit]

    def unplaced(self) -> bool:
        return any(not event.feed_position for event in self._s.tables.audit.values())

    def place(self, limit: int) -> int | None:
        tables = self._s.writing()
        unplaced = sorted(
            (event for event in tables.audit.values() if not event.feed_position),
            key=lambda event: (event.organization_id, event.seq),
        )[:limit]
        start = self.newest_position() + 1
        for offset, event in enumerate(unplaced):
            tables.audit[event.id] = replace(event, feed_position=start + offset)
        return len(unplaced)

    def newest_position(self) -> int:
        return max((event.feed_position for event in self._s.tables.audit.values()), default=0)

    def after_position(self, position: int, limit: int) -> list[AuditEvent]:
        events = [e for e in self._s.tables.audit.values() if e.feed_position > position]
        return sorted(events, key=lambda event: event.feed_position)[:limit]


class FakeDomains(_Repository):
    def add(self, organization_id: str, name: str, token: str, now: datetime) -> bool:
        tables = self._s.writing()
        tables.organization_row(organization_id)
        if (organization_id, name) in tables.domains:
            return False
        tables.domains[organization_id, name] = Domain(
            organization_id, name, DomainState.PENDING, token, now, None
        )
        return True

    def count(self, organization_id: str) -> int:
        return sum(org_id == organization_id for org_id, _ in self._s.tables.domains)

    def get(self, organization_id: str, name: str) -> Domain | None:
        return self._s.tables.domains.get((organization_id, name))

    def of_organization(self, organization_id: str) -> list[Domain]:
        found = [d for d in self._s.tables.domains.values() if d.organization_id == organization_id]
        return sorted(found, key=lambda d: (d.create_time, d.name))

    def holder(self, name: str) -> str | None:
        return self._s.tables.verified_domains.get(name)

    def verify(self, organization_id: str, name: str, now: datetime) -> bool:
        tables = self._s.writing()
        if name in tables.verified_domains:
            return False
        tables.verified_domains[name] = organization_id
        domain = tables.domains[organization_id, name]
        tables.domains[organization_id, name] = replace(
            domain, state=DomainState.VERIFIED, verify_time=now
        )
        return True

    def delete(self, organization_id: str, name: str) -> None:
        tables = self._s.writing()
        tables.domains.pop((organization_id, name), None)
        if tables.verified_domains.get(name) == organization_id:
            del tables.verified_domains[name]


class FakeAutoJoins(_Repository):
    def candidate(self, domain: str, user_id: str) -> str | None:
        tables = self._s.tables
        organization_id = tables.verified_domains.get(domain)
        if organization_id is None:
            return None
        organization = tables.organizations[organization_id].organization
        limit = organization.settings.max_members
        joinable = (
            organization.state is OrganizationState.ACTIVE
            and organization.settings.auto_join_role != ""
            and (limit == 0 or organization.member_count < limit)
            and (organization_id, user_id) not in tables.memberships
            and (organization_id, user_id) not in tables.auto_joins
        )
        return organization_id if joinable else None

    def record(self, organization_id: str, user_id: str, now: datetime) -> bool:
        tables = self._s.writing()
        if (organization_id, user_id) in tables.auto_joins:
            return False
        tables.auto_joins[organization_id, user_id] = now
        return True


class FakeIdempotency(_Repository):
    def claim(
        self, user_id: str, request_id: str, request: PriorRequest, now: datetime, since: datetime
    ) -> PriorRequest | None:
        tables = self._s.writing()
        if user_id not in tables.users:
            raise ConstraintViolation(f"no user {user_id}")
        existing = tables.idempotency.get((user_id, request_id))
        if existing is not None and existing.create_time >= since:
            return existing.prior
        tables.idempotency[user_id, request_id] = IdempotencyRow(request, now)
        return None


class FakeUnitOfWork:
    def __init__(self, session: Session) -> None:
        self._session = session
        self.users = FakeUsers(session)
        self.organizations = FakeOrganizations(session)
        self.memberships = FakeMemberships(session)
        self.roles = FakeRoles(session)
        self.workspaces = FakeWorkspaces(session)
        self.invitations = FakeInvitations(session)
        self.audit = FakeAudit(session)
        self.feed = FakeFeed(session)
        self.idempotency = FakeIdempotency(session)
        self.domains = FakeDomains(session)
        self.auto_joins = FakeAutoJoins(session)

    def access(
        self, organization_id: str, user_id: str, *, lock: bool = False
    ) -> AccessRecord | None:
        tables = self._session.writing() if lock else self._session.tables
        row = tables.organizations.get(organization_id)
        if row is None:
            return None
        membership = tables.memberships.get((organization_id, user_id))
        role = tables.roles.get((organization_id, membership.role)) if membership else None
        return AccessRecord(
            row.organization.state,
            membership.role if membership else None,
            frozenset(role.role.permissions) if role else frozenset(),
        )

    def member_page(
        self, organization_id: str, role: str, page: PageRequest, *, total: int | None
    ) -> Page[Member]:
        return self.memberships.find_page(organization_id, role, page, total=total)

    def organization(self, organization_id: str) -> Organization | None:
        return self.organizations.get(organization_id)

    def organization_seen_by(
        self, organization_id: str, user_id: str
    ) -> tuple[Organization | None, AccessRecord | None]:
        return self.organizations.get(organization_id), self.access(organization_id, user_id)

    def organization_id_for_slug(self, slug: str) -> str | None:
        return self.organizations.id_for_slug(slug)

    def commit(self) -> None:
        self._session.commit()


class FakeDatabase:
    """The committed tables, and units of work over copies of them."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.commits = 0
        self.snapshot_modes: list[bool] = []  # the `cached` flag of every snapshot

    @contextmanager
    def transaction(self, budget: Budget) -> Iterator[FakeUnitOfWork]:
        yield FakeUnitOfWork(Session(self, budget, writes=True))

    @contextmanager
    def snapshot(self, budget: Budget, *, cached: bool = True) -> Iterator[FakeUnitOfWork]:
        self.snapshot_modes.append(cached)
        yield FakeUnitOfWork(Session(self, budget, writes=False))

    def publish(self, tables: Tables) -> None:
        self.tables = tables
        self.commits += 1


# mypy --strict checks here that the fake implements the Protocols use cases depend on.
_database: ports.Database = FakeDatabase()
_unit_of_work: ports.UnitOfWork = FakeUnitOfWork(Session(FakeDatabase(), Budget(0), writes=False))
