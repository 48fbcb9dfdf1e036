"""Organization use cases: create, get, list, update, soft delete and undelete.

An organization's private metadata is only for holders of `organizations.update` (and
platform callers): reads hand everyone else a copy without it (`as_seen_by`), while
the read cache keeps the complete organization.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Collection
from dataclasses import fields as fields_of
from dataclasses import replace
from datetime import datetime
from datetime import timedelta

from orgservice.domain.authorization import Access
from orgservice.domain.authorization import decide
from orgservice.domain.authorization import to_change
from orgservice.domain.authorization import to_read
from orgservice.domain.errors import EtagMismatch
from orgservice.domain.errors import OrganizationNotDeleted
from orgservice.domain.errors import OrganizationNotFound
from orgservice.domain.errors import PermissionDenied
from orgservice.domain.errors import SlugTaken
from orgservice.domain.errors import Violations
from orgservice.domain.errors import invalid
from orgservice.domain.identity_memo import IdentityMemo
from orgservice.domain.models import MAX_SLUG_CANDIDATES
from orgservice.domain.models import Call
from orgservice.domain.models import Caller
from orgservice.domain.models import Deferred
from orgservice.domain.models import NewOrganization
from orgservice.domain.models import Organization
from orgservice.domain.models import OrganizationFields
from orgservice.domain.models import OrganizationQuery
from orgservice.domain.models import OrganizationState
from orgservice.domain.models import Page
from orgservice.domain.models import PageRequest
from orgservice.domain.permissions import ORGANIZATIONS_DELETE
from orgservice.domain.permissions import ORGANIZATIONS_GET
from orgservice.domain.permissions import ORGANIZATIONS_UNDELETE
from orgservice.domain.permissions import ORGANIZATIONS_UPDATE
from orgservice.domain.permissions import OWNER
from orgservice.domain.validation import canonical_uuid
from orgservice.domain.validation import check_invitation_ttl
from orgservice.domain.validation import check_labels
from orgservice.domain.validation import check_metadata
from orgservice.domain.validation import clean_named_fields
from orgservice.domain.validation import new_id
from orgservice.domain.validation import normalized_request_id
from orgservice.domain.validation import search_text
from orgservice.domain.validation import slug_to_look_up
from orgservice.domain.validation import slugify
from orgservice.domain.validation import with_suffix
from orgservice.service import audit
from orgservice.service.authorization import authorize
from orgservice.service.idempotency import earlier_result
from orgservice.service.members import check_may_grant
from orgservice.service.members import existing_role
from orgservice.service.ports import UnitOfWork
from orgservice.service.use_cases import UseCases

PURGE_AFTER = timedelta(days=30)
_DERIVED_SLUG_ROUNDS = 2

GET = to_read(ORGANIZATIONS_GET)
UPDATE = to_change(ORGANIZATIONS_UPDATE)
DELETE = to_change(ORGANIZATIONS_DELETE)
UNDELETE = to_change(ORGANIZATIONS_UNDELETE, allow_deleted=True)


class OrganizationService(UseCases):
    def create(
        self, call: Call, fields: OrganizationFields, *, request_id: str = ""
    ) -> Organization:
        fields = validated(fields, creating=True)
        key = normalized_request_id(request_id)
        with self._database.transaction(call.budget) as uow:
            now = self._clock()
            organization_id = new_id()
            earlier = earlier_result(
                uow,
                call.caller,
                key,
                operation="CreateOrganization",
                # What a create sets (the same fingerprint as before settings existed).
                request={
                    "name": fields.name,
                    "slug": fields.slug,
                    "description": fields.description,
                    "labels": fields.labels,
                },
                resource_id=organization_id,
                now=now,
            )
            if earlier is not None:
                return self._visible(uow, call.caller, earlier)
            return insert_organization(
                uow, call.caller, organization_id, fields, personal=False, now=now, commit=True
            )

    def get(self, call: Call, *, organization_id: str = "", slug: str = "") -> Organization:
        with self._database.snapshot(call.budget) as uow:
            if slug:
                known = slug_to_look_up("slug", slug)
                found = uow.organization_id_for_slug(known) if known else None
                if found is None:
                    raise OrganizationNotFound()
                organization_id = found
            canonical = canonical_uuid(organization_id)
            organization, record = (
                uow.organization_seen_by(canonical, call.caller.user_id)
                if canonical
                else (None, None)
            )
            decision = decide(organization_id, record, GET, is_platform=call.caller.is_platform)
            access = decision.enforce()
            assert organization is not None, "allowed, so it exists"
            return as_seen_by(organization, access.permissions, cached=True)

    def list(
        self,
        call: Call,
        page: Deferred[PageRequest],
        *,
        name_filter: str = "",
        show_deleted: bool = False,
        user_id: str = "",
    ) -> Page[Organization]:
        caller = call.caller
        if user_id and user_id != caller.user_id and not caller.is_platform:
            raise PermissionDenied("only platform callers may list another user's organizations")
        member = user_id or (None if caller.is_platform else caller.user_id)
        query = OrganizationQuery(member, search_text("filter", name_filter), show_deleted)
        with self._database.snapshot(call.budget) as uow:
            found = uow.organizations.find_page(query, page())
            if caller.is_platform or not found.items:
                return found
            held = uow.memberships.permissions_in(caller.user_id, [o.id for o in found.items])
            return replace(
                found, items=[as_seen_by(o, held.get(o.id, frozenset())) for o in found.items]
            )

    def update(
        self,
        call: Call,
        organization_id: str,
        changes: Callable[[], OrganizationFields],
        *,
        etag: str = "",
    ) -> Organization:
        with self._database.transaction(call.budget) as uow:
            access = authorize(uow, call.caller, organization_id, UPDATE)
            fields = validated(changes(), creating=False)
            organization_id = access.organization_id
            _check_auto_join_role(uow, access, fields)
            _check_etag(uow, organization_id, etag)
            now = self._clock()
            uow.organizations.update(organization_id, fields, now)
            audit.record(
                uow,
                call.caller,
                organization_id,
                "organization.updated",
                now,
                target_type="organization",
                target_id=organization_id,
                fields=",".join(_changed_paths(fields)),
            )
            organization = load_organization(uow, organization_id)
            uow.commit()
            return organization

    def delete(self, call: Call, organization_id: str, *, etag: str = "") -> Organization:
        with self._database.transaction(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, DELETE).organization_id
            _check_etag(uow, organization_id, etag)
            now = self._clock()
            uow.organizations.set_state(
                organization_id, OrganizationState.DELETED, now, purge_time=now + PURGE_AFTER
            )
            return self._record_and_commit(uow, call.caller, organization_id, "deleted", now)

    def undelete(self, call: Call, organization_id: str) -> Organization:
        with self._database.transaction(call.budget) as uow:
            organization_id = authorize(uow, call.caller, organization_id, UNDELETE).organization_id
            current = load_organization(uow, organization_id)
            if current.state is not OrganizationState.DELETED:
                raise OrganizationNotDeleted()
            now = self._clock()
            if current.purge_time is not None and current.purge_time <= now:
                raise OrganizationNotFound()
            uow.organizations.set_state(organization_id, OrganizationState.ACTIVE, now, None)
            return self._record_and_commit(uow, call.caller, organization_id, "undeleted", now)

    @staticmethod
    def _record_and_commit(
        uow: UnitOfWork, caller: Caller, organization_id: str, what: str, now: datetime
    ) -> Organization:
        audit.record(
            uow,
            caller,
            organization_id,
            f"organization.{what}",
            now,
            target_type="organization",
            target_id=organization_id,
        )
        organization = load_organization(uow, organization_id)
        uow.commit()
        return organization

    @staticmethod
    def _visible(uow: UnitOfWork, caller: Caller, organization_id: str) -> Organization:
        access = authorize(uow, caller, organization_id, GET)
        organization = uow.organization(access.organization_id)
        if organization is None:
            raise OrganizationNotFound()
        return as_seen_by(organization, access.permissions)


# A cached organization's view without its private metadata, made once: every member
# reading it then gets the same object, whose encoding is made once too.
_PUBLIC_VIEWS: IdentityMemo[Organization] = IdentityMemo()


def as_seen_by(
    organization: Organization, permissions: Collection[str], *, cached: bool = False
) -> Organization:
    """The organization as a caller holding `permissions` may see it (platform callers
    hold them all): private metadata only with `organizations.update`. `cached`: it may
    come from the read cache, so its view is made once for all such callers."""
    if ORGANIZATIONS_UPDATE in permissions:
        return organization
    if cached:
        return _PUBLIC_VIEWS.of(organization, "public", lambda: _public(organization))
    return _public(organization)


def _public(organization: Organization) -> Organization:
    return replace(organization, private_metadata=None)


def load_organization(uow: UnitOfWork, organization_id: str) -> Organization:
    organization = uow.organizations.get(organization_id)
    if organization is None:
        raise OrganizationNotFound()
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
    if fields.settings is not None:
        settings, changing = fields.settings.values, fields.settings.fields
        if "max_members" in changing and settings.max_members < 0:
            violations.add("settings.max_members", "must not be negative (0 means unlimited)")
        ttl = settings.default_invitation_ttl
        if "default_invitation_ttl" in changing and ttl is not None:
            check_invitation_ttl(violations, "settings.default_invitation_ttl", ttl)
    for path, metadata in (
        ("public_metadata", fields.public_metadata),
        ("private_metadata", fields.private_metadata),
    ):
        if metadata is not None:
            check_metadata(violations, path, metadata.document, metadata.encoded_bytes)
    violations.raise_if_any()
    return replace(fields, name=name)


def _check_auto_join_role(uow: UnitOfWork, access: Access, fields: OrganizationFields) -> None:
    """An auto-join role must exist and not be `owner`; setting it grants the role to
    whoever joins, so the caller must be able to grant it."""
    if fields.settings is None or "auto_join_role" not in fields.settings.fields:
        return
    name = fields.settings.values.auto_join_role
    if not name:
        return
    path = "settings.auto_join_role"
    role = existing_role(uow, access.organization_id, name, path)
    if role.name == OWNER:
        raise invalid(path, "cannot be owner")
    check_may_grant(access, role)


def _changed_paths(changes: OrganizationFields) -> list[str]:
    """The update's field paths, for the audit event."""
    paths = [
        field.name
        for field in fields_of(changes)
        if field.name != "settings" and getattr(changes, field.name) is not None
    ]
    if changes.settings is not None:
        paths += [f"settings.{name}" for name in changes.settings.fields]
    return sorted(paths)


