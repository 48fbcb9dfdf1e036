"""One test per hostile input the fuzz tests found, each asserting the answer the
contract requires (OPERATIONS.md, "Hostile input"), on SQLite and PostgreSQL.

Every rejection must also keep the error rules: no more than 64 characters of any value
echoed, message and details under 4 KiB (`contract_violations`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.fuzz.conftest import Resources
from tests.fuzz.conftest import World
from tests.fuzz.conftest import build_world
from tests.fuzz.harness import METHODS
from tests.fuzz.harness import SERVICE
from tests.fuzz.harness import Outcome
from tests.fuzz.harness import call
from tests.fuzz.harness import contract_violations
from tests.fuzz.harness import parsed_request
from tests.fuzz.harness import response_class
from tests.fuzz.harness import strings_in

Code = grpc.StatusCode
INVALID = Code.INVALID_ARGUMENT
TIMESTAMP_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
TIMESTAMP_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
DURATION_MAX_SECONDS = 315_576_000_000  # 10,000 years


@pytest.fixture(scope="module")
def world(api: Api) -> World:
    """One world per module and backend: the requests here are rejected, or create only
    resources of their own."""
    return build_world(api)


def method_for(request: Message) -> MethodDescriptor:
    """The RPC that takes this request."""
    return next(m for m in METHODS if m.input_type.full_name == request.DESCRIPTOR.full_name)


def send(world: World, request: Message, caller: str = "owner") -> Outcome:
    """Sends the request to the RPC that takes it, as the named caller."""
    payload = request.SerializeToString()
    return call(world.api.channel, method_for(request), payload, world.caller(caller))


def assert_rejected(outcome: Outcome, request: Message, code: Code = INVALID) -> None:
    assert outcome.code == code, f"expected {code.name}, got {outcome.describe()}"
    assert contract_violations(outcome, strings_in(request)) == []


@dataclass(frozen=True)
class Case:
    """A request built from the world's resources, named for the test id."""

    name: str
    build: Callable[[Resources], Message]


def cases(*items: Case) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", items, ids=[item.name for item in items])


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- undecodable bytes -----------------------------------------------------------------

UNDECODABLE = {
    "end-group-tag-alone": b"\x0c",
    "overlong-varint": b"\x08" + b"\xff" * 10 + b"\x01",
    "length-past-the-end": b"\x12\x7fshort",
}


@pytest.mark.parametrize(
    ("authenticated", "expected"),
    [
        pytest.param(False, Code.UNAUTHENTICATED, id="unauthenticated-without-a-token"),
        pytest.param(True, INVALID, id="invalid-argument-with-a-token"),
    ],
)
@pytest.mark.parametrize("payload", UNDECODABLE.values(), ids=UNDECODABLE.keys())
@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.name)
def test_undecodable_bytes(
    world: World, method: MethodDescriptor, payload: bytes, authenticated: bool, expected: Code
) -> None:
    """The token is judged before the bytes are read."""
    assert parsed_request(method, payload) is None
    callers = [world.caller("owner")] if authenticated else world.unauthenticated
    for caller in callers:
        outcome = call(world.api.channel, method, payload, caller)
        assert outcome.code == expected, f"{caller.name}: {outcome.describe()}"


def test_invalid_utf8_in_a_string_field_is_invalid_argument(world: World) -> None:
    method = SERVICE.methods_by_name["CreateOrganization"]
    payload = b"\x0a\x04ok\xff\xfe"  # name = b"ok\xff\xfe": framed well, not UTF-8
    assert parsed_request(method, payload) is None
    assert call(world.api.channel, method, payload, world.caller("owner")).code == INVALID
    no_token = call(world.api.channel, method, payload, world.caller("no token"))
    assert no_token.code == Code.UNAUTHENTICATED


# --- control characters ----------------------------------------------------------------


