"""The unit of work: one transaction and the repositories that share it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from orgservice.storage.audit import AuditRepository
from orgservice.storage.database import read_only
from orgservice.storage.idempotency import IdempotencyRepository
from orgservice.storage.invitations import InvitationRepository
from orgservice.storage.memberships import MembershipRepository
from orgservice.storage.organizations import OrganizationRepository
from orgservice.storage.roles import RoleRepository
from orgservice.storage.users import UserRepository
from orgservice.storage.workspaces import WorkspaceRepository


class UnitOfWork:
    """Repositories over one session. Nothing is written unless `commit()` is called."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.organizations = OrganizationRepository(session)
        self.memberships = MembershipRepository(session)
        self.roles = RoleRepository(session)
        self.workspaces = WorkspaceRepository(session)
        self.invitations = InvitationRepository(session)
        self.audit = AuditRepository(session)
        self.idempotency = IdempotencyRepository(session)

    def commit(self) -> None:
        self.session.commit()


class Database:
    """Hands out units of work; the only owner of the engine's sessions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = sessionmaker(engine, expire_on_commit=False)
        self._reader = sessionmaker(read_only(engine), expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """A read-write unit of work; closing the session rolls back what was not committed."""
        with self._writer() as session:
            yield UnitOfWork(session)

    @contextmanager
    def snapshot(self) -> Iterator[UnitOfWork]:
        """A read-only unit of work."""
        with self._reader() as session:
            yield UnitOfWork(session)

    def ping(self) -> None:
        """Raises when the database cannot be reached."""
        with self._reader() as session:
            session.execute(text("SELECT 1"))
