"""How an organization comes into being: its slug claimed, its row, the built-in roles,
its owner (indexed for member search), its default workspace and its first audit event.

Organizations are created often (every new user gets one), so on PostgreSQL all of it is
one statement of data-modifying CTEs, which also locks the owner's profile. The
statement claims the first free one of the candidate slugs (a name already in use costs
no second attempt), and every insert reads the organization that claim let through, so
when every candidate is taken nothing is inserted. Foreign keys are checked at the end
of the statement, when every row is there.
SQLite, which has no data-modifying CTEs (and no network round trips to save), inserts
row by row.

A creation sends no notification to the other processes, unlike every other change:
nothing there can hold an organization that did not exist, and their watchers of every
organization, the only ones it concerns, are woken twice a second anyway (`FeedHub`).
Creations are the most frequent change, and without a notification 11 to 23% more of
them ran a second (docs/performance.md): PostgreSQL serializes the commits of notifying
transactions, and wakes every listening process.
"""

from __future__ import annotations

import json
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Integer
from sqlalchemy import Text
from sqlalchemy import bindparam
from sqlalchemy import cast
from sqlalchemy import column
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import literal
from sqlalchemy import literal_column
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from orgservice.domain.models import MAX_SLUG_CANDIDATES
from orgservice.domain.models import NewOrganization
from orgservice.domain.models import OrganizationSettings
from orgservice.domain.models import OrganizationState
from orgservice.domain.permissions import BUILT_IN_ROLES
from orgservice.domain.permissions import OWNER
from orgservice.domain.search import member_terms
from orgservice.storage.audit import EVENT_COLUMNS
from orgservice.storage.audit import AuditRepository
from orgservice.storage.member_search import MemberSearchIndex
from orgservice.storage.roles import role_values
from orgservice.storage.sql import Sql
from orgservice.storage.tables import audit_events
from orgservice.storage.tables import member_search_terms
from orgservice.storage.tables import memberships
from orgservice.storage.tables import organization_slugs
from orgservice.storage.tables import organizations
from orgservice.storage.tables import roles
from orgservice.storage.tables import users
from orgservice.storage.tables import workspaces

# The organization's first audit event (its creation) is numbered 1.
FIRST_EVENT_SEQ = 1


def _unclaimed(candidate: ColumnElement[str]) -> ColumnElement[bool]:
    """No organization holds the `candidate` slug. A scalar subquery, run per candidate
    through the slug index whatever the statistics: PostgreSQL turns NOT EXISTS into an
    anti join, which a plan cached while the table had no statistics yet (a new
    database) hashed with a scan of every slug, each create costing more than the last."""
    holder = select(organization_slugs.c.organization_id).where(
        organization_slugs.c.slug == candidate
    )
    return holder.scalar_subquery().is_(None)


# -- row by row (SQLite) ---------------------------------------------------------------------

_INSERT_ORGANIZATION = insert(organizations)
# The first candidate slug no organization holds, claimed in one statement (SQLite has
# a single writer: nothing can claim it between the check and the insert).
_sqlite_candidates = func.json_each(bindparam("slugs", type_=Text)).table_valued(
    "value", "key", name="candidates"
)
_CLAIM_FIRST_FREE = (
    sqlite_insert(organization_slugs)
    .from_select(
        ["slug", "organization_id"],
        select(_sqlite_candidates.c.value, bindparam("id", type_=organizations.c.id.type))
        .where(_unclaimed(_sqlite_candidates.c.value))
        .order_by(_sqlite_candidates.c.key)
        .limit(1),
    )
    .returning(organization_slugs.c.slug)
)
_INSERT_ROLES = insert(roles)
_INSERT_MEMBERSHIP = insert(memberships)
_INSERT_WORKSPACE = insert(workspaces)

# -- one statement (PostgreSQL) --------------------------------------------------------------


def _parameter(table: Any, name: str, key: str | None = None) -> Any:
    """A bind parameter typed like the table's column."""
    return bindparam(key or name, type_=table.c[name].type)


