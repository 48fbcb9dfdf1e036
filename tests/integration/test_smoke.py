from orgs.v1 import organization_service_pb2 as rpc

from tests.conftest import Api


def test_current_user_is_provisioned_with_personal_organization(api: Api) -> None:
    alice = api.client(email="alice@example.com", name="Alice", preferred_username="alice")
    reply = alice.GetCurrentUser(rpc.GetCurrentUserRequest())
    assert reply.user.display_name == "Alice"
    assert [m.role for m in reply.memberships] == ["owner"]
