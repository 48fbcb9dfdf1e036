"""Workspace use cases; slugs are unique within their organization."""

from __future__ import annotations

from dataclasses import asdict

from orgservice.domain.errors import NotFound, Violations, etag_mismatch, invalid
from orgservice.domain.models import Caller, Page, PageRequest, Workspace, WorkspaceFields
from orgservice.domain.permissions import (
    WORKSPACES_CREATE,
    WORKSPACES_DELETE,
    WORKSPACES_GET,
    WORKSPACES_LIST,
    WORKSPACES_UPDATE,
)
from orgservice.domain.validation import clean_named_fields, is_uuid
from orgservice.service import audit
from orgservice.service.access import authorize
from orgservice.service.clock import Clock, system_clock
from orgservice.service.idempotency import create_once
from orgservice.service.slugs import insert_with_slug
from orgservice.storage.unit_of_work import Database, UnitOfWork


def workspace_not_found() -> NotFound:
    return NotFound("workspace not found", reason="WORKSPACE_NOT_FOUND")


def _validated(fields: WorkspaceFields, *, creating: bool) -> WorkspaceFields:
    violations = Violations()
    name = clean_named_fields(
        violations,
        name=fields.name,
        slug=fields.slug,
        description=fields.description,
        creating=creating,
    )
    violations.raise_if_any()
    return WorkspaceFields(name, fields.slug, fields.description)


def _load(uow: UnitOfWork, organization_id: str, workspace_id: str) -> Workspace:
    if not workspace_id:
        raise invalid("workspace_id", "is required")
    workspace = uow.workspaces.get(organization_id, workspace_id) if is_uuid(workspace_id) else None
    if workspace is None:
        raise workspace_not_found()
    return workspace


class WorkspaceService:
    def __init__(self, database: Database, clock: Clock = system_clock) -> None:
        self._database = database
        self._clock = clock

    def create(
        self,
        caller: Caller,
        organization_id: str,
        fields: WorkspaceFields,
        *,
        request_id: str = "",
    ) -> Workspace:
        fields = _validated(fields, creating=True)

        def create(uow: UnitOfWork, workspace_id: str) -> Workspace:
            authorize(uow, caller, organization_id, WORKSPACES_CREATE)
            now = self._clock()
            name = fields.name or ""

            def insert(slug: str) -> None:
                uow.workspaces.add(
                    organization_id=organization_id,
                    workspace_id=workspace_id,
                    slug=slug,
                    name=name,
                    description=fields.description or "",
                    now=now,
                )

            slug = insert_with_slug(
                insert,
                lambda slug: uow.workspaces.slug_exists(organization_id, slug),
                requested=fields.slug,
                derive_from=name,
            )
            audit.record(
                uow,
                caller,
                organization_id,
                "workspace.created",
                now,
                target_type="workspace",
                target_id=workspace_id,
                slug=slug,
            )
            return _load(uow, organization_id, workspace_id)

        def replay(uow: UnitOfWork, workspace_id: str) -> Workspace:
            authorize(uow, caller, organization_id, WORKSPACES_GET, allow_deleted=True)
            return _load(uow, organization_id, workspace_id)

        return create_once(
            self._database,
            self._clock,
            caller,
            request_id=request_id,
            operation="CreateWorkspace",
            request={"organization_id": organization_id, **asdict(fields)},
            create=create,
            replay=replay,
        )

    def get(self, caller: Caller, organization_id: str, workspace_id: str) -> Workspace:
        with self._database.snapshot() as uow:
            authorize(uow, caller, organization_id, WORKSPACES_GET, allow_deleted=True)
            return _load(uow, organization_id, workspace_id)

    def list(
        self, caller: Caller, organization_id: str, page: PageRequest, *, name_filter: str = ""
    ) -> Page[Workspace]:
        with self._database.snapshot() as uow:
            authorize(uow, caller, organization_id, WORKSPACES_LIST, allow_deleted=True)
            return uow.workspaces.find_page(organization_id, name_filter.strip(), page)

    def update(
        self,
        caller: Caller,
        organization_id: str,
        workspace_id: str,
        fields: WorkspaceFields,
        *,
        etag: str = "",
    ) -> Workspace:
        fields = _validated(fields, creating=False)
        with self._database.transaction() as uow:
            authorize(uow, caller, organization_id, WORKSPACES_UPDATE, lock=True)
            current = _load(uow, organization_id, workspace_id)
            if etag and etag != current.etag:
                raise etag_mismatch()
            now = self._clock()
            uow.workspaces.update(organization_id, workspace_id, fields, now)
            changed = sorted(name for name, value in asdict(fields).items() if value is not None)
            audit.record(
                uow,
                caller,
                organization_id,
                "workspace.updated",
                now,
                target_type="workspace",
                target_id=workspace_id,
                fields=",".join(changed),
            )
            workspace = _load(uow, organization_id, workspace_id)
            uow.commit()
            return workspace

    def delete(
        self, caller: Caller, organization_id: str, workspace_id: str, *, etag: str = ""
    ) -> None:
        with self._database.transaction() as uow:
            authorize(uow, caller, organization_id, WORKSPACES_DELETE, lock=True)
            current = _load(uow, organization_id, workspace_id)
            if etag and etag != current.etag:
                raise etag_mismatch()
            now = self._clock()
            uow.workspaces.delete(organization_id, workspace_id)
            audit.record(
                uow,
                caller,
                organization_id,
                "workspace.deleted",
                now,
                target_type="workspace",
                target_id=workspace_id,
                slug=current.slug,
            )
            uow.commit()
