"""Fuzzing set-up: example budgets, the resources fuzzed requests point at, and the
server's health once a module is done.

Budgets: CI runs 8 examples per RPC and test, derandomized so a failure reproduces;
`make fuzz` sets ORGSERVICE_FUZZ_EXAMPLES (examples per RPC and test), and then the seed
is random and failures are kept in .hypothesis/ for the next run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.fuzz.harness import SERVICE
from tests.fuzz.harness import Caller
from tests.fuzz.harness import ServerLog
from tests.fuzz.harness import health_statuses
from tests.fuzz.strategies import RealValues
from tests.fuzz.strategies import RequestStrategies

EXAMPLES_VARIABLE = "ORGSERVICE_FUZZ_EXAMPLES"
CI_EXAMPLES_PER_RPC = 8

settings.register_profile(
    "orgservice-ci",
    max_examples=CI_EXAMPLES_PER_RPC,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    # No explain phase: it re-runs a failure many times (server calls) to annotate it.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    # The world fixture is made once per test, on purpose: examples share it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "orgservice-fuzz",
    parent=settings.get_profile("orgservice-ci"),
    max_examples=int(os.environ.get(EXAMPLES_VARIABLE) or CI_EXAMPLES_PER_RPC),
    derandomize=False,
    # Failures found are replayed first on the next run (the directory is git-ignored).
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
)
settings.load_profile("orgservice-fuzz" if os.environ.get(EXAMPLES_VARIABLE) else "orgservice-ci")


@dataclass(frozen=True)
class Resources:
    """What the world's owner made: an organization (with a member), a custom role, a
    workspace and a pending invitation (with its token); and the invitee's user id."""

    organization: pb.Organization
    workspace: pb.Workspace
    invitation: pb.Invitation
    invitation_token: str
    custom_role: pb.Role
    member_user_id: str
    invitee_user_id: str


class World:
    """Resources on the server, the callers who may act on them (and some who may not),
    and request strategies that point at all that."""

    def __init__(self, api: Api, callers: list[Caller], made: Resources, real: RealValues) -> None:
        self.api = api
        self.callers = callers
        self.made = made
        self.strategies = RequestStrategies(real)

    def __repr__(self) -> str:  # failure reports print it: tokens and ids would bury them
        return f"World({', '.join(caller.name for caller in self.callers)})"

    def caller(self, name: str) -> Caller:
        return next(caller for caller in self.callers if caller.name == name)

    @property
    def authenticated(self) -> list[Caller]:
        return [caller for caller in self.callers if caller.authenticated]

    @property
    def unauthenticated(self) -> list[Caller]:
        return [caller for caller in self.callers if not caller.authenticated]


def build_world(api: Api) -> World:
    suffix = uuid.uuid4().hex[:10]
    invitee_email = f"invitee-{suffix}@example.com"
    member_email = f"member-{suffix}@example.com"
    owner = api.client(
        preferred_username=f"owner-{suffix}",
        email=f"owner-{suffix}@example.com",
        email_verified=True,
    )
    member = api.client(preferred_username=f"member-{suffix}", email=member_email)
    invitee = api.client(email=invitee_email, email_verified=True)
    platform = api.platform()
    org = owner.create_org(labels={"team": "fuzz"})
    owner.AddMember(
        rpc.AddMemberRequest(organization_id=org.id, user_id=member.user_id, role="viewer")
    )
    role = owner.CreateRole(
        rpc.CreateRoleRequest(
            organization_id=org.id, name=f"fuzz-{suffix}", permissions=["workspaces.get"]
        )
    ).role
    workspace = owner.CreateWorkspace(
        rpc.CreateWorkspaceRequest(organization_id=org.id, name="Fuzz workspace")
    ).workspace
    invited = owner.CreateInvitation(
        rpc.CreateInvitationRequest(organization_id=org.id, email=invitee_email, role="developer")
    )
    first_roles = owner.ListRoles(rpc.ListRolesRequest(organization_id=org.id, page_size=1))
    roles = owner.ListRoles(rpc.ListRolesRequest(organization_id=org.id)).roles
    events = owner.ListAuditEvents(rpc.ListAuditEventsRequest(organization_id=org.id)).events
    role_names = [r.name for r in roles]
    permissions = sorted({p for r in roles for p in r.permissions})
    real = RealValues(
        {
            "organization_id": [org.id],
            "orgs.v1.Organization.id": [org.id],
            "workspace_id": [workspace.id],
            "orgs.v1.Workspace.id": [workspace.id],
            "invitation_id": [invited.invitation.id],
            "orgs.v1.Invitation.id": [invited.invitation.id],
            "user_id": [owner.user_id, member.user_id, invitee.user_id],
            "slug": [org.slug, workspace.slug],
            "role": role_names,
            "name": role_names,
            "permission": permissions,
            "permissions": permissions,
            "email": [invitee_email, member_email],
            "username": [f"member-{suffix}"],
            "token": [invited.token],
            "etag": [org.etag, workspace.etag],
            "page_token": [first_roles.next_page_token],
            "action": sorted({e.action for e in events} | {e.action.split(".")[0] for e in events}),
            "request_id": [str(uuid.uuid4())],
        }
    )
    callers = [
        Caller("owner", owner.token, authenticated=True),
        Caller("member", member.token, authenticated=True),
        Caller("invitee", invitee.token, authenticated=True),
        Caller("platform", platform.token, authenticated=True),
        Caller("no token", None, authenticated=False),
        Caller("garbage token", "not-a-jwt", authenticated=False),
    ]
    made = Resources(
        org, workspace, invited.invitation, invited.token, role, member.user_id, invitee.user_id
    )
    return World(api, callers, made, real)


@pytest.fixture
def world(api: Api) -> World:
    return build_world(api)


@pytest.fixture
def server_log() -> ServerLog:
    return ServerLog()


@pytest.fixture(scope="module", autouse=True)
def still_serving(api: Api) -> Iterator[None]:
    """After each module's fuzzing, the server must still answer health checks SERVING."""
    yield
    services = ["", SERVICE.full_name]
    assert health_statuses(api.channel, services) == dict.fromkeys(services, "SERVING")
