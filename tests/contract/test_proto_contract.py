"""Rules of the proto contract that buf lint does not check: every field declares its
google.api.field_behavior, resource ids are IDENTIFIERs, responses are output only, and
the service comment lists each error reason under exactly one status code, and every
reason of the error catalogue under the code it is sent with."""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path

import grpc
from google.api import field_behavior_pb2 as fb
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor import FieldDescriptor
from orgs.v1 import organization_service_pb2
from orgs.v1 import resources_pb2

from orgservice.api.errors import STATUS_CODES
from orgservice.domain import errors

SERVICE_PROTO = Path(__file__).resolve().parents[2] / "protos/orgs/v1/organization_service.proto"
FILES = (resources_pb2.DESCRIPTOR, organization_service_pb2.DESCRIPTOR)


def _with_nested(messages: Iterable[Descriptor]) -> Iterator[Descriptor]:
    for message in messages:
        yield message
        yield from _with_nested(message.nested_types)


# Map entries are synthetic messages: their map field carries the annotation.
MESSAGES = [
    message
    for file in FILES
    for message in _with_nested(file.message_types_by_name.values())
    if not message.GetOptions().map_entry
]
FIELDS = [field for message in MESSAGES for field in message.fields]


def behaviors(field: FieldDescriptor) -> set[int]:
    return set(field.GetOptions().Extensions[fb.field_behavior])


def test_every_field_declares_its_behavior() -> None:
    names = {field.full_name for field in FIELDS}
    assert "orgs.v1.GetCurrentUserResponse.Membership.slug" in names  # nested ones too
    assert [field.full_name for field in FIELDS if not behaviors(field)] == []


def test_behaviors_do_not_contradict_each_other() -> None:
    exclusive = {fb.REQUIRED, fb.OPTIONAL, fb.OUTPUT_ONLY, fb.IDENTIFIER}
    assert [field.full_name for field in FIELDS if len(behaviors(field) & exclusive) > 1] == []


def test_resource_ids_are_identifiers() -> None:
    ids = {field.full_name: behaviors(field) for field in FIELDS if field.name == "id"}
    assert "orgs.v1.Organization.id" in ids
    assert {name for name, found in ids.items() if found != {fb.IDENTIFIER}} == set()


def test_response_fields_are_output_only() -> None:
    response_fields = [
        field
        for message in MESSAGES
        if message.full_name.split(".")[2].endswith("Response")  # nested messages too
        for field in message.fields
    ]
    assert response_fields
    assert [f.full_name for f in response_fields if behaviors(f) != {fb.OUTPUT_ONLY}] == []


def documented_reasons() -> dict[str, str]:
    """The error reasons the service comment lists, each with its status code.

    The list is a `// CODE` heading line followed by `//   REASON: meaning` lines."""
    text = SERVICE_PROTO.read_text()
    block = text[text.index("// Error reasons by status code:") : text.index("\nservice ")]
    reasons: dict[str, str] = {}
    duplicates: list[str] = []
    code = ""
    for line in block.splitlines()[1:]:
        if heading := re.fullmatch(r"// ([A-Z_]+)", line):
            code = heading[1]
        elif entry := re.fullmatch(r"//   ([A-Z_]+): \S.*", line):
            if entry[1] in reasons:
                duplicates.append(entry[1])
            reasons[entry[1]] = code
        else:
            assert line == "//", f"not a code heading nor a reason: {line!r}"
    assert duplicates == [], "a reason is listed more than once"
    return reasons


def test_each_error_reason_has_one_known_status_code() -> None:
    reasons = documented_reasons()
    assert reasons["ETAG_MISMATCH"] == "ABORTED"
    assert set(reasons.values()) <= set(grpc.StatusCode.__members__)


def _code_of(cls: type[errors.DomainError]) -> str:
    return next(STATUS_CODES[c] for c in cls.__mro__ if c in STATUS_CODES).name


def test_every_reason_of_the_error_catalogue_is_documented_with_its_code() -> None:
    """A reason the service can send appears in the service comment, under the code it is
    sent with. (The code classes' own reasons are only sent where they are listed.)"""
    documented = documented_reasons()
    wrong = {
        cls.reason: (documented.get(cls.reason), _code_of(cls))
        for cls in errors.catalogue()
        if not (cls in STATUS_CODES and cls.reason not in documented)
        and documented.get(cls.reason) != _code_of(cls)
    }
    assert wrong == {}, "reason: (documented code, actual code)"
    catalogued = {cls.reason for cls in errors.catalogue()}
    assert set(documented) - catalogued == {"INTERNAL"}
