"""Workspaces end to end against a real server on SQLite and PostgreSQL (the `api`
fixture): slugs, paging, masks and etags, counts, permissions, idempotency, audit.

The server is shared by the session: every test makes fresh users and organizations.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import failure
from tests.support.clients import Team
from tests.support.clients import all_items
from tests.support.clients import tag

Code = grpc.StatusCode


# --- helpers -------------------------------------------------------------------------


class WorkspaceTeam(Team):
    """A team with the workspace calls, made by the owner unless `by` names a role."""

    def create(self, name: str = "", by: str = "owner", **fields: Any) -> pb.Workspace:
        request = rpc.CreateWorkspaceRequest(
            organization_id=self.id, name=name or f"Workspace {tag()}", **fields
        )
        return self[by].CreateWorkspace(request).workspace

    def get(self, workspace_id: str, by: str = "owner") -> pb.Workspace:
        request = rpc.GetWorkspaceRequest(organization_id=self.id, workspace_id=workspace_id)
        return self[by].GetWorkspace(request).workspace

    def update(
        self, workspace: pb.Workspace, paths: list[str] | None = None, by: str = "owner"
    ) -> pb.Workspace:
        request = rpc.UpdateWorkspaceRequest(
            workspace=workspace, update_mask=FieldMask(paths=paths or [])
        )
        return self[by].UpdateWorkspace(request).workspace

    def delete(self, workspace_id: str, etag: str = "", by: str = "owner") -> None:
        self[by].DeleteWorkspace(
            rpc.DeleteWorkspaceRequest(
                organization_id=self.id, workspace_id=workspace_id, etag=etag
            )
        )

    def list_page(self, **fields: Any) -> rpc.ListWorkspacesResponse:
        return self.owner.ListWorkspaces(
            rpc.ListWorkspacesRequest(organization_id=self.id, **fields)
        )

    def all(self, filter_: str = "", page_size: int = 0) -> list[pb.Workspace]:
        return all_items(
            lambda token: self.list_page(filter=filter_, page_size=page_size, page_token=token),
            "workspaces",
        )

    def slugs(self) -> list[str]:
        return [w.slug for w in self.all()]

    def workspace_count(self) -> int:
        request = rpc.GetOrganizationRequest(organization_id=self.id)
        return int(self.owner.GetOrganization(request).organization.workspace_count)

    def events(self, action: str) -> list[pb.AuditEvent]:
        request = rpc.ListAuditEventsRequest(organization_id=self.id, action=action, page_size=1000)
        return list(self.owner.ListAuditEvents(request).events)

    def check(self, permission: str, workspace_id: str, by: str = "owner") -> Any:
        return self[by].CheckPermission(
            rpc.CheckPermissionRequest(
                organization_id=self.id, permission=permission, workspace_id=workspace_id
            )
        )


@pytest.fixture
def team(api: Api) -> WorkspaceTeam:
    return WorkspaceTeam.new(api)


# --- create / get ----------------------------------------------------------------------


def test_new_organization_has_a_default_workspace(team: WorkspaceTeam) -> None:
    assert team.slugs() == ["default"]
    assert team.workspace_count() == 1


def test_create_derives_slug_from_name(team: WorkspaceTeam) -> None:
    name = f"My Great Workspace {tag()}"
    workspace = team.create(name, description="for tests")
    assert workspace.slug == name.lower().replace(" ", "-")
    assert workspace.name == name
    assert workspace.description == "for tests"
    assert workspace.organization_id == team.id
    uuid.UUID(workspace.id)
    assert workspace.etag
    assert workspace.create_time.seconds > 0
    assert workspace.update_time == workspace.create_time
    assert team.get(workspace.id) == workspace
    assert team.get(workspace.id, by="viewer") == workspace


def test_derived_slug_collision_gets_a_suffix(team: WorkspaceTeam) -> None:
    name = f"Twin {tag()}"
    first, second = team.create(name), team.create(name)
    assert first.slug == name.lower().replace(" ", "-")
    assert second.slug != first.slug
    assert second.slug.startswith(first.slug)


def test_explicit_slug_is_unique_per_organization(api: Api, team: WorkspaceTeam) -> None:
    slug = f"ws-{tag()}"
    created = team.create(slug=slug)
    assert created.slug == slug
    taken = failure(lambda: team.create(slug=slug))
    assert (taken.code, taken.reason) == (Code.ALREADY_EXISTS, "SLUG_TAKEN")
    assert team.slugs().count(slug) == 1

    other_owner = api.client()
    other_org = other_owner.create_org()
    elsewhere = other_owner.CreateWorkspace(
        rpc.CreateWorkspaceRequest(organization_id=other_org.id, name="Same", slug=slug)
    ).workspace
    assert elsewhere.slug == slug
    assert elsewhere.id != created.id


@pytest.mark.parametrize(
    ("fields", "violation"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"slug": "No_Upper"}, "slug"),
        ({"slug": "ab"}, "slug"),
        ({"slug": "-leading"}, "slug"),
        ({"description": "d" * 2001}, "description"),
    ],
)
def test_create_validation(team: WorkspaceTeam, fields: dict[str, str], violation: str) -> None:
    request = {"name": "Valid", **fields}
    refused = failure(
        lambda: team.owner.CreateWorkspace(
            rpc.CreateWorkspaceRequest(organization_id=team.id, **request)
        )
    )
    assert refused.code == Code.INVALID_ARGUMENT
    assert refused.violations == [violation]
    assert team.workspace_count() == 1


# --- list ------------------------------------------------------------------------------


def test_list_with_filter_and_paging(team: WorkspaceTeam) -> None:
    marker = tag()
    matching = [team.create(f"Alpha {marker} {n}") for n in range(5)]
    team.create(f"Beta {tag()}")
    assert [w.id for w in team.all(f"ALPHA {marker}", page_size=2)] == [w.id for w in matching]
    # The filter also matches slugs.
    assert [w.id for w in team.all(f"alpha-{marker}-3")] == [matching[3].id]

    first = team.list_page(filter=f"alpha {marker}", page_size=2)
    assert [w.id for w in first.workspaces] == [w.id for w in matching[:2]]
    assert first.total_size == 5
    assert first.next_page_token
    # A page token is bound to the filter.
    reused = failure(
        lambda: team.list_page(filter="beta", page_size=2, page_token=first.next_page_token)
    )
    assert reused.code == Code.INVALID_ARGUMENT

    everything = team.list_page()
    assert everything.total_size == 7
    assert everything.workspaces[0].slug == "default"
    assert everything.next_page_token == ""
    assert team.all("no-such-workspace") == []
    negative = failure(lambda: team.list_page(page_size=-1))
    assert negative.code == Code.INVALID_ARGUMENT


def test_paging_has_no_gaps_when_rows_are_added(team: WorkspaceTeam) -> None:
    initial = [team.create() for _ in range(3)]
    first = team.list_page(page_size=2)
    added = team.create()
    second = team.list_page(page_size=2, page_token=first.next_page_token)
    rest = team.list_page(page_size=2, page_token=second.next_page_token)
    seen = [w.id for page in (first, second, rest) for w in page.workspaces]
    default_id = first.workspaces[0].id
    assert seen == [default_id, *(w.id for w in initial), added.id]


# --- update / delete ---------------------------------------------------------------------


def test_update_with_mask_and_etag(team: WorkspaceTeam) -> None:
    workspace = team.create("Original", description="before")
    renamed = team.update(
        pb.Workspace(
            organization_id=team.id,
            id=workspace.id,
            name="Renamed",
            description="ignored: not in the mask",
            etag=workspace.etag,
        ),
        ["name"],
    )
    assert renamed.name == "Renamed"
    assert renamed.description == "before"
    assert renamed.slug == workspace.slug
    assert renamed.etag != workspace.etag
    assert renamed.update_time.ToDatetime() >= workspace.update_time.ToDatetime()
    assert team.get(workspace.id) == renamed

    stale = failure(
        lambda: team.update(
            pb.Workspace(
                organization_id=team.id, id=workspace.id, name="Late", etag=workspace.etag
            ),
            ["name"],
        )
    )
    assert (stale.code, stale.reason) == (Code.ABORTED, "ETAG_MISMATCH")
    assert team.get(workspace.id).name == "Renamed"

    # An empty mask updates every field the request sets; no etag means unconditional.
    slug = f"moved-{tag()}"
    moved = team.update(
        pb.Workspace(organization_id=team.id, id=workspace.id, slug=slug, description="after")
    )
    assert (moved.name, moved.slug, moved.description) == ("Renamed", slug, "after")


@pytest.mark.parametrize(
    ("paths", "fields", "code"),
    [
        (["id"], {}, Code.INVALID_ARGUMENT),
        (["create_time"], {}, Code.INVALID_ARGUMENT),
        (["nonsense"], {}, Code.INVALID_ARGUMENT),
        (["name"], {"name": ""}, Code.INVALID_ARGUMENT),
        (["slug"], {"slug": "Bad Slug"}, Code.INVALID_ARGUMENT),
        (["slug"], {"slug": "default"}, Code.ALREADY_EXISTS),
    ],
)
def test_update_rejected(
    team: WorkspaceTeam, paths: list[str], fields: dict[str, str], code: grpc.StatusCode
) -> None:
    workspace = team.create()
    refused = failure(
        lambda: team.update(pb.Workspace(organization_id=team.id, id=workspace.id, **fields), paths)
    )
    assert refused.code == code
    assert team.get(workspace.id) == workspace


def test_delete_with_etag_and_counts(team: WorkspaceTeam) -> None:
    assert team.workspace_count() == 1
    first, second = team.create(), team.create()
    assert team.workspace_count() == 3

    updated = team.update(
        pb.Workspace(organization_id=team.id, id=first.id, name="Changed"), ["name"]
    )
    stale = failure(lambda: team.delete(first.id, etag=first.etag))
    assert (stale.code, stale.reason) == (Code.ABORTED, "ETAG_MISMATCH")
    assert team.workspace_count() == 3

    team.delete(first.id, etag=updated.etag)
    assert team.workspace_count() == 2
    assert failure(lambda: team.get(first.id)).code == Code.NOT_FOUND
    assert failure(lambda: team.delete(first.id)).code == Code.NOT_FOUND
    team.delete(second.id)
    assert team.workspace_count() == 1
    assert team.slugs() == ["default"]
    # The slug is free again.
    assert team.create(slug=first.slug).slug == first.slug
    assert team.workspace_count() == 2


# --- permissions -------------------------------------------------------------------------


def test_viewer_can_read_but_not_write(team: WorkspaceTeam) -> None:
    workspace = team.create()
    assert team.get(workspace.id, by="viewer") == workspace
    denied = failure(lambda: team.create(by="viewer"))
    assert denied.code == Code.PERMISSION_DENIED
    renamed = pb.Workspace(organization_id=team.id, id=workspace.id, name="Nope")
    assert failure(lambda: team.update(renamed, ["name"], by="viewer")).code == (
        Code.PERMISSION_DENIED
    )
    assert failure(lambda: team.delete(workspace.id, by="viewer")).code == Code.PERMISSION_DENIED
    assert team.workspace_count() == 2


def test_developer_can_create_and_update_but_not_delete(team: WorkspaceTeam) -> None:
    workspace = team.create(by="developer")
    renamed = team.update(
        pb.Workspace(organization_id=team.id, id=workspace.id, name="Dev rename"),
        ["name"],
        by="developer",
    )
    assert renamed.name == "Dev rename"
    denied = failure(lambda: team.delete(workspace.id, by="developer"))
    assert denied.code == Code.PERMISSION_DENIED
    assert team.get(workspace.id) == renamed
    team.delete(workspace.id, by="admin")
    assert failure(lambda: team.get(workspace.id)).code == Code.NOT_FOUND


def test_non_member_sees_nothing(api: Api, team: WorkspaceTeam) -> None:
    workspace = team.create()
    outsider = api.client()
    random_org = str(uuid.uuid4())
    calls = {
        "create": lambda org_id: outsider.CreateWorkspace(
            rpc.CreateWorkspaceRequest(organization_id=org_id, name="Sneaky")
        ),
        "get": lambda org_id: outsider.GetWorkspace(
            rpc.GetWorkspaceRequest(organization_id=org_id, workspace_id=workspace.id)
        ),
        "list": lambda org_id: outsider.ListWorkspaces(
            rpc.ListWorkspacesRequest(organization_id=org_id)
        ),
        "update": lambda org_id: outsider.UpdateWorkspace(
            rpc.UpdateWorkspaceRequest(
                workspace=pb.Workspace(organization_id=org_id, id=workspace.id, name="X"),
                update_mask=FieldMask(paths=["name"]),
            )
        ),
        "delete": lambda org_id: outsider.DeleteWorkspace(
            rpc.DeleteWorkspaceRequest(organization_id=org_id, workspace_id=workspace.id)
        ),
    }
    for name, call in calls.items():
        real = failure(lambda call=call: call(team.id))
        fake = failure(lambda call=call: call(random_org))
        assert real.code == Code.NOT_FOUND, name
        assert (real.code, real.message, real.reason) == (fake.code, fake.message, fake.reason)
    assert team.get(workspace.id) == workspace
    assert team.workspace_count() == 2


def test_workspace_of_another_organization_is_not_found(api: Api, team: WorkspaceTeam) -> None:
    other_owner = api.client()
    other_org = other_owner.create_org()
    theirs = other_owner.CreateWorkspace(
        rpc.CreateWorkspaceRequest(organization_id=other_org.id, name="Theirs")
    ).workspace
    missing = failure(lambda: team.get(str(uuid.uuid4())))
    assert missing.code == Code.NOT_FOUND
    for attempt in (
        lambda: team.get(theirs.id),
        lambda: team.update(
            pb.Workspace(organization_id=team.id, id=theirs.id, name="Stolen"), ["name"]
        ),
        lambda: team.delete(theirs.id),
    ):
        refused = failure(attempt)
        assert (refused.code, refused.message) == (missing.code, missing.message)
    assert failure(lambda: team.get("not-a-uuid")).code == Code.NOT_FOUND
    still = other_owner.GetWorkspace(
        rpc.GetWorkspaceRequest(organization_id=other_org.id, workspace_id=theirs.id)
    ).workspace
    assert still == theirs


# --- idempotency, CheckPermission, audit ------------------------------------------------


def test_request_id_idempotency(api: Api, team: WorkspaceTeam) -> None:
    request_id = str(uuid.uuid4())
    first = team.create("Once", request_id=request_id)
    again = team.create("Once", request_id=request_id)
    assert again == first
    assert team.workspace_count() == 2
    assert len(team.events("workspace.created")) == 1
    # Another caller with the same request_id gets their own workspace.
    other = team.create("Once", by="admin", request_id=request_id)
    assert other.id != first.id
    assert team.workspace_count() == 3


def test_check_permission_with_workspace(team: WorkspaceTeam) -> None:
    workspace = team.create()
    present = team.check("workspaces.update", workspace.id, by="developer")
    assert (present.allowed, present.role) == (True, "developer")
    assert team.check("workspaces.delete", workspace.id, by="developer").allowed is False
    assert team.check("workspaces.get", str(uuid.uuid4()), by="viewer").allowed is False

    team.delete(workspace.id)
    gone = team.check("workspaces.update", workspace.id, by="developer")
    assert (gone.allowed, gone.role) == (False, "developer")
    assert team.check("workspaces.get", workspace.id).allowed is False


def test_audit_events(team: WorkspaceTeam) -> None:
    workspace = team.create(by="developer")
    team.update(
        pb.Workspace(organization_id=team.id, id=workspace.id, name="Audited"),
        ["name"],
        by="developer",
    )
    team.delete(workspace.id, by="admin")
    actors = {
        "workspace.created": team["developer"].user_id,
        "workspace.updated": team["developer"].user_id,
        "workspace.deleted": team["admin"].user_id,
    }
    for action, actor in actors.items():
        events = [e for e in team.events(action) if e.target_id == workspace.id]
        assert len(events) == 1, action
        assert events[0].actor_user_id == actor
        assert events[0].target_type == "workspace"
        assert events[0].organization_id == team.id