@cases(
    Case("GetOrganization.slug-nul", lambda r: rpc.GetOrganizationRequest(slug="b\x00")),
    Case("ListOrganizations.filter-nul", lambda r: rpc.ListOrganizationsRequest(filter="a\x00")),
    Case("ListOrganizations.filter-escape", lambda r: rpc.ListOrganizationsRequest(filter="\x1b")),
    Case(
        "ListWorkspaces.filter-nul",
        lambda r: rpc.ListWorkspacesRequest(organization_id=r.organization.id, filter="a\x00"),
    ),
    Case(
        "ListAuditEvents.action-nul",
        lambda r: rpc.ListAuditEventsRequest(
            organization_id=r.organization.id, action="member\x00"
        ),
    ),
    Case(
        "DeleteRole.name-nul",
        lambda r: rpc.DeleteRoleRequest(organization_id=r.organization.id, name="owner\x00"),
    ),
    Case(
        "ListMembers.role-nul",
        lambda r: rpc.ListMembersRequest(organization_id=r.organization.id, role="owner\x00"),
    ),
    Case(
        "AddMember.role-nul",
        lambda r: rpc.AddMemberRequest(
            organization_id=r.organization.id, user_id=r.invitee_user_id, role="viewer\x00"
        ),
    ),
    Case(
        "UpdateMember.role-nul",
        lambda r: rpc.UpdateMemberRequest(
            organization_id=r.organization.id, user_id=r.member_user_id, role="viewer\x00"
        ),
    ),
    Case(
        "CreateInvitation.role-nul",
        lambda r: rpc.CreateInvitationRequest(
            organization_id=r.organization.id, email=f"{_unique('nul')}@example.com", role="\x00"
        ),
    ),
    Case("CreateOrganization.name-nul", lambda r: rpc.CreateOrganizationRequest(name="a\x00b")),
    Case(
        "CreateOrganization.description-nul",
        lambda r: rpc.CreateOrganizationRequest(name="Acme", description="a\x00b"),
    ),
    Case(
        "CreateOrganization.description-bell",
        lambda r: rpc.CreateOrganizationRequest(name="Acme", description="ring\x07"),
    ),
    Case(
        "CreateOrganization.label-value-nul",
        lambda r: rpc.CreateOrganizationRequest(name="Acme", labels={"team": "a\x00"}),
    ),
    Case(
        "CreateOrganization.label-value-escape",
        lambda r: rpc.CreateOrganizationRequest(name="Acme", labels={"team": "\x1b[1m"}),
    ),
    Case(
        "UpdateOrganization.description-nul",
        lambda r: rpc.UpdateOrganizationRequest(
            organization=pb.Organization(id=r.organization.id, description="\x00"),
            update_mask=FieldMask(paths=["description"]),
        ),
    ),
    Case(
        "CreateWorkspace.description-nul",
        lambda r: rpc.CreateWorkspaceRequest(
            organization_id=r.organization.id, name="Docs", description="a\x00b"
        ),
    ),
    Case(
        "CreateRole.description-nul",
        lambda r: rpc.CreateRoleRequest(
            organization_id=r.organization.id,
            name=f"r-{uuid.uuid4().hex[:8]}",
            description="a\x00b",
            permissions=["workspaces.get"],
        ),
    ),
)
def test_control_characters_are_invalid_argument(world: World, case: Case) -> None:
    request = case.build(world.made)
    assert_rejected(send(world, request), request)


def test_descriptions_allow_newline_and_tab(world: World) -> None:
    request = rpc.CreateOrganizationRequest(name="Acme", description="line one\n\tline two")
    outcome = send(world, request)
    assert outcome.code == Code.OK, outcome.describe()
    created = rpc.CreateOrganizationResponse.FromString(outcome.response).organization
    assert created.description == "line one\n\tline two"


# --- filter length ---------------------------------------------------------------------

FILTERED_LISTS: dict[str, Callable[[Resources, str], Message]] = {
    "ListOrganizations": lambda r, text: rpc.ListOrganizationsRequest(filter=text),
    "ListWorkspaces": lambda r, text: rpc.ListWorkspacesRequest(
        organization_id=r.organization.id, filter=text
    ),
}


@pytest.mark.parametrize("length", [201, 50_001])
@pytest.mark.parametrize("build", FILTERED_LISTS.values(), ids=FILTERED_LISTS.keys())
def test_filters_longer_than_200_characters_are_invalid_argument(
    world: World, build: Callable[[Resources, str], Message], length: int
) -> None:
    at_limit = build(world.made, "a" * 200)
    assert send(world, at_limit).code == Code.OK
    request = build(world.made, "a" * length)
    assert_rejected(send(world, request), request)


