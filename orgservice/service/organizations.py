"""Organization use cases: create, get, list, update, soft delete and undelete."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from orgservice.domain.errors import (
    FailedPrecondition,
    PermissionDenied,
    Violations,
    etag_mismatch,
)
from orgservice.domain.models import (
    Caller,
    Organization,
    OrganizationFields,
    OrganizationState,
    Page,
    PageRequest,
)
from orgservice.domain.permissions import (
    ORGANIZATIONS_DELETE,
    ORGANIZATIONS_GET,
    ORGANIZATIONS_UNDELETE,
    ORGANIZATIONS_UPDATE,
    OWNER,
)
from orgservice.domain.validation import (
    check_labels,
    clean_named_fields,
    new_id,
)
from orgservice.service import audit
from orgservice.service.access import authorize, organization_not_found
from orgservice.service.clock import Clock, system_clock
from orgservice.service.idempotency import create_once
from orgservice.service.slugs import insert_with_slug
from orgservice.storage.organizations import OrganizationQuery
from orgservice.storage.unit_of_work import Database, UnitOfWork

PURGE_AFTER = timedelta(days=30)
DEFAULT_WORKSPACE_SLUG = "default"
_SLUG_ATTEMPTS = 5


class OrganizationService:
    def __init__(self, database: Database, clock: Clock = system_clock) -> None:
        self._database = database
        self._clock = clock

    def create(
        self, caller: Caller, fields: OrganizationFields, *, request_id: str = ""
    ) -> Organization:
        fields = validated(fields, creating=True)

        def create(uow: UnitOfWork, organization_id: str) -> Organization:
            return insert_organization(
                uow, caller, organization_id, fields, personal=False, now=self._clock()
            )

        def replay(uow: UnitOfWork, organization_id: str) -> Organization:
            return self._visible(uow, caller, organization_id)

        return create_once(
            self._database,
            self._clock,
            caller,
            request_id=request_id,
            operation="CreateOrganization",
            request=asdict(fields),
            create=create,
            replay=replay,
        )

    def get(self, caller: Caller, *, organization_id: str = "", slug: str = "") -> Organization:
        with self._database.snapshot() as uow:
            if slug:
                found = uow.organizations.id_for_slug(slug)
                if found is None:
                    raise organization_not_found()
                organization_id = found
            return self._visible(uow, caller, organization_id)

    def list(
        self,
        caller: Caller,
        page: PageRequest,
        *,
        name_filter: str = "",
        show_deleted: bool = False,
        user_id: str = "",
    ) -> Page[Organization]:
        if user_id and user_id != caller.user_id and not caller.is_platform:
            raise PermissionDenied("only platform callers may list another user's organizations")
        member = user_id or (None if caller.is_platform else caller.user_id)
        query = OrganizationQuery(member, name_filter.strip(), show_deleted)
        with self._database.snapshot() as uow:
            return uow.organizations.find_page(query, page)

    def update(
        self, caller: Caller, organization_id: str, fields: OrganizationFields, *, etag: str = ""
    ) -> Organization:
        fields = validated(fields, creating=False)
        with self._database.transaction() as uow:
            authorize(uow, caller, organization_id, ORGANIZATIONS_UPDATE, lock=True)
            _check_etag(uow, organization_id, etag)
            now = self._clock()
            uow.organizations.update(organization_id, fields, now)
            changed = sorted(name for name, value in asdict(fields).items() if value is not None)
            audit.record(
                uow,
                caller,
                organization_id,
                "organization.updated",
                now,
                target_type="organization",
                target_id=organization_id,
                fields=",".join(changed),
            )
            organization = load_organization(uow, organization_id)
            uow.commit()
            return organization

    def delete(self, caller: Caller, organization_id: str, *, etag: str = "") -> Organization:
        with self._database.transaction() as uow:
            authorize(uow, caller, organization_id, ORGANIZATIONS_DELETE, lock=True)
            _check_etag(uow, organization_id, etag)
            now = self._clock()
            uow.organizations.set_state(
                organization_id, OrganizationState.DELETED, now, purge_time=now + PURGE_AFTER
            )
            audit.record(
                uow,
                caller,
                organization_id,
                "organization.deleted",
                now,
                target_type="organization",
                target_id=organization_id,
            )
            organization = load_organization(uow, organization_id)
            uow.commit()
            return organization

    def undelete(self, caller: Caller, organization_id: str) -> Organization:
        with self._database.transaction() as uow:
            authorize(
                uow, caller, organization_id, ORGANIZATIONS_UNDELETE, lock=True, allow_deleted=True
            )
            current = load_organization(uow, organization_id)
            if current.state is not OrganizationState.DELETED:
                raise FailedPrecondition(
                    "the organization is not deleted", reason="ORGANIZATION_NOT_DELETED"
                )
            now = self._clock()
            if current.purge_time is not None and current.purge_time <= now:
                raise organization_not_found()
            uow.organizations.set_state(organization_id, OrganizationState.ACTIVE, now, None)
            audit.record(
                uow,
                caller,
                organization_id,
                "organization.undeleted",
                now,
                target_type="organization",
                target_id=organization_id,
            )
            organization = load_organization(uow, organization_id)
            uow.commit()
            return organization

    def _visible(self, uow: UnitOfWork, caller: Caller, organization_id: str) -> Organization:
        authorize(uow, caller, organization_id, ORGANIZATIONS_GET, allow_deleted=True)
        return load_organization(uow, organization_id)


def load_organization(uow: UnitOfWork, organization_id: str) -> Organization:
    organization = uow.organizations.get(organization_id)
    if organization is None:
        raise organization_not_found()
    return organization


def validated(fields: OrganizationFields, *, creating: bool) -> OrganizationFields:
    """Checks every given field, reporting all violations at once; returns trimmed fields."""
    violations = Violations()
    name = clean_named_fields(
        violations,
        name=fields.name,
        slug=fields.slug,
        description=fields.description,
        creating=creating,
    )
    if fields.labels is not None:
        check_labels(violations, "labels", fields.labels)
    violations.raise_if_any()
    return OrganizationFields(name, fields.slug, fields.description, fields.labels)


def insert_organization(
    uow: UnitOfWork,
    caller: Caller,
    organization_id: str,
    fields: OrganizationFields,
    *,
    personal: bool,
    now: datetime,
    slug_source: str = "",
) -> Organization:
    """Creates an organization with its built-in roles, its owner and its default
    workspace, all in the caller's transaction. Without a slug in `fields`, one is
    derived from `slug_source` (default: the name)."""
    name = fields.name or ""

    def insert(slug: str) -> None:
        uow.organizations.add(
            organization_id=organization_id,
            slug=slug,
            name=name,
            description=fields.description or "",
            labels=dict(fields.labels or {}),
            personal=personal,
            now=now,
        )

    slug = insert_with_slug(
        insert,
        uow.organizations.slug_exists,
        requested=fields.slug,
        derive_from=slug_source or name,
    )
    uow.roles.add_built_ins(organization_id, now)
    uow.memberships.add(organization_id, caller.user_id, OWNER, now)
    uow.workspaces.add(
        organization_id=organization_id,
        workspace_id=new_id(),
        slug=DEFAULT_WORKSPACE_SLUG,
        name="Default",
        description="",
        now=now,
    )
    audit.record(
        uow,
        caller,
        organization_id,
        "organization.created",
        now,
        target_type="organization",
        target_id=organization_id,
        slug=slug,
        name=name,
    )
    return load_organization(uow, organization_id)


def _check_etag(uow: UnitOfWork, organization_id: str, etag: str) -> None:
    if etag and etag != load_organization(uow, organization_id).etag:
        raise etag_mismatch()
