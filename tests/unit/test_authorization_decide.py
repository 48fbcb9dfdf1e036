"""`decide()` as a table: (caller kind, membership, role permissions, organization state,
requirement) -> verdict, written out by hand from the contract rather than derived."""

from __future__ import annotations

import pytest

from orgservice.domain.authorization import Access
from orgservice.domain.authorization import Requirement
from orgservice.domain.authorization import Verdict
from orgservice.domain.authorization import decide
from orgservice.domain.authorization import to_change
from orgservice.domain.authorization import to_read
from orgservice.domain.errors import OrganizationDeleted
from orgservice.domain.errors import OrganizationNotFound
from orgservice.domain.errors import PermissionDenied
from orgservice.domain.models import AccessRecord
from orgservice.domain.models import OrganizationState
from orgservice.domain.permissions import BUILT_IN_ROLES
from orgservice.domain.permissions import CUSTOM_ROLE_PERMISSIONS

ORG = "5b0f0b58-0c9b-4d0f-9c3a-2d1d3c4b5a69"
ACTIVE, DELETED = OrganizationState.ACTIVE, OrganizationState.DELETED
ROLE_PERMISSIONS = {role.name: frozenset(role.permissions) for role in BUILT_IN_ROLES}
ROLE_PERMISSIONS["custom"] = CUSTOM_ROLE_PERMISSIONS  # everything a custom role can hold
ROLE_PERMISSIONS["empty"] = frozenset()

GET = to_read("organizations.get")
UPDATE = to_change("organizations.update")
DELETE = to_change("organizations.delete")
UNDELETE = to_change("organizations.undelete", allow_deleted=True)
MEMBER = to_change(None)  # being a member is enough (leaving)
AUDIT = to_read("audit.list")

ALLOWED, NOT_FOUND, DENIED, GONE = (
    Verdict.ALLOWED,
    Verdict.NOT_FOUND,
    Verdict.DENIED,
    Verdict.DELETED,
)

# (caller, role, organization state) -> {requirement: verdict}; caller: "platform" or
# "user"; role: None for non-members, "-" for no organization.
VERDICTS: dict[tuple[str, str | None, OrganizationState], dict[Requirement, Verdict]] = {
    # No such organization: NOT_FOUND for everyone.
    ("user", "-", ACTIVE): {GET: NOT_FOUND},
    ("platform", "-", ACTIVE): {GET: NOT_FOUND, MEMBER: NOT_FOUND},
    # Non-members: as if it did not exist; platform callers act as owners.
    ("user", None, ACTIVE): {GET: NOT_FOUND, MEMBER: NOT_FOUND},
    ("platform", None, ACTIVE): {GET: ALLOWED, DELETE: ALLOWED, MEMBER: ALLOWED},
    # Members: the role's permissions decide.
    ("user", "viewer", ACTIVE): {GET: ALLOWED, UPDATE: DENIED, MEMBER: ALLOWED},
    ("user", "developer", ACTIVE): {AUDIT: DENIED},
    ("user", "admin", ACTIVE): {AUDIT: ALLOWED, UPDATE: ALLOWED, DELETE: DENIED},
    # Undelete is allowed here; the use case then says "not deleted".
    ("user", "owner", ACTIVE): {DELETE: ALLOWED, UNDELETE: ALLOWED},
    ("user", "custom", ACTIVE): {UPDATE: ALLOWED, DELETE: DENIED},
    ("user", "empty", ACTIVE): {GET: DENIED, MEMBER: ALLOWED},
    # Deleted: it exists only for those who may undelete it, and only for reads and
    # undelete; other requirements learn it is deleted.
    ("user", "owner", DELETED): {
        GET: ALLOWED,
        AUDIT: ALLOWED,
        UNDELETE: ALLOWED,
        UPDATE: GONE,
        DELETE: GONE,
        MEMBER: GONE,
    },
    ("platform", None, DELETED): {GET: ALLOWED, UPDATE: GONE, UNDELETE: ALLOWED},
    ("user", "admin", DELETED): {GET: NOT_FOUND, UPDATE: NOT_FOUND},
    ("user", "custom", DELETED): {GET: NOT_FOUND},
    ("user", "viewer", DELETED): {MEMBER: NOT_FOUND},
    ("user", None, DELETED): {GET: NOT_FOUND},
}
TABLE = [
    (caller, role, state, requirement, verdict)
    for (caller, role, state), verdicts in VERDICTS.items()
    for requirement, verdict in verdicts.items()
]


