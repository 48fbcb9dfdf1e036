"""Property: no well-typed request, however hostile its values, makes any RPC answer
INTERNAL or UNKNOWN, echo more than 64 characters of a value, or send 4 KiB of error;
on SQLite and PostgreSQL (the `api` fixture), from owners, members, strangers, platform
callers and callers without a valid token."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import World
from tests.fuzz.harness import METHODS
from tests.fuzz.harness import ServerLog
from tests.fuzz.harness import call
from tests.fuzz.harness import contract_violations
from tests.fuzz.harness import strings_in


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.name)
@given(data=st.data())
def test_well_typed_requests_keep_the_contract(
    world: World, server_log: ServerLog, method: MethodDescriptor, data: st.DataObject
) -> None:
    request = data.draw(world.strategies.message(method.input_type), label="request")
    caller = data.draw(st.sampled_from(world.callers), label="caller")
    with server_log.capture() as logged:
        outcome = call(world.api.channel, method, request.SerializeToString(), caller)
    problems = contract_violations(outcome, strings_in(request))
    assert not problems, f"{method.name} as {caller.name}: {problems}; server log: {logged}"
