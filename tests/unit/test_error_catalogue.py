"""The error catalogue (domain/errors.py) and its statuses (api/errors.py): one code per
reason, reasons unique, hostile values cut short in messages and details."""

from __future__ import annotations

import re
import urllib.parse
from collections import defaultdict

import grpc
import pytest
from google.rpc import error_details_pb2
from google.rpc import status_pb2

from orgservice.api.errors import MAX_DETAIL_BYTES
from orgservice.api.errors import MAX_MESSAGE_BYTES
from orgservice.api.errors import STATUS_CODES
from orgservice.api.errors import code_for
from orgservice.api.errors import status_for
from orgservice.domain import errors
from orgservice.domain.errors import MAX_QUOTED_CHARACTERS
from orgservice.domain.errors import DomainError
from orgservice.domain.errors import FieldViolation
from orgservice.domain.errors import InvalidArgument
from orgservice.domain.errors import Violations
from orgservice.domain.errors import catalogue
from orgservice.domain.errors import quoted
from orgservice.storage.database import StaleConnection  # joins the catalogue, as in the server

CLASSES = list(catalogue())
CODE_CLASSES = set(STATUS_CODES)


def instance(cls: type[DomainError]) -> DomainError:
    """An instance, whatever the constructor wants."""
    try:
        return cls()
    except TypeError:
        return cls("value")


def test_the_catalogue_holds_every_error_class() -> None:
    def subclasses(cls: type[DomainError]) -> set[type[DomainError]]:
        found = set(cls.__subclasses__())
        return found.union(*(subclasses(c) for c in cls.__subclasses__()))

    assert set(CLASSES) == subclasses(DomainError)
    assert set(CLASSES) >= CODE_CLASSES
    known = {errors.OrganizationNotFound, errors.LastOwner, errors.EtagMismatch, StaleConnection}
    assert set(CLASSES) >= known


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_derives_from_exactly_one_code_class(cls: type[DomainError]) -> None:
    code_classes = [base for base in cls.__mro__ if base in CODE_CLASSES]
    assert len(code_classes) == 1, code_classes
    assert code_for(instance(cls)) == STATUS_CODES[code_classes[0]]


def test_every_reason_is_sent_with_exactly_one_code() -> None:
    codes: defaultdict[str, set[grpc.StatusCode]] = defaultdict(set)
    for cls in CLASSES:
        codes[cls.reason].add(code_for(instance(cls)))
    assert {reason: c for reason, c in codes.items() if len(c) != 1} == {}


def test_reasons_are_unique_and_upper_snake_case() -> None:
    """Classes share a reason only when one refines the other (a code class's generic
    reason, or storage's StaleConnection, a DatabaseUnavailable the server retries)."""
    by_reason: defaultdict[str, list[type[DomainError]]] = defaultdict(list)
    for cls in CLASSES:
        assert re.fullmatch(r"[A-Z]+(_[A-Z]+)*", cls.reason), cls
        by_reason[cls.reason].append(cls)
    unrelated = {
        reason: classes
        for reason, classes in by_reason.items()
        if not any(all(issubclass(c, root) for c in classes) for root in classes)
    }
    assert unrelated == {}


def test_an_error_outside_the_catalogue_has_no_code() -> None:
    with pytest.raises(TypeError):
        code_for(DomainError())


@pytest.mark.parametrize("length", [0, 1, MAX_QUOTED_CHARACTERS, MAX_QUOTED_CHARACTERS + 1, 10_000])
def test_quoted_cuts_long_values(length: int) -> None:
    value = "x" * length
    text = quoted(value)
    if length <= MAX_QUOTED_CHARACTERS:
        assert text == repr(value)
    else:
        assert text == repr("x" * (MAX_QUOTED_CHARACTERS - 1) + "…")


def test_messages_quoting_hostile_input_stay_short() -> None:
    hostile = "\x00" + "😈" * 100_000
    for error in (
        errors.UnknownRole(hostile),
        errors.SlugTaken(hostile),
        errors.RoleExists(hostile),
        errors.invalid("f", f"bad value {quoted(hostile)}"),
    ):
        assert len(error.message) < 300, type(error)
        assert "\x00" not in error.message


def test_violations_report_every_field_once_in_the_message() -> None:
    violations = Violations()
    for field, problem in (("name", "empty"), ("slug", "bad"), ("name", "long")):
        violations.add(field, problem)
    with pytest.raises(InvalidArgument) as caught:
        violations.raise_if_any()
    assert caught.value.message == "invalid request: name, slug"
    assert [v.field for v in caught.value.violations] == ["name", "slug", "name"]
    Violations().raise_if_any()  # none: no error


def trailers(error: DomainError) -> tuple[str, bytes]:
    """grpc-message (as sent: percent-encoded) and grpc-status-details-bin."""
    status = status_for(error)
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    return urllib.parse.quote(status.details, safe=SAFE_IN_GRPC_MESSAGE), details


SAFE_IN_GRPC_MESSAGE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


@pytest.mark.parametrize("character", ["x", "%", "é", "😈", "\x00"])
def test_trailers_stay_under_the_limits_however_many_fields_are_wrong(character: str) -> None:
    many = [FieldViolation(character * 1000 + str(n), character * 100) for n in range(500)]
    error = InvalidArgument(character * 100_000, violations=many)
    message, details = trailers(error)
    assert len(message) <= MAX_MESSAGE_BYTES
    assert len(details) <= MAX_DETAIL_BYTES
    proto = status_pb2.Status.FromString(details)
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert proto.details[0].Unpack(info)
    assert proto.details[1].Unpack(bad)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "orgs.v1")
    assert 0 < len(bad.field_violations) < 500
    assert all(len(v.field) <= 128 for v in bad.field_violations)
    assert proto.message.endswith("…")


def test_short_messages_are_sent_as_they_are() -> None:
    error = InvalidArgument("invalid name: 100% wrong, ünïcode", violations=[])
    assert status_for(error).details == error.message
    assert trailers(error)[0] == "invalid name: 100%25 wrong, %C3%BCn%C3%AFcode"
