"""The input rules of domain/validation.py: slugs, text, labels, emails and ids."""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable

import pytest

from orgservice.domain.errors import DomainError
from orgservice.domain.errors import InvalidArgument
from orgservice.domain.errors import Violations
from orgservice.domain.validation import MAX_DESCRIPTION_LENGTH
from orgservice.domain.validation import MAX_LABELS
from orgservice.domain.validation import MAX_NAME_LENGTH
from orgservice.domain.validation import MAX_SEARCH_LENGTH
from orgservice.domain.validation import SLUG_PATTERN
from orgservice.domain.validation import canonical_uuid
from orgservice.domain.validation import check_description
from orgservice.domain.validation import check_labels
from orgservice.domain.validation import check_slug
from orgservice.domain.validation import clean_name
from orgservice.domain.validation import clean_named_fields
from orgservice.domain.validation import has_control_characters
from orgservice.domain.validation import normalized_email
from orgservice.domain.validation import normalized_request_id
from orgservice.domain.validation import search_text
from orgservice.domain.validation import slugify
from orgservice.domain.validation import with_suffix
from orgservice.service.organizations import slug_candidates

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def valid_slug(slug: str) -> bool:
    return SLUG_PATTERN.fullmatch(slug) is not None


def violations_of(check: Callable[..., None], *args: object) -> list[str]:
    """The fields `check(violations, *args)` finds fault with."""
    violations = Violations()
    check(violations, *args)
    return [v.field for v in violations.items]


# --- slugs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme", "acme"),
        ("Acme Corp, Inc.", "acme-corp-inc"),
        ("  --Hello__World--  ", "hello-world"),
        ("Ünïcödé Straße", "unicode-strae"),
        ("Café 42", "cafe-42"),
        ("abc", "abc"),
    ],
)
def test_slugify_lowercases_and_joins_words(name: str, slug: str) -> None:
    assert slugify(name) == slug


@pytest.mark.parametrize(
    "name", ["", "a", "ab", "-", "日本語の組織", "Организация", "🙂🙂🙂", "a!", " \t\n", "é"]
)
def test_slugify_pads_short_or_non_latin_names_with_a_random_suffix(name: str) -> None:
    slug = slugify(name)
    assert valid_slug(slug), slug
    assert slugify(name) != slug  # random: two derivations differ


@pytest.mark.parametrize(
    "name",
    [
        "a" * 500,
        "a" * 62 + "!b",  # cut at 63 right after a separator
        "ab-" * 40,
        "x" * 63 + "-" * 10 + "y",
        "Ä" * 100,
    ],
)
def test_slugify_cuts_long_names_to_a_valid_slug(name: str) -> None:
    slug = slugify(name)
    assert valid_slug(slug), slug
    assert len(slug) <= 63


def test_slugify_always_yields_a_valid_slug() -> None:
    alphabet = "aZ09 -_.!\t\n\x00\u00e9\u00df\u0130\u4e2d\u0416\U0001f600\u200b\u0301"
    rng = random.Random(20240501)
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        assert valid_slug(slugify(name)), repr(name)


@pytest.mark.parametrize("base", ["", "a", "acme", "a" * 63, "a" * 56 + "-" + "b" * 6])
def test_a_suffix_keeps_the_slug_valid(base: str) -> None:
    slug = with_suffix(base)
    assert valid_slug(slug), slug
    assert slug.startswith(base[:10].rstrip("-"))


def test_suffixes_draw_every_character_at_every_position() -> None:
    suffixes = [with_suffix("x").removeprefix("x-") for _ in range(3000)]
    assert {len(suffix) for suffix in suffixes} == {5}
    for position in range(5):
        assert {suffix[position] for suffix in suffixes} == set(
            string.ascii_lowercase + "0123456789"
        )


def test_collisions_are_retried_with_distinct_suffixes() -> None:
    candidates = list(slug_candidates(None, "Acme"))
    assert candidates[0] == "acme"
    assert len(candidates) == len(set(candidates)) == 5
    assert all(c.startswith("acme-") and valid_slug(c) for c in candidates[1:])
    assert list(slug_candidates("given", "Acme")) == ["given"]


@pytest.mark.parametrize(
    ("slug", "valid"),
    [
        ("abc", True),
        ("a-b", True),
        ("a" * 63, True),
        ("ab", False),
        ("a" * 64, False),
        ("-ab", False),
        ("ab-", False),
        ("Abc", False),
        ("a_b", False),
        ("acme\n", False),
        ("\uff41\uff42\uff43", False),  # full-width letters are not a-z
    ],
)
def test_slug_rules(slug: str, valid: bool) -> None:
    assert (violations_of(check_slug, "slug", slug) == []) is valid


# --- text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "control"),
    [
        ("plain", False),
        ("zero\u200bwidth", False),  # a format character, not a control character
        ("nul\x00", True),
        ("bell\x07", True),
        ("del\x7f", True),
        ("c1\x85", True),
        ("line\nbreak", True),
    ],
)
def test_control_characters(text: str, control: bool) -> None:
    assert has_control_characters(text) is control