def slug_candidates(requested: str | None, derive_from: str) -> tuple[str, ...]:
    """The requested slug alone, or slugs derived from a name: the plain form first,
    then with short random suffixes (collisions, concurrent creates included)."""
    if requested:
        return (requested,)
    base = slugify(derive_from)
    return (base, *(with_suffix(base) for _ in range(MAX_SLUG_CANDIDATES - 1)))


def insert_organization(
    uow: UnitOfWork,
    caller: Caller,
    organization_id: str,
    fields: OrganizationFields,
    *,
    personal: bool,
    now: datetime,
    slug_source: str = "",
    commit: bool = False,
) -> Organization:
    """Creates an organization with its built-in roles, its owner, its default
    workspace and its first audit event, all in the caller's transaction, which
    `commit` commits. Without a slug in `fields`, one is derived from `slug_source`
    (default: the name)."""
    name = fields.name or ""
    # Derived slugs get fresh candidates when concurrent creates took the free ones.
    for _attempt in range(1 if fields.slug else _DERIVED_SLUG_ROUNDS):
        slugs = slug_candidates(fields.slug, slug_source or name)
        organization = uow.organizations.create(
            NewOrganization(
                id=organization_id,
                slugs=slugs,
                name=name,
                description=fields.description or "",
                labels=dict(fields.labels or {}),
                personal=personal,
                owner_user_id=caller.user_id,
                owner_profile=caller.profile,
                workspace_id=new_id(),
                create_time=now,
                created_event=audit.event(
                    caller,
                    organization_id,
                    "organization.created",
                    now,
                    target_type="organization",
                    target_id=organization_id,
                    slug=slugs[0],  # the storage writes the one it claims
                    name=name,
                ),
            ),
            commit=commit,
        )
        if organization is not None:
            return organization
    if fields.slug:
        raise SlugTaken(fields.slug)
    raise invalid("slug", "could not derive a free slug from the name; choose one")


def _check_etag(uow: UnitOfWork, organization_id: str, etag: str) -> None:
    if etag and etag != load_organization(uow, organization_id).etag:
        raise EtagMismatch()
