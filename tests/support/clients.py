"""Helpers for tests that call the service as users (`tests.conftest.Client`): unique
names, every page of a list, provisioned users, and a team (an organization with a member
of each built-in role)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Self

from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import resources_pb2 as pb

from tests.conftest import Api
from tests.conftest import Client


def tag() -> str:
    """A short unique, slug-safe token to keep names and slugs apart between tests."""
    return uuid.uuid4().hex[:10]


def all_pages(fetch: Callable[[str], Any]) -> list[Any]:
    """Every response of a list RPC: `fetch(page_token)`, following next_page_token."""
    pages = []
    token = ""
    while True:
        page = fetch(token)
        pages.append(page)
        token = page.next_page_token
        if not token:
            return pages


def all_items(fetch: Callable[[str], Any], items: str) -> list[Any]:
    """The `items` field (e.g. "members") of every page of a list RPC, in order."""
    return [item for page in all_pages(fetch) for item in getattr(page, items)]


def provisioned(api: Api, count: int) -> list[Client]:
    """Fresh users whose first call is made: a race after it is only about the race."""
    clients = [api.client() for _ in range(count)]
    for client in clients:
        client.GetCurrentUser(rpc.GetCurrentUserRequest())
    return clients


@dataclass
class Team:
    """A fresh organization with its owner and one new member of each other built-in
    role: clients and user ids by role name."""

    api: Api
    org: pb.Organization
    clients: dict[str, Client]
    ids: dict[str, str]

    @classmethod
    def new(cls, api: Api) -> Self:
        owner = api.client()
        team = cls(api, owner.create_org(), {"owner": owner}, {"owner": owner.user_id})
        for role in ("admin", "developer", "viewer"):
            team.clients[role], team.ids[role] = team.newcomer(role)
        return team

    @property
    def id(self) -> str:
        return str(self.org.id)

    @property
    def owner(self) -> Client:
        return self.clients["owner"]

    def __getitem__(self, role: str) -> Client:
        return self.clients[role]

    def newcomer(self, role: str, **claims: Any) -> tuple[Client, str]:
        """A fresh user, added with `role` by the owner."""
        client = self.api.client(**claims)
        user_id = client.user_id
        self.owner.AddMember(
            rpc.AddMemberRequest(organization_id=self.id, user_id=user_id, role=role)
        )
        return client, user_id