def test_descriptions_may_hold_newlines_and_tabs_only() -> None:
    assert violations_of(check_description, "d", "two\nlines\tand a tab") == []
    assert violations_of(check_description, "d", "carriage\r\nreturn") == ["d"]
    assert violations_of(check_description, "d", "x" * MAX_DESCRIPTION_LENGTH) == []
    assert violations_of(check_description, "d", "x" * (MAX_DESCRIPTION_LENGTH + 1)) == ["d"]


@pytest.mark.parametrize(
    ("name", "trimmed", "valid"),
    [
        ("  Acme  ", "Acme", True),
        ("x" * MAX_NAME_LENGTH, "x" * MAX_NAME_LENGTH, True),
        (" " + "x" * MAX_NAME_LENGTH + " ", "x" * MAX_NAME_LENGTH, True),
        ("x" * (MAX_NAME_LENGTH + 1), "x" * (MAX_NAME_LENGTH + 1), False),
        ("   ", "", False),
        ("two\nlines", "two\nlines", False),
        ("tab\tinside", "tab\tinside", False),
    ],
)
def test_names_are_trimmed_single_lines(name: str, trimmed: str, valid: bool) -> None:
    violations = Violations()
    assert clean_name(violations, "name", name) == trimmed
    assert (violations.items == []) is valid


def test_named_fields_require_a_name_only_on_create_and_never_clear_a_slug() -> None:
    def fields(
        *,
        creating: bool = False,
        name: str | None = None,
        slug: str | None = None,
        description: str | None = None,
    ) -> list[str]:
        violations = Violations()
        clean_named_fields(
            violations, name=name, slug=slug, description=description, creating=creating
        )
        return [v.field for v in violations.items]

    assert fields(creating=True) == ["name"]
    assert fields() == []
    assert fields(slug="") == ["slug"]
    assert fields(creating=True, name="A", slug="") == []  # derived from the name
    assert fields(name="", slug="-x", description="\x00") == ["name", "slug", "description"]


def test_label_rules() -> None:
    assert violations_of(check_labels, "labels", {"env": "prod", "a.b_c-d": ""}) == []
    assert violations_of(check_labels, "labels", {"Env": "x", "env\n": "x", "ok": "a\x00"}) == [
        "labels['Env']",
        "labels['env\\n']",
        "labels['ok']",
    ]
    assert violations_of(check_labels, "labels", {"k": "v" * 257}) == ["labels['k']"]
    too_many = {f"k{n}": "" for n in range(MAX_LABELS + 1)}
    assert violations_of(check_labels, "labels", too_many) == ["labels"]


def test_search_text_is_trimmed_and_bounded() -> None:
    assert search_text("filter", "  acme ") == "acme"
    for bad in ("x" * (MAX_SEARCH_LENGTH + 1), "a\x00b", "a\nb"):
        with pytest.raises(InvalidArgument):
            search_text("filter", bad)


# --- ids -------------------------------------------------------------------------------


def test_request_ids_are_lower_cased_uuids() -> None:
    assert normalized_request_id("") == ""
    assert normalized_request_id(UUID) == UUID
    assert normalized_request_id(UUID.upper()) == UUID


@pytest.mark.parametrize(
    "request_id",
    [
        "{" + UUID + "}",
        "urn:uuid:" + UUID,
        UUID.replace("-", ""),
        UUID + "\n",
        " " + UUID,
        UUID[:-1],
        UUID[:-1] + "g",
        UUID.replace("-", "_"),
        "\uff10" + UUID[1:],  # a full-width digit
    ],
)
def test_other_spellings_of_a_request_id_are_refused(request_id: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalized_request_id(request_id)
    assert [v.field for v in caught.value.violations] == ["request_id"]
    assert canonical_uuid(request_id) is None


def test_canonical_uuids_round_trip() -> None:
    value = str(uuid.uuid4())
    assert canonical_uuid(value.upper()) == value


# --- emails ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "normalized"),
    [
        ("a@example.com", "a@example.com"),
        ("  First.Last+tag@Example.COM ", "first.last+tag@example.com"),
        ("ünï@exämple.de", "ünï@exämple.de"),
    ],
)
def test_emails_are_trimmed_and_lower_cased(email: str, normalized: str) -> None:
    assert normalized_email(email) == normalized


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "no-at-sign",
        "two@@example.com",
        "a@b@example.com",
        "a@localhost",
        "a b@example.com",
        "a@example.com\x00",
        "a\x00@example.com",
        "a@exa\nmple.com",
        "a@" + "x" * 320 + ".com",
    ],
)
def test_malformed_emails_are_refused(email: str) -> None:
    with pytest.raises(DomainError) as caught:
        normalized_email(email)
    assert caught.value.reason == "INVALID_ARGUMENT"