def test_a_50_kb_audit_action_is_no_internal_error(world: World) -> None:
    # Matched with LIKE as `filter` is (SQLite refuses patterns over 50,000 bytes); the
    # contract names no limit for `action`, so an empty page is as good as a rejection.
    request = rpc.ListAuditEventsRequest(
        organization_id=world.made.organization.id, action="a" * 50_001
    )
    outcome = send(world, request)
    assert outcome.code in {Code.OK, INVALID}, outcome.describe()
    assert contract_violations(outcome, strings_in(request)) == []


# --- request_id spellings --------------------------------------------------------------


@dataclass(frozen=True)
class Create:
    """A create RPC: a fresh valid request with a request_id, and what it created."""

    name: str
    build: Callable[[Resources, str], Message]
    created: Callable[[Any], str]


CREATES = [
    Create(
        "CreateOrganization",
        lambda r, rid: rpc.CreateOrganizationRequest(name="Idempotent", request_id=rid),
        lambda response: response.organization.id,
    ),
    Create(
        "CreateWorkspace",
        lambda r, rid: rpc.CreateWorkspaceRequest(
            organization_id=r.organization.id, name="Idempotent", request_id=rid
        ),
        lambda response: response.workspace.id,
    ),
    Create(
        "CreateRole",
        lambda r, rid: rpc.CreateRoleRequest(
            organization_id=r.organization.id,
            name=_unique("idem"),
            permissions=["workspaces.get"],
            request_id=rid,
        ),
        lambda response: response.role.name,
    ),
    Create(
        "CreateInvitation",
        lambda r, rid: rpc.CreateInvitationRequest(
            organization_id=r.organization.id,
            email=f"{_unique('idem')}@example.com",
            role="viewer",
            request_id=rid,
        ),
        lambda response: response.invitation.id,
    ),
]
creates = pytest.mark.parametrize("create", CREATES, ids=[c.name for c in CREATES])


def _created(world: World, create: Create, request: Message) -> str:
    outcome = send(world, request)
    assert outcome.code == Code.OK, outcome.describe()
    return create.created(response_class(method_for(request)).FromString(outcome.response))


@creates
def test_request_id_in_upper_case_is_normalized_and_replays(world: World, create: Create) -> None:
    request_id = str(uuid.uuid4())
    upper = create.build(world.made, request_id.upper())
    first = _created(world, create, upper)
    assert _created(world, create, upper) == first
    lower = type(upper)()
    lower.CopyFrom(upper)  # the same request (names are unique per build), id in lower case
    lower.request_id = request_id  # type: ignore[attr-defined]
    assert _created(world, create, lower) == first


SPELLINGS: dict[str, Callable[[str], str]] = {
    "braces": lambda u: "{" + u + "}",
    "urn": lambda u: "urn:uuid:" + u,
    "no-hyphens": lambda u: u.replace("-", ""),
    "upper-no-hyphens": lambda u: u.upper().replace("-", ""),
}


@pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS.keys())
@creates
def test_request_id_in_other_spellings_is_invalid_argument(
    world: World, create: Create, spell: Callable[[str], str]
) -> None:
    request = create.build(world.made, spell(str(uuid.uuid4())))
    assert_rejected(send(world, request), request)


# --- Duration and Timestamp ranges -----------------------------------------------------

BAD_DURATIONS = {
    "max-int64-seconds": Duration(seconds=2**63 - 1),
    "min-int64-seconds": Duration(seconds=-(2**63)),
    "past-timedelta": Duration(seconds=10**14),
    "past-10000-years": Duration(seconds=DURATION_MAX_SECONDS + 1),
    "nanos-a-full-second": Duration(seconds=3600, nanos=1_000_000_000),
    "nanos-of-the-other-sign": Duration(seconds=3600, nanos=-1),
}
DURATION_FIELDS: dict[str, Callable[[Resources, Duration], Message]] = {
    "CreateInvitation.ttl": lambda r, ttl: rpc.CreateInvitationRequest(
        organization_id=r.organization.id,
        email=f"{_unique('ttl')}@example.com",
        role="viewer",
        ttl=ttl,
    ),
    "ResendInvitation.ttl": lambda r, ttl: rpc.ResendInvitationRequest(
        invitation_id=r.invitation.id, ttl=ttl
    ),
}