# The first candidate slug no organization holds. A concurrent create may claim it
# between the check and the insert: then nothing is inserted, as for a taken slug.
# The LIMIT tells the planner how few candidates there are (it assumes 100 rows of a
# set-returning function); each is looked up in the slug index (`_unclaimed`).
_candidates = (
    func.jsonb_array_elements_text(cast(bindparam("slugs", type_=Text), JSONB))
    .table_valued("value", with_ordinality="position")
    .render_derived("candidates")
)
_candidate = (
    select(_candidates.c.value, _candidates.c.position)
    .limit(literal_column(str(MAX_SLUG_CANDIDATES), Integer))  # a constant, not a parameter
    .subquery("candidate")
)
# The owner's profile, locked if it is the one the caller expects (then the owner is
# indexed under it): a concurrent profile change, which reindexes the user's
# memberships, waits for the new one to be committed. Empty if the profile differs, or
# if a profile change holds the row (skipped, not waited for: a statement run alone has
# no lock timeout): then nothing is inserted.
_owner_profile = (
    select(users.c.id)
    .where(
        users.c.id == _parameter(memberships, "user_id", "owner_user_id"),
        users.c.username == bindparam("owner_username"),
        users.c.email == bindparam("owner_email"),
        users.c.display_name == bindparam("owner_display_name"),
    )
    .with_for_update(read=True, skip_locked=True)
    .cte("owner_profile")
)
_profile_held = exists().select_from(_owner_profile)
_claimed = (
    pg_insert(organization_slugs)
    .from_select(
        ["slug", "organization_id"],
        select(_candidate.c.value, _parameter(organizations, "id"))
        .where(_profile_held, _unclaimed(_candidate.c.value))
        .order_by(_candidate.c.position)
        .limit(1),
    )
    .on_conflict_do_nothing()
    .returning(organization_slugs.c.slug)
    .cte("claimed")
)
# The new row travels as one JSON document, read as an organizations record with the
# claimed slug set in. PostgreSQL fills the columns by name, so the statement neither
# lists them nor takes a parameter for each: it stays within what psycopg caches the
# parsing of (4 KiB, 50 parameters; parsing it again cost about 0.1 ms a create). A key
# the document lacks would be NULL, not the column's default: the document names every
# column (tested). `claimed` is named in the text, so the statement adds that CTE first.
_created = (
    text(
        "INSERT INTO organizations SELECT given.* FROM claimed,"
        " jsonb_populate_record(NULL::organizations, CAST(:organization AS JSONB)"
        " || jsonb_build_object('slug', claimed.slug)) AS given"
        " RETURNING id, slug, create_time, event_seq"
    )
    .bindparams(bindparam("organization", type_=Text))
    .columns(
        organizations.c.id,
        organizations.c.slug,
        organizations.c.create_time,
        organizations.c.event_seq,
    )
    .cte("created")
)
# Lists order roles by creation time: a microsecond apart, the built-ins come first and
# in the table's order (owner, admin, developer, viewer). Their rows travel as one JSON
# parameter, made once: the statement stays short enough for the driver to cache its
# parsing, and a string costs the driver nothing to send (arrays are encoded item by item).
_built_in = (
    func.jsonb_to_recordset(cast(bindparam("built_in_roles", type_=Text), JSONB))
    .table_valued(
        column("name", Text),
        column("description", Text),
        column("permissions", JSONB),
        column("position", Integer),
    )
    .render_derived("built_in", with_types=True)
)
_BUILT_IN_ROLES = json.dumps(
    [
        {
            "name": role.name,
            "description": role.description,
            "permissions": list(role.permissions),
            "position": position,
        }
        for position, role in enumerate(BUILT_IN_ROLES)
    ]
)
_ROLE_COLUMNS = (
    "organization_id",
    "name",
    "description",
    "permissions",
    "built_in",
    "create_time",
    "update_time",
)
_WORKSPACE_COLUMNS = (
    "organization_id",
    "id",
    "slug",
    "name",
    "description",
    "version",
    "create_time",
    "update_time",
)
_role_time = (
    _created.c.create_time + literal_column("interval '1 microsecond'") * _built_in.c.position
)
_roles = (
    insert(roles)
    .from_select(
        [*_ROLE_COLUMNS],
        select(
            _created.c.id,
            _built_in.c.name,
            _built_in.c.description,
            _built_in.c.permissions,
            true(),
            _role_time,
            _role_time,
        ).select_from(_created.join(_built_in, true())),
    )
    .cte("roles_created")
)
_owner = (
    insert(memberships)
    .from_select(
        ["organization_id", "user_id", "role", "create_time", "update_time"],
        select(
            _created.c.id,
            _parameter(memberships, "user_id", "owner_user_id"),
            literal(OWNER),
            _created.c.create_time,
            _created.c.create_time,
        ),
    )
    .returning(memberships.c.organization_id, memberships.c.user_id, memberships.c.create_time)
    .cte("owner")
)
_owner_terms = (
    insert(member_search_terms)
    .from_select(
        ["organization_id", "user_id", "term", "create_time"],
        select(
            _owner.c.organization_id,
            _owner.c.user_id,
            func.jsonb_array_elements_text(cast(bindparam("owner_terms", type_=Text), JSONB)),
            _owner.c.create_time,
        ),
    )
    .cte("owner_terms")
)
_workspace = (
    insert(workspaces)
    .from_select(
        [*_WORKSPACE_COLUMNS],
        select(
            _created.c.id,
            _parameter(workspaces, "id", "workspace_id"),
            _parameter(workspaces, "slug", "workspace_slug"),
            _parameter(workspaces, "name", "workspace_name"),
            literal(""),
            literal(1),
            _created.c.create_time,
            _created.c.create_time,
        ),
    )
    .cte("default_workspace")
)
_first_event = (
    insert(audit_events)
    .from_select(
        ["organization_id", "id", "seq", "create_time", *EVENT_COLUMNS],
        select(
            _created.c.id,
            _parameter(audit_events, "id", "event_id"),
            _created.c.event_seq,
            _created.c.create_time,
            *(
                # The event names the slug claimed.
                func.jsonb_set(
                    _parameter(audit_events, name),
                    literal_column("'{slug}'::text[]"),
                    func.to_jsonb(_created.c.slug),
                )
                if name == "details"
                else _parameter(audit_events, name)
                for name in EVENT_COLUMNS
            ),
        ),
    )
    .cte("first_event")
)
_CREATE_IN_ONE_STATEMENT = select(
    _profile_held.label("profile_held"), select(_created.c.slug).scalar_subquery().label("slug")
).add_cte(_claimed, _created, _roles, _owner_terms, _workspace, _first_event)


