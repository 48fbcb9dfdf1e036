"""Conversions between Python and the protobuf well-known types (api/converters.py)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from orgs.v1 import resources_pb2 as pb

from orgservice.api.converters import invitation_state
from orgservice.api.converters import set_time
from orgservice.api.converters import to_datetime
from orgservice.api.converters import to_timedelta
from orgservice.domain.errors import InvalidArgument
from orgservice.domain.models import InvitationState

MAX_SECONDS = 315_576_000_000  # Duration's range, in each direction


def reference(value: datetime) -> Timestamp:
    expected = Timestamp()
    expected.FromDatetime(value)
    return expected


@pytest.mark.parametrize(
    "value",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(1900, 6, 1, 0, 0, 0, 500_000, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2030, 1, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=-8))),
    ],
)
def test_timestamps_are_exact_for_aware_datetimes(value: datetime) -> None:
    converted = pb.User()
    set_time(converted.create_time, value)
    assert converted.create_time == reference(value)
    assert 0 <= converted.create_time.nanos < 1_000_000_000
    assert converted.create_time.ToDatetime(tzinfo=UTC) == value


def test_a_missing_time_leaves_the_timestamp_unset() -> None:
    converted = pb.User()
    set_time(converted.create_time, None)
    assert not converted.HasField("create_time")


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (0, 0, timedelta(0)),
        (1, 500_000_000, timedelta(seconds=1.5)),
        (-1, -500_000_000, timedelta(seconds=-1.5)),
        (0, 999, timedelta(0)),  # below a microsecond
        (0, 1_000, timedelta(microseconds=1)),
        (MAX_SECONDS, 999_999_999, timedelta(seconds=MAX_SECONDS, microseconds=999_999)),
        (-MAX_SECONDS, 0, timedelta(seconds=-MAX_SECONDS)),
    ],
)
def test_durations_in_range(seconds: int, nanos: int, expected: timedelta) -> None:
    assert to_timedelta(Duration(seconds=seconds, nanos=nanos), "ttl") == expected


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (MAX_SECONDS + 1, 0),
        (-MAX_SECONDS - 1, 0),
        (2**62, 0),
        (0, 1_000_000_000),
        (0, -1_000_000_000),
        (1, -1),  # signs must agree
        (-1, 1),
    ],
)
def test_durations_out_of_range_are_refused(seconds: int, nanos: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        to_timedelta(Duration(seconds=seconds, nanos=nanos), "ttl")
    assert [v.field for v in caught.value.violations] == ["ttl"]


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (0, 0, datetime(1970, 1, 1, tzinfo=UTC)),
        (-1, 999_999_999, datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        (-62_135_596_800, 0, datetime(1, 1, 1, tzinfo=UTC)),
        (253_402_300_799, 999_999_999, datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    ],
)
def test_timestamps_in_range(seconds: int, nanos: int, expected: datetime) -> None:
    converted = to_datetime(Timestamp(seconds=seconds, nanos=nanos), "expire_time")
    assert converted == expected
    assert converted.tzinfo is UTC


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(-62_135_596_801, 0), (253_402_300_800, 0), (2**62, 0), (0, -1), (0, 1_000_000_000)],
)
def test_timestamps_out_of_range_are_refused(seconds: int, nanos: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        to_datetime(Timestamp(seconds=seconds, nanos=nanos), "invitation.expire_time")
    assert [v.field for v in caught.value.violations] == ["invitation.expire_time"]


def test_invitation_state_filters() -> None:
    assert invitation_state(pb.INVITATION_STATE_UNSPECIFIED) is None
    assert invitation_state(pb.INVITATION_STATE_EXPIRED) is InvitationState.EXPIRED
    assert {invitation_state(value) for value in pb.InvitationState.values()} == {
        None,
        *InvitationState,
    }
    with pytest.raises(InvalidArgument):
        invitation_state(99)