@pytest.mark.parametrize("duration", BAD_DURATIONS.values(), ids=BAD_DURATIONS.keys())
@pytest.mark.parametrize("build", DURATION_FIELDS.values(), ids=DURATION_FIELDS.keys())
def test_out_of_range_durations_are_invalid_argument(
    world: World, build: Callable[[Resources, Duration], Message], duration: Duration
) -> None:
    request = build(world.made, duration)
    assert_rejected(send(world, request), request)


NOW = int(time.time())
BAD_TIMESTAMPS = {
    "year-10000": Timestamp(seconds=TIMESTAMP_MAX_SECONDS + 1),
    "before-year-1": Timestamp(seconds=TIMESTAMP_MIN_SECONDS - 1),
    "max-int64-seconds": Timestamp(seconds=2**63 - 1),
    "negative-nanos": Timestamp(seconds=NOW + 86_400, nanos=-1),
    "nanos-a-full-second": Timestamp(seconds=NOW + 86_400, nanos=1_000_000_000),
}


@pytest.mark.parametrize("expire_time", BAD_TIMESTAMPS.values(), ids=BAD_TIMESTAMPS.keys())
@pytest.mark.parametrize("mask", [["expire_time"], []], ids=["mask", "empty-mask"])
def test_out_of_range_timestamps_are_invalid_argument(
    world: World, expire_time: Timestamp, mask: list[str]
) -> None:
    request = rpc.UpdateInvitationRequest(
        invitation=pb.Invitation(id=world.made.invitation.id, expire_time=expire_time),
        update_mask=FieldMask(paths=mask),
    )
    assert_rejected(send(world, request), request)


# --- enums and sizes -------------------------------------------------------------------


@pytest.mark.parametrize("state", [99, -1, 2**31 - 1])
def test_unknown_enum_numbers_are_invalid_argument(world: World, state: int) -> None:
    request = rpc.ListInvitationsRequest(organization_id=world.made.organization.id)
    request.state = state  # type: ignore[assignment]  # an open enum takes any number
    assert_rejected(send(world, request), request)


ROLE_PERMISSIONS: dict[str, Callable[[Resources, list[str]], Message]] = {
    "CreateRole": lambda r, permissions: rpc.CreateRoleRequest(
        organization_id=r.organization.id, name=_unique("big"), permissions=permissions
    ),
    "UpdateRole": lambda r, permissions: rpc.UpdateRoleRequest(
        role=pb.Role(
            organization_id=r.organization.id, name=r.custom_role.name, permissions=permissions
        ),
        update_mask=FieldMask(paths=["permissions"]),
    ),
}
role_permissions = pytest.mark.parametrize(
    "build", ROLE_PERMISSIONS.values(), ids=ROLE_PERMISSIONS.keys()
)


@role_permissions
def test_more_than_100_permissions_are_invalid_argument(
    world: World, build: Callable[[Resources, list[str]], Message]
) -> None:
    request = build(world.made, ["workspaces.get"] * 101)
    assert_rejected(send(world, request), request)


UPDATES: dict[str, Callable[[Resources, list[str]], Message]] = {
    "UpdateOrganization": lambda r, paths: rpc.UpdateOrganizationRequest(
        organization=pb.Organization(id=r.organization.id, name="Renamed"),
        update_mask=FieldMask(paths=paths),
    ),
    "UpdateWorkspace": lambda r, paths: rpc.UpdateWorkspaceRequest(
        workspace=pb.Workspace(
            organization_id=r.organization.id, id=r.workspace.id, name="Renamed"
        ),
        update_mask=FieldMask(paths=paths),
    ),
    "UpdateRole": lambda r, paths: rpc.UpdateRoleRequest(
        role=pb.Role(
            organization_id=r.organization.id, name=r.custom_role.name, description="Renamed"
        ),
        update_mask=FieldMask(paths=paths),
    ),
    "UpdateInvitation": lambda r, paths: rpc.UpdateInvitationRequest(
        invitation=pb.Invitation(id=r.invitation.id, role="viewer"),
        update_mask=FieldMask(paths=paths),
    ),
}
updates = pytest.mark.parametrize("build", UPDATES.values(), ids=UPDATES.keys())
MUTABLE_PATH = {"UpdateRole": "description", "UpdateInvitation": "role"}


@updates
def test_more_than_20_update_mask_paths_are_invalid_argument(
    world: World, build: Callable[[Resources, list[str]], Message]
) -> None:
    name = next(key for key, value in UPDATES.items() if value is build)
    request = build(world.made, [MUTABLE_PATH.get(name, "name")] * 21)
    assert_rejected(send(world, request), request)