def create_organization(
    sql: Sql, search: MemberSearchIndex, new: NewOrganization, *, alone: bool
) -> str | None:
    """Inserts an active organization with its built-in roles, its owner, its default
    workspace (so its counts start at one) and its first audit event; returns the slug
    it claimed, or None when every one was taken (then nothing was inserted).

    `alone`: nothing but a commit follows in this unit of work, so on PostgreSQL, if it
    has not begun a transaction either, the statement may be a transaction of its own."""
    values = _organization_values(new)
    if sql.postgresql:
        return _create_in_one_statement(sql, search, new, values, alone=alone)
    claim = {"slugs": json.dumps(new.slugs), "id": new.id}
    slug: str | None = sql.execute(_CLAIM_FIRST_FREE, claim).scalar_one_or_none()
    if slug is None:
        return None
    now = new.create_time
    sql.execute(_INSERT_ORGANIZATION, {**values, "slug": slug})
    sql.execute(
        _INSERT_ROLES,
        [
            role_values(
                new.id,
                role.name,
                role.description,
                role.permissions,
                built_in=True,
                now=now + timedelta(microseconds=position),
            )
            for position, role in enumerate(BUILT_IN_ROLES)
        ],
    )
    owner = {"organization_id": new.id, "user_id": new.owner_user_id, "role": OWNER}
    sql.execute(_INSERT_MEMBERSHIP, {**owner, "create_time": now, "update_time": now})
    search.add(new.id, new.owner_user_id, now)
    sql.execute(
        _INSERT_WORKSPACE,
        {
            "organization_id": new.id,
            "id": new.workspace_id,
            "slug": new.workspace_slug,
            "name": new.workspace_name,
            "description": "",
            "version": 1,
            "create_time": now,
            "update_time": now,
        },
    )
    AuditRepository(sql).insert(new.created_event_for(slug), FIRST_EVENT_SEQ)
    return slug


def _create_in_one_statement(
    sql: Sql,
    search: MemberSearchIndex,
    new: NewOrganization,
    values: dict[str, Any],
    *,
    alone: bool,
) -> str | None:
    """The profile the caller expects costs no read of its own; if it has changed since,
    the statement inserts nothing and runs again under the profile read and locked."""
    owner = new.owner_user_id
    profile = new.owner_profile or search.locked_profile(owner)
    parameters = {
        "id": new.id,  # for the slug claim; the document holds it too
        "organization": json.dumps(values, default=datetime.isoformat, ensure_ascii=False),
        "slugs": json.dumps(new.slugs),
        "built_in_roles": _BUILT_IN_ROLES,
        "owner_user_id": owner,
        "workspace_id": new.workspace_id,
        "workspace_slug": new.workspace_slug,
        "workspace_name": new.workspace_name,
        "event_id": new.created_event.id,
        **{name: getattr(new.created_event, name) for name in EVENT_COLUMNS},
    }

    def run(profile: tuple[str, str, str]) -> tuple[bool, str | None]:
        username, email, display_name = profile
        run_parameters = {
            **parameters,
            "owner_username": username,
            "owner_email": email,
            "owner_display_name": display_name,
            "owner_terms": json.dumps(sorted(member_terms(*profile))),
        }
        if alone and sql.may_run_alone:
            row = sql.run_alone(_CREATE_IN_ONE_STATEMENT, run_parameters)
        else:
            row = sql.execute(_CREATE_IN_ONE_STATEMENT, run_parameters).one()
        return row.profile_held, row.slug

    held, claimed = run(profile)
    if not held:
        profile = search.locked_profile(owner)
        held, claimed = run(profile)
        assert held, "a profile this transaction locked cannot have changed"
    return claimed


def _organization_values(new: NewOrganization) -> dict[str, Any]:
    now = new.create_time
    return {
        "id": new.id,
        "name": new.name,
        "description": new.description,
        "labels": new.labels,
        "personal": new.personal,
        "state": OrganizationState.ACTIVE.value,
        "version": 1,
        "member_count": 1,
        "workspace_count": 1,
        "event_seq": FIRST_EVENT_SEQ,  # the created event, inserted with the organization
        **settings_values(OrganizationSettings()),
        "public_metadata": {},
        "private_metadata": {},
        "create_time": now,
        "update_time": now,
        "delete_time": None,
        "purge_time": None,
    }


def settings_values(settings: OrganizationSettings) -> dict[str, Any]:
    """The organizations columns of the settings, named like the settings' fields."""
    return {
        "auto_join_role": settings.auto_join_role,
        "restrict_invitations_to_domains": settings.restrict_invitations_to_domains,
        "max_members": settings.max_members,
        "default_invitation_ttl": settings.default_invitation_ttl,
    }
