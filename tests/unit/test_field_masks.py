"""Update masks (api/field_masks.py, AIP-134)."""

from __future__ import annotations

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from orgs.v1 import resources_pb2 as pb

from orgservice.api.field_masks import MAX_PATHS
from orgservice.api.field_masks import changes
from orgservice.api.field_masks import paths_to_update
from orgservice.api.organizations import MUTABLE_FIELDS
from orgservice.domain.errors import InvalidArgument

RESOURCE = pb.Organization(id="x", name="New", labels={"a": "b"}, etag="e", member_count=3)


def paths(*mask: str, resource: pb.Organization = RESOURCE) -> set[str]:
    return paths_to_update(FieldMask(paths=list(mask)), resource, MUTABLE_FIELDS)


def refused(*mask: str) -> list[str]:
    """The descriptions of the update_mask violations."""
    with pytest.raises(InvalidArgument) as caught:
        paths(*mask)
    assert {v.field for v in caught.value.violations} == {"update_mask"}
    return [v.description for v in caught.value.violations]


def test_an_empty_mask_means_the_mutable_fields_the_request_sets() -> None:
    assert paths() == {"name", "labels"}
    assert paths(resource=pb.Organization(id="x", etag="e")) == set()


def test_a_star_means_every_mutable_field() -> None:
    assert paths("*") == set(MUTABLE_FIELDS)


def test_named_paths_are_taken_as_given_even_when_unset() -> None:
    # Naming an unset field clears it (AIP-134): description becomes empty.
    assert paths("description", "name", "name") == {"description", "name"}


def test_unknown_and_immutable_paths_are_each_reported() -> None:
    descriptions = refused("name", "no_such", "etag", "member_count", "labels.a", "*")
    assert descriptions == [
        "unknown field 'no_such'",
        "field 'etag' cannot be changed",
        "field 'member_count' cannot be changed",
        "unknown field 'labels.a'",
        "unknown field '*'",
    ]


def test_at_most_20_paths() -> None:
    assert paths(*["name"] * MAX_PATHS) == {"name"}
    assert refused(*["name"] * (MAX_PATHS + 1)) == [f"must name at most {MAX_PATHS} paths"]


def test_hostile_paths_are_quoted_short() -> None:
    (description,) = refused("\x00" + "p" * 10_000)
    assert len(description) < 100


def test_changes_are_parsed_only_when_asked_for() -> None:
    built: list[set[str]] = []
    parse = changes(FieldMask(paths=["no_such"]), RESOURCE, MUTABLE_FIELDS, built.append)
    assert built == []  # nothing parsed yet: the use case authorizes first
    with pytest.raises(InvalidArgument):
        parse()
    ok = changes(FieldMask(paths=["name"]), RESOURCE, MUTABLE_FIELDS, sorted)
    assert ok() == ["name"]


def test_an_update_that_changes_nothing_is_refused() -> None:
    parse = changes(FieldMask(), pb.Organization(id="x"), MUTABLE_FIELDS, sorted)
    with pytest.raises(InvalidArgument) as caught:
        parse()
    assert [v.description for v in caught.value.violations] == ["names no field to update"]
