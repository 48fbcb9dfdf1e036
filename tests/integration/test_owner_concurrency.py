"""The last-owner rule under real concurrency, on PostgreSQL: A calls one server
(`pg_api`), B a replica on the same database (`pg_api_peer`), so the calls race in the
database rather than waiting for each other inside one server.

Each round: an organization with exactly two owners, A and B, who at the same moment
(a barrier releases both calls) try to get rid of each other, demote each other, or both
leave. Whatever the interleaving, the organization keeps an owner: one call succeeds and
the other fails.

When the two calls overlap, the loser is refused with FAILED_PRECONDITION / LAST_OWNER.
When the winner commits before the loser even reads, the loser is judged on the new state:
removed → it is no longer a member (NOT_FOUND), demoted to admin → it may no longer change
an owner's role (PERMISSION_DENIED). Both are correct serial outcomes; what must never
happen is two successes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import grpc
import pytest
from orgs.v1 import organization_service_pb2 as rpc

from tests.conftest import Api
from tests.conftest import Client
from tests.support.races import results_together

pytestmark = pytest.mark.postgres_only

Code = grpc.StatusCode
ROUNDS_PER_VARIANT = 200
LAST_OWNER = (Code.FAILED_PRECONDITION, "LAST_OWNER")


@dataclass(frozen=True)
class Variant:
    name: str
    # (client, organization_id, own user id, other owner's user id) -> the call to race
    action: Callable[[Client, str, str, str], Any]
    # How the loser may fail when it runs entirely after the winner (besides LAST_OWNER).
    serial_loss: Code | None
    winner_stays: bool

    def __str__(self) -> str:
        return self.name


def _remove(client: Client, org_id: str, user_id: str) -> Any:
    return client.RemoveMember(rpc.RemoveMemberRequest(organization_id=org_id, user_id=user_id))


def _demote(client: Client, org_id: str, user_id: str) -> Any:
    return client.UpdateMember(
        rpc.UpdateMemberRequest(organization_id=org_id, user_id=user_id, role="admin")
    )


VARIANTS = [
    Variant(
        "remove-each-other",
        lambda c, o, me, other: _remove(c, o, other),
        serial_loss=Code.NOT_FOUND,
        winner_stays=True,
    ),
    Variant(
        "demote-each-other",
        lambda c, o, me, other: _demote(c, o, other),
        serial_loss=Code.PERMISSION_DENIED,
        winner_stays=True,
    ),
    Variant(
        "both-leave",
        lambda c, o, me, other: _remove(c, o, me),
        serial_loss=None,
        winner_stays=False,
    ),
]


def owners(client: Client, org_id: str) -> list[str]:
    reply = client.ListMembers(rpc.ListMembersRequest(organization_id=org_id, role="owner"))
    return [member.user.id for member in reply.members]


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_two_owners_racing_always_leave_one_owner(
    pg_api: Api, pg_api_peer: Api, variant: Variant
) -> None:
    a = pg_api.client()
    b = pg_api_peer.client()
    a_id, b_id = a.user_id, b.user_id  # provisioned before the races
    platform = pg_api.platform()
    outcomes: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_ in range(ROUNDS_PER_VARIANT):
            org_id = a.create_org().id
            b_added = a.AddMember(
                rpc.AddMemberRequest(organization_id=org_id, user_id=b_id, role="owner")
            )
            assert b_added.member.role == "owner"
            results = results_together(
                [
                    partial(variant.action, a, org_id, a_id, b_id),
                    partial(variant.action, b, org_id, b_id, a_id),
                ],
                pool=pool,
            )
            where = f"{variant} round {round_}: {results}"
            remaining = owners(platform, org_id)
            assert len(remaining) == 1, where
            codes = [r.code for r in results]
            assert codes.count(Code.OK) == 1, where
            (loss,) = [r for r in results if r.code != Code.OK]
            assert (loss.code, loss.reason) == LAST_OWNER or (loss.code == variant.serial_loss), (
                where
            )
            winner, loser = (a_id, b_id) if codes[0] == Code.OK else (b_id, a_id)
            # Removing or demoting the other keeps the winner; leaving keeps the loser.
            assert remaining == [winner if variant.winner_stays else loser], where
            outcomes[f"{loss.code.name}/{loss.reason}"] += 1
    # The point of the barrier: most rounds really overlap and end in LAST_OWNER.
    assert outcomes["FAILED_PRECONDITION/LAST_OWNER"] > 0, outcomes
