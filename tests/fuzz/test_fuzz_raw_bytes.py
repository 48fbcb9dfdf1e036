"""Property: bytes that are no valid request get UNAUTHENTICATED without a valid token
and INVALID_ARGUMENT with one, on every RPC and both backends; bytes that happen to
parse are held to the contract of any request (never INTERNAL or UNKNOWN)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import World
from tests.fuzz.harness import METHODS
from tests.fuzz.harness import ServerLog
from tests.fuzz.harness import call
from tests.fuzz.harness import contract_violations
from tests.fuzz.harness import parsed_request
from tests.fuzz.harness import strings_in
from tests.fuzz.strategies import raw_payloads


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.name)
@given(data=st.data())
def test_raw_bytes_keep_the_contract(
    world: World, server_log: ServerLog, method: MethodDescriptor, data: st.DataObject
) -> None:
    valid = world.strategies.message(method.input_type)
    payload = data.draw(raw_payloads(method.input_type, valid), label="payload")
    request = parsed_request(method, payload)
    callers = [
        data.draw(st.sampled_from(world.authenticated), label="caller with a valid token"),
        data.draw(st.sampled_from(world.unauthenticated), label="caller without one"),
    ]
    for caller in callers:
        with server_log.capture() as logged:
            outcome = call(world.api.channel, method, payload, caller)
        context = f"{method.name} as {caller.name}, server log: {logged}"
        if request is None:
            expected = (
                grpc.StatusCode.INVALID_ARGUMENT
                if caller.authenticated
                else grpc.StatusCode.UNAUTHENTICATED
            )
            assert outcome.code == expected, (
                f"{context}: undecodable bytes got {outcome.describe()}"
            )
        problems = contract_violations(outcome, strings_in(request) if request else [])
        assert not problems, f"{context}: {problems}"
