"""The in-memory storage keeps the promises the use-case tests rely on."""

from __future__ import annotations

import pytest

from orgservice.domain.budget import Budget
from orgservice.domain.budget import WouldBlock
from orgservice.domain.budget import unlimited
from orgservice.domain.errors import CallDeadlineExceeded
from orgservice.domain.models import Identity
from orgservice.domain.models import WorkspaceFields
from tests.unit.fake_storage import ConstraintViolation
from tests.unit.fake_storage import FakeDatabase
from tests.unit.world import T0
from tests.unit.world import Cast
from tests.unit.world import World


def test_nothing_is_published_without_commit() -> None:
    database = FakeDatabase()
    with database.transaction(unlimited()) as uow:
        user, _ = uow.users.ensure(Identity(subject="a"), T0)
        assert uow.users.get(user.id) == user  # visible inside
    assert database.tables.users == {}
    assert database.commits == 0


def test_a_commit_publishes_and_snapshots_see_it() -> None:
    database = FakeDatabase()
    with database.transaction(unlimited()) as uow:
        user, created = uow.users.ensure(Identity(subject="a"), T0)
        uow.commit()
    assert created
    with database.snapshot(unlimited()) as uow:
        assert uow.users.get(user.id) == user


def test_a_transaction_reads_its_own_copy() -> None:
    database = FakeDatabase()
    with database.transaction(unlimited()) as first, database.snapshot(unlimited()) as reader:
        assert reader.users.get("nobody") is None  # the snapshot starts before the write
        user, _ = first.users.ensure(Identity(subject="a"), T0)
        first.commit()
        assert reader.users.get(user.id) is None


def test_a_commit_over_a_newer_commit_is_refused() -> None:
    database = FakeDatabase()
    with database.transaction(unlimited()) as late, database.transaction(unlimited()) as early:
        late.users.ensure(Identity(subject="late"), T0)
        early.users.ensure(Identity(subject="early"), T0)
        early.commit()
        with pytest.raises(ConstraintViolation):
            late.commit()
    assert [row.user.subject for row in database.tables.users.values()] == ["early"]


def test_snapshots_are_read_only() -> None:
    database = FakeDatabase()
    with database.snapshot(unlimited()) as uow, pytest.raises(AssertionError):
        uow.users.ensure(Identity(subject="a"), T0)


def test_budgets_stop_work_at_the_first_statement_and_at_commit() -> None:
    database = FakeDatabase()
    with database.snapshot(unlimited().no_io()) as uow, pytest.raises(WouldBlock):
        uow.users.get("x")
    with database.snapshot(Budget(0)) as uow, pytest.raises(CallDeadlineExceeded):
        uow.users.get("x")
    with database.transaction(Budget(0.01, clock=lambda: 0.0)) as uow:
        uow.users.ensure(Identity(subject="a"), T0)
        with pytest.raises(CallDeadlineExceeded):
            uow.commit()
    assert database.tables.users == {}


def test_counts_follow_the_rows(world: World, cast: Cast) -> None:
    world.services.workspaces.create(cast.admin, cast.id, WorkspaceFields(name="W"))
    world.services.members.remove(cast.viewer, cast.id, cast.viewer.caller.user_id)
    tables = world.db.tables
    organization = tables.organizations[cast.id].organization
    assert organization.member_count == sum(1 for org, _ in tables.memberships if org == cast.id)
    assert organization.workspace_count == sum(1 for org, _ in tables.workspaces if org == cast.id)
    assert (organization.member_count, organization.workspace_count) == (3, 2)


def test_the_database_refuses_what_a_foreign_key_refuses(world: World, cast: Cast) -> None:
    with world.db.transaction(unlimited()) as uow:
        with pytest.raises(ConstraintViolation):
            uow.memberships.add(cast.id, "no-such-user", "viewer", T0)
        with pytest.raises(ConstraintViolation):
            uow.memberships.add(cast.id, cast.outsider.caller.user_id, "no-such-role", T0)
        with pytest.raises(ConstraintViolation):
            uow.roles.delete(cast.id, "viewer")  # still held