def record_for(role: str | None, state: OrganizationState) -> AccessRecord | None:
    if role == "-":
        return None
    return AccessRecord(state, role, ROLE_PERMISSIONS[role] if role else frozenset())


@pytest.mark.parametrize(("caller", "role", "state", "requirement", "verdict"), TABLE)
def test_decide(
    caller: str,
    role: str | None,
    state: OrganizationState,
    requirement: Requirement,
    verdict: Verdict,
) -> None:
    decision = decide(ORG, record_for(role, state), requirement, is_platform=caller == "platform")
    assert decision.verdict is verdict
    assert decision.allowed is (verdict is ALLOWED)


@pytest.mark.parametrize(
    ("verdict", "error", "reason"),
    [
        (NOT_FOUND, OrganizationNotFound, "ORGANIZATION_NOT_FOUND"),
        (DENIED, PermissionDenied, "PERMISSION_DENIED"),
        (GONE, OrganizationDeleted, "ORGANIZATION_DELETED"),
    ],
)
def test_enforce_raises_what_the_caller_must_see(
    verdict: Verdict, error: type[Exception], reason: str
) -> None:
    role, state, requirement = {
        NOT_FOUND: (None, ACTIVE, UPDATE),
        DENIED: ("viewer", ACTIVE, UPDATE),
        GONE: ("owner", DELETED, UPDATE),
    }[verdict]
    decision = decide(ORG, record_for(role, state), requirement, is_platform=False)
    assert decision.verdict is verdict
    with pytest.raises(error) as caught:
        decision.enforce()
    assert getattr(caught.value, "reason", None) == reason
    if verdict is DENIED:
        assert getattr(caught.value, "metadata", None) == {"permission": "organizations.update"}


def test_a_non_member_and_a_missing_organization_get_the_same_error() -> None:
    errors = [
        decide(ORG, record, GET, is_platform=False).error()
        for record in (None, record_for(None, ACTIVE), record_for("admin", DELETED))
    ]
    assert len({(type(e), e.message, e.reason) for e in errors}) == 1


def test_the_allowed_access_names_the_organization_role_and_permissions() -> None:
    access = decide(ORG, record_for("admin", ACTIVE), GET, is_platform=False).enforce()
    assert access == Access(ORG, "admin", ROLE_PERMISSIONS["admin"], is_platform=False)
    assert not access.acts_as_owner
    platform = decide(ORG, record_for(None, ACTIVE), GET, is_platform=True).enforce()
    assert platform.acts_as_owner
    assert platform.permissions == ROLE_PERMISSIONS["owner"]


@pytest.mark.parametrize(
    ("role", "is_platform", "wanted", "missing"),
    [
        ("owner", False, ["organizations.delete"], []),
        (None, True, ["organizations.delete"], []),
        ("admin", False, ["members.add", "organizations.delete"], ["organizations.delete"]),
        (
            "viewer",
            False,
            ["roles.list", "workspaces.create", "audit.list"],
            ["audit.list", "workspaces.create"],
        ),
        ("empty", False, [], []),
    ],
)
def test_only_owners_grant_what_they_do_not_hold(
    role: str | None, is_platform: bool, wanted: list[str], missing: list[str]
) -> None:
    access = Access(ORG, role, ROLE_PERMISSIONS[role] if role else frozenset(), is_platform)
    assert access.missing(wanted) == missing
