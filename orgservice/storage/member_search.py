"""The member search index: folded terms per membership (domain.search), written in the
transaction of every membership change and profile update.

Consistency with concurrent profile updates (PostgreSQL): a new membership reads the
user's profile FOR SHARE, so it waits for an update in progress and then indexes the
new profile; a profile update locks the user's memberships (FOR KEY SHARE) before it
rewrites their terms, so a removal in progress finishes first (or waits), and the two
never wait for each other's term rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import bindparam
from sqlalchemy import case
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from orgservice.domain.search import member_terms
from orgservice.domain.search import prefix_range
from orgservice.storage.sql import Repository
from orgservice.storage.sql import Sql
from orgservice.storage.tables import member_search_terms
from orgservice.storage.tables import memberships
from orgservice.storage.tables import users

_TERMS = member_search_terms.c
# Bounds of the number of matching terms up to which a query collects its matches
# through the term index; beyond, it walks the list in order (see plan_search).
_MIN_COLLECT = 200
_MAX_COLLECT = 20_000
_TERMS_PER_MEMBER = 2  # typical: a username, an email, a name of two words share prefixes
_SAMPLE_SIZE = 200
_PROFILE_FOR_SHARE = (
    select(users.c.username, users.c.email, users.c.display_name)
    .where(users.c.id == bindparam("user_id"))
    .with_for_update(read=True)
)
_INSERT_TERMS = insert(member_search_terms)


def term_rows(
    organization_id: str, user_id: str, create_time: datetime, profile: tuple[str, str, str]
) -> list[dict[str, Any]]:
    """The rows that index one membership; `profile`: (username, email, display name)."""
    return [
        {
            "organization_id": organization_id,
            "user_id": user_id,
            "term": term,
            "create_time": create_time,
        }
        for term in sorted(member_terms(*profile))
    ]


class MemberSearchIndex(Repository):
    def __init__(self, sql: Sql) -> None:
        super().__init__(sql)
        self._locked_profiles: dict[str, tuple[str, str, str]] = {}

    def add(self, organization_id: str, user_id: str, create_time: datetime) -> None:
        """Indexes a new membership under the user's current profile."""
        profile = self.locked_profile(user_id)
        self._insert(term_rows(organization_id, user_id, create_time, profile))

    def locked_profile(self, user_id: str) -> tuple[str, str, str]:
        """The profile a new membership is indexed under (username, email, display name),
        locked until the transaction ends: a concurrent profile change, which reindexes
        the user's memberships, waits for the new one to be committed. Read once per
        transaction: while the lock is held, it cannot change."""
        profile = self._locked_profiles.get(user_id)
        if profile is None:
            username, email, display_name = self._sql.execute(
                _PROFILE_FOR_SHARE, {"user_id": user_id}
            ).one()
            profile = self._locked_profiles[user_id] = (username, email, display_name)
        return profile

    def reindex_user(self, user_id: str, profile: tuple[str, str, str]) -> list[str]:
        """Rewrites the terms of every membership of a user whose profile changed;
        returns the organizations of those memberships."""
        held = self._sql.execute(
            select(memberships.c.organization_id, memberships.c.create_time)
            .where(memberships.c.user_id == user_id)
            .with_for_update(read=True, key_share=True)
        ).all()
        if held:
            self._sql.execute(
                delete(member_search_terms).where(
                    _TERMS.organization_id == bindparam("organization"), _TERMS.user_id == user_id
                ),
                [{"organization": organization_id} for organization_id, _ in held],
            )
        rows = [
            row
            for organization_id, create_time in held
            for row in term_rows(organization_id, user_id, create_time, profile)
        ]
        self._insert(rows)
        return [organization_id for organization_id, _ in held]

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._sql.execute(_INSERT_TERMS, rows)


@dataclass(frozen=True)
class SearchPlan:
    """How ListMembers finds a query's matches: a condition on memberships, and the
    number of matches when it is estimated rather than counted (None: count them)."""

    condition: ColumnElement[bool]
    estimated_total: int | None


def plan_search(
    sql: Sql, organization_id: str, query: str, *, role: str, member_count: int, page_size: int
) -> SearchPlan:
    """A narrow prefix (M matching members) is one range scan of the term index; its
    matches are then sorted into the list's order and counted exactly: cost ~ M. A
    broad one walks the list in its own order instead, probing each member's terms
    (primary key lookups) until the page is full: cost ~ page size x N / M for N
    members; its total is estimated from a sample. The costs meet at M ~ sqrt(page
    size x N), which bounds either path: about 2,000 rows or probes for a page of 50 of
    100,000 members, whatever the prefix.

    A sample of the list tells a broad prefix at once; otherwise counting the matching
    terms up to the crossover decides."""
    crossover = math.isqrt(max(1, page_size * member_count))
    collect_limit = min(max(_TERMS_PER_MEMBER * crossover, _MIN_COLLECT), _MAX_COLLECT)
    low, high = prefix_range(query)
    in_range = _TERMS.term >= low
    if high is not None:
        in_range = in_range & (_TERMS.term < high)

    def broad(estimate: int) -> SearchPlan:
        return SearchPlan(_has_term(memberships.c.user_id, organization_id, in_range), estimate)

    estimate = None
    if member_count * _TERMS_PER_MEMBER > collect_limit:  # small ones always collect
        estimate = _estimate(sql, organization_id, in_range, role=role, member_count=member_count)
        if estimate >= crossover:
            return broad(estimate)
    terms = select(_TERMS.user_id).where(_TERMS.organization_id == organization_id, in_range)
    found = sql.execute(
        select(func.count()).select_from(terms.limit(collect_limit).subquery())
    ).scalar_one()
    if found < collect_limit:
        return SearchPlan(memberships.c.user_id.in_(terms), None)
    if estimate is None:
        estimate = _estimate(sql, organization_id, in_range, role=role, member_count=member_count)
    return broad(estimate)


def _has_term(
    user_id: ColumnElement[str], organization_id: str, in_range: ColumnElement[bool]
) -> ColumnElement[bool]:
    """The member has a matching term: a probe of the primary key (organization, user)."""
    return exists().where(
        _TERMS.organization_id == organization_id, _TERMS.user_id == user_id, in_range
    )


def _estimate(
    sql: Sql, organization_id: str, in_range: ColumnElement[bool], *, role: str, member_count: int
) -> int:
    """The share of matches among the first members in the list's order, scaled."""
    sample = (
        select(memberships.c.user_id, memberships.c.role)
        .where(memberships.c.organization_id == organization_id)
        .order_by(memberships.c.create_time, memberships.c.user_id)
        .limit(_SAMPLE_SIZE)
        .subquery()
    )
    match = _has_term(sample.c.user_id, organization_id, in_range)
    if role:
        match = match & (sample.c.role == role)
    sampled, matched = sql.execute(
        select(func.count(), func.coalesce(func.sum(case((match, 1), else_=0)), 0)).select_from(
            sample
        )
    ).one()
    return round(member_count * matched / sampled) if sampled else 0
