"""Organization metadata (API.md, "Domains and membership policies"): public metadata
for members, private metadata only for holders of `organizations.update` and platform
callers, whole values only, at most 8 KiB each, hostile input refused. On SQLite and
PostgreSQL (`api`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct
from google.protobuf.struct_pb2 import Value
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure

Code = grpc.StatusCode
LIMIT = 8 * 1024


def struct(document: dict[str, Any]) -> Struct:
    value = Struct()
    value.update(document)
    return value


@dataclass
class Org:
    owner: Client
    id: str
    slug: str

    def set(self, by: Client | None = None, **metadata: Struct) -> pb.Organization:
        request = rpc.UpdateOrganizationRequest(
            organization=pb.Organization(id=self.id, **metadata),
            update_mask=FieldMask(paths=list(metadata)),
        )
        return (by or self.owner).UpdateOrganization(request).organization

    def get(self, by: Client) -> pb.Organization:
        request = rpc.GetOrganizationRequest(organization_id=self.id)
        return by.GetOrganization(request).organization

    def listed(self, by: Client, **fields: Any) -> pb.Organization:
        request = rpc.ListOrganizationsRequest(filter=self.slug, **fields)
        reply = by.ListOrganizations(request)
        (found,) = [o for o in reply.organizations if o.id == self.id]
        return found

    def add(self, client: Client, role: str) -> Client:
        self.owner.AddMember(
            rpc.AddMemberRequest(organization_id=self.id, user_id=client.user_id, role=role)
        )
        return client


PUBLIC = {"plan": "enterprise", "seats": 25, "tags": ["a", "b"], "nested": {"ok": True}}
PRIVATE = {"billing_id": "cus_123", "notes": "line one\nline\ttwo", "nothing": None}


@pytest.fixture
def org(api: Api) -> Org:
    owner = api.client()
    created = owner.create_org()
    found = Org(owner, created.id, created.slug)
    found.set(public_metadata=struct(PUBLIC), private_metadata=struct(PRIVATE))
    return found


def test_a_new_organization_has_empty_metadata(api: Api) -> None:
    owner = api.client()
    organization = owner.create_org()
    assert organization.public_metadata == Struct()
    assert organization.HasField("private_metadata")  # the owner may see it: empty


def test_values_round_trip(org: Org) -> None:
    seen = org.get(org.owner)
    assert seen.public_metadata == struct(PUBLIC)
    assert seen.private_metadata == struct(PRIVATE)


@pytest.mark.parametrize("role", ["viewer", "developer"])
def test_members_without_organizations_update_see_only_public(
    api: Api, org: Org, role: str
) -> None:
    member = org.add(api.client(), role)
    for seen in (org.get(member), org.get(member), org.listed(member)):  # twice: cached
        assert seen.public_metadata == struct(PUBLIC)
        assert not seen.HasField("private_metadata")
    # The cache keeps the complete organization for those who may see it all.
    assert org.get(org.owner).private_metadata == struct(PRIVATE)


def test_a_member_sees_each_change_and_still_only_public(api: Api, org: Org) -> None:
    """Repeated reads share one view of the cached organization; a change replaces it."""
    member = org.add(api.client(), "viewer")
    assert org.get(member).public_metadata == struct(PUBLIC)
    changed = {**PUBLIC, "plan": "team"}
    org.set(public_metadata=struct(changed), private_metadata=struct({"billing_id": "cus_456"}))

    for seen in (org.get(member), org.get(member)):
        assert seen.public_metadata == struct(changed)
        assert not seen.HasField("private_metadata")
    assert org.get(org.owner).private_metadata == struct({"billing_id": "cus_456"})


def test_holders_of_organizations_update_and_platform_callers_see_private(
    api: Api, org: Org
) -> None:
    org.owner.CreateRole(
        rpc.CreateRoleRequest(
            organization_id=org.id,
            name="meta-editor",
            permissions=["organizations.get", "organizations.update"],
        )
    )
    admin = org.add(api.client(), "admin")
    editor = org.add(api.client(), "meta-editor")
    platform = api.platform()
    for seen in (
        org.get(admin),
        org.get(editor),
        org.get(platform),
        org.listed(admin),
        org.listed(editor),
        org.listed(platform),
        org.listed(platform, user_id=org.owner.user_id),
    ):
        assert seen.private_metadata == struct(PRIVATE)


def test_a_non_member_sees_nothing(api: Api, org: Org) -> None:
    hidden = failure(lambda: org.get(api.client()))
    assert (hidden.code, hidden.reason) == (Code.NOT_FOUND, "ORGANIZATION_NOT_FOUND")


def test_whole_values_are_replaced(org: Org) -> None:
    updated = org.set(public_metadata=struct({"only": "this"}))
    assert updated.public_metadata == struct({"only": "this"})
    assert updated.private_metadata == struct(PRIVATE)  # untouched
    cleared = org.set(private_metadata=Struct())
    assert cleared.private_metadata == Struct()
    events = org.owner.ListAuditEvents(
        rpc.ListAuditEventsRequest(organization_id=org.id, action="organization.updated")
    ).events
    assert events[0].details["fields"] == "private_metadata"
    assert "cus_123" not in str(events)  # metadata values stay out of the audit log


def sized(total: int) -> Struct:
    """A Struct of exactly `total` bytes in binary protobuf form."""
    value = struct({"k": ""})
    value["k"] = "x" * (total - value.ByteSize())
    while value.ByteSize() > total:  # length prefixes grow with the string
        value["k"] = value["k"][:-1]
    assert value.ByteSize() == total
    return value


def test_at_most_8_kib_each(org: Org) -> None:
    assert org.set(public_metadata=sized(LIMIT), private_metadata=sized(LIMIT))
    for field in ("public_metadata", "private_metadata"):
        too_big = failure(lambda field=field: org.set(**{field: sized(LIMIT + 1)}))
        assert (too_big.code, too_big.violations) == (Code.INVALID_ARGUMENT, [field])


@pytest.mark.parametrize(
    "document",
    [
        {"key": "nul\x00"},
        {"key\x1b": "escape in a key"},
        {"nested": {"list": ["bell\x07"]}},
        {"n": float("nan")},
        {"n": float("inf")},
    ],
    ids=["nul", "key", "nested", "nan", "inf"],
)
def test_hostile_values_are_refused(org: Org, document: dict[str, Any]) -> None:
    refused = failure(lambda: org.set(public_metadata=struct(document)))
    assert (refused.code, refused.violations) == (Code.INVALID_ARGUMENT, ["public_metadata"])


def test_unset_values_are_refused(org: Org) -> None:
    value = Struct()
    value.fields["empty"].CopyFrom(Value())
    refused = failure(lambda: org.set(private_metadata=value))
    assert (refused.code, refused.violations) == (Code.INVALID_ARGUMENT, ["private_metadata"])


def test_only_updaters_may_change_metadata_and_learn_of_bad_values(api: Api, org: Org) -> None:
    viewer = org.add(api.client(), "viewer")
    denied = failure(lambda: org.set(by=viewer, public_metadata=sized(LIMIT + 1)))
    assert denied.code == Code.PERMISSION_DENIED