# --- what errors may say ---------------------------------------------------------------

LONG = "x" * 300


@cases(
    Case(
        "CreateOrganization.label-key",
        lambda r: rpc.CreateOrganizationRequest(name="Acme", labels={LONG: "v"}),
    ),
    Case(
        "CreateRole.permission",
        lambda r: rpc.CreateRoleRequest(
            organization_id=r.organization.id, name=_unique("echo"), permissions=[LONG]
        ),
    ),
    Case("UpdateRole.permission", lambda r: ROLE_PERMISSIONS["UpdateRole"](r, [LONG])),
    Case(
        "CheckPermission.permission",
        lambda r: rpc.CheckPermissionRequest(organization_id=r.organization.id, permission=LONG),
    ),
    Case(
        "AddMember.role",
        lambda r: rpc.AddMemberRequest(
            organization_id=r.organization.id, user_id=r.invitee_user_id, role=LONG
        ),
    ),
    Case(
        "UpdateMember.role",
        lambda r: rpc.UpdateMemberRequest(
            organization_id=r.organization.id, user_id=r.member_user_id, role=LONG
        ),
    ),
    Case(
        "CreateInvitation.role",
        lambda r: rpc.CreateInvitationRequest(
            organization_id=r.organization.id, email=f"{_unique('echo')}@example.com", role=LONG
        ),
    ),
    Case(
        "UpdateInvitation.role",
        lambda r: rpc.UpdateInvitationRequest(
            invitation=pb.Invitation(id=r.invitation.id, role=LONG),
            update_mask=FieldMask(paths=["role"]),
        ),
    ),
    Case("UpdateWorkspace.mask-path", lambda r: UPDATES["UpdateWorkspace"](r, [LONG])),
    Case("UpdateInvitation.mask-path", lambda r: UPDATES["UpdateInvitation"](r, [LONG])),
    Case("UpdateOrganization.mask-path", lambda r: UPDATES["UpdateOrganization"](r, [LONG])),
    # Escaped, a control character takes four characters: the cut must come after.
    Case(
        "UpdateOrganization.control-mask-path",
        lambda r: UPDATES["UpdateOrganization"](r, ["\x1f" * 65]),
    ),
    Case(
        "UpdateOrganization.nested-mask-path",
        lambda r: UPDATES["UpdateOrganization"](r, ["settings." + LONG]),
    ),
)
def test_errors_echo_at_most_64_characters_of_a_value(world: World, case: Case) -> None:
    request = case.build(world.made)
    assert_rejected(send(world, request), request)


@cases(
    Case(
        "CreateRole.150-unknown-permissions",
        lambda r: rpc.CreateRoleRequest(
            organization_id=r.organization.id,
            name=_unique("many"),
            permissions=[f"unknown.permission{i}" for i in range(150)],
        ),
    ),
    Case(
        "UpdateRole.150-empty-permissions", lambda r: ROLE_PERMISSIONS["UpdateRole"](r, [""] * 150)
    ),
    Case(
        "CreateOrganization.130-bad-label-keys",
        lambda r: rpc.CreateOrganizationRequest(
            name="Acme", labels={f"Key{i}": "v" for i in range(130)}
        ),
    ),
    Case(
        "CreateOrganization.130-long-label-values",
        lambda r: rpc.CreateOrganizationRequest(
            name="Acme", labels={f"key-{i}": "0" * 300 for i in range(130)}
        ),
    ),
    Case(
        "UpdateOrganization.40-long-unknown-mask-paths",
        lambda r: UPDATES["UpdateOrganization"](r, [f"{'p' * 60}{i}" for i in range(40)]),
    ),
    Case(
        "CheckPermission.4000-character-permission",
        lambda r: rpc.CheckPermissionRequest(
            organization_id=r.organization.id, permission="p" * 4000
        ),
    ),
    Case(
        "UpdateWorkspace.20-unknown-mask-paths",
        lambda r: UPDATES["UpdateWorkspace"](r, [f"unknown_field_{i}" for i in range(20)]),
    ),
)
def test_error_details_stay_under_4_kib(world: World, case: Case) -> None:
    request = case.build(world.made)
    assert_rejected(send(world, request), request)
