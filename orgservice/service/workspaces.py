"""Workspace use cases; slugs are unique within their organization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from orgservice.domain.authorization import to_change
from orgservice.domain.authorization import to_read
from orgservice.domain.errors import EtagMismatch
from orgservice.domain.errors import SlugTaken
from orgservice.domain.errors import Violations
from orgservice.domain.errors import WorkspaceNotFound
from orgservice.domain.errors import invalid
from orgservice.domain.models import Call
from orgservice.domain.models import Deferred
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.models import Workspace
from orgservice.domain.models import WorkspaceFields
from orgservice.domain.permissions import WORKSPACES_CREATE
from orgservice.domain.permissions import WORKSPACES_DELETE
from orgservice.domain.permissions import WORKSPACES_GET
from orgservice.domain.permissions import WORKSPACES_LIST
from orgservice.domain.permissions import WORKSPACES_UPDATE
from orgservice.domain.validation import canonical_uuid
from orgservice.domain.validation import clean_named_fields
from orgservice.domain.validation import new_id
from orgservice.domain.validation import normalized_request_id
from orgservice.domain.validation import search_text
from orgservice.service import audit
from orgservice.service.authorization import authorize
from orgservice.service.idempotency import earlier_result
from orgservice.service.organizations import slug_candidates
from orgservice.service.ports import UnitOfWork
from orgservice.service.use_cases import UseCases

GET = to_read(WORKSPACES_GET)
LIST = to_read(WORKSPACES_LIST)
CREATE = to_change(WORKSPACES_CREATE)
UPDATE = to_change(WORKSPACES_UPDATE)
DELETE = to_change(WORKSPACES_DELETE)


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
    canonical = canonical_uuid(workspace_id)
    workspace = uow.workspaces.get(organization_id, canonical) if canonical else None
    if workspace is None:
        raise WorkspaceNotFound()
    return workspace


class WorkspaceService(UseCases):
    def create(
        self, call: Call, organization_id: str, fields: WorkspaceFields, *, request_id: str = ""
    ) -> Workspace:
        with self._database.transaction(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, CREATE).organization_id
            fields = _validated(fields, creating=True)
            key = normalized_request_id(request_id)
            now = self._clock()
            workspace_id = new_id()
            earlier = earlier_result(
                uow,
                call.caller,
                key,
                operation="CreateWorkspace",
                request={"organization_id": organization_id, **asdict(fields)},
                resource_id=workspace_id,
                now=now,
            )
            if earlier is not None:
                return _load(uow, organization_id, earlier)
            name = fields.name or ""
            for slug in slug_candidates(fields.slug, name):
                if uow.workspaces.add(
                    organization_id=organization_id,
                    workspace_id=workspace_id,
                    slug=slug,
                    name=name,
                    description=fields.description or "",
                    now=now,
                ):
                    break
            else:
                if fields.slug:
                    raise SlugTaken(fields.slug, scope="organization")
                raise invalid("slug", "could not derive a free slug from the name; choose one")
            audit.record(
                uow,
                call.caller,
                organization_id,
                "workspace.created",
                now,
                target_type="workspace",
                target_id=workspace_id,
                slug=slug,
            )
            workspace = _load(uow, organization_id, workspace_id)
            uow.commit()
            return workspace

    def get(self, call: Call, organization_id: str, workspace_id: str) -> Workspace:
        with self._database.snapshot(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, GET).organization_id
            return _load(uow, organization_id, workspace_id)

    def list(
        self,
        call: Call,
        organization_id: str,
        page: Deferred[PageRequest],
        *,
        name_filter: str = "",
    ) -> Page[Workspace]:
        with self._database.snapshot(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, LIST).organization_id
            text = search_text("filter", name_filter)
            organization = uow.organization(organization_id)
            total = organization.workspace_count if organization else 0
            return uow.workspaces.find_page(organization_id, text, page(), total=total)

    def update(
        self,
        call: Call,
        organization_id: str,
        workspace_id: str,
        changes: Callable[[], WorkspaceFields],
        *,
        etag: str = "",
    ) -> Workspace:
        with self._database.transaction(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, UPDATE).organization_id
            fields = _validated(changes(), creating=False)
            current = _load(uow, organization_id, workspace_id)
            if etag and etag != current.etag:
                raise EtagMismatch()
            now = self._clock()
            uow.workspaces.update(organization_id, current.id, fields, now)
            changed = sorted(name for name, value in asdict(fields).items() if value is not None)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "workspace.updated",
                now,
                target_type="workspace",
                target_id=current.id,
                fields=",".join(changed),
            )
            workspace = _load(uow, organization_id, current.id)
            uow.commit()
            return workspace

    def delete(
        self, call: Call, organization_id: str, workspace_id: str, *, etag: str = ""
    ) -> None:
        with self._database.transaction(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, DELETE).organization_id
            current = _load(uow, organization_id, workspace_id)
            if etag and etag != current.etag:
                raise EtagMismatch()
            now = self._clock()
            uow.workspaces.delete(organization_id, current.id)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "workspace.deleted",
                now,
                target_type="workspace",
                target_id=current.id,
                slug=current.slug,
            )
            uow.commit()
