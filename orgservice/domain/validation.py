"""Input rules shared by every resource: text, slugs, names, labels, emails, ids, domain
names and metadata.

Every text a client sends is checked here before it reaches a query, so hostile input
gets INVALID_ARGUMENT the same way on every backend (PostgreSQL, for one, cannot store
NUL characters at all).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
import uuid
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import timedelta

import idna

from orgservice.domain.errors import Violations
from orgservice.domain.errors import invalid
from orgservice.domain.errors import quoted
from orgservice.domain.randomness import random_below
from orgservice.domain.randomness import random_bytes

# Use with fullmatch: `match` lets "$" match before a trailing newline.
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
LABEL_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
# The hyphenated form only: other spellings (braces, urn:uuid:, no hyphens) are refused
# rather than normalized, so one request_id can never be spelled two ways.
_UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 2000
MAX_LABELS = 64
MAX_LABEL_VALUE_LENGTH = 256
MAX_SLUG_LENGTH = 63
MAX_SEARCH_LENGTH = 200
MAX_EMAIL_LENGTH = 320
MAX_USERNAME_LENGTH = 255
MAX_DOMAIN_NAME_LENGTH = 253
# Unicode input may be longer than its ASCII form; anything longer than this is refused
# before the (comparatively costly) IDNA conversion.
_MAX_DOMAIN_INPUT_LENGTH = 1024
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_METADATA_BYTES = 8 * 1024
MAX_INVITATION_TTL = timedelta(days=30)
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_SUFFIX_LENGTH = 5
_SUFFIXES = len(_SUFFIX_ALPHABET) ** _SUFFIX_LENGTH
# Multi-line texts (descriptions, metadata) may hold these; no other control character.
_LAYOUT_CHARACTERS = frozenset("\n\t")


def has_control_characters(text: str, allowed: frozenset[str] = frozenset()) -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def check_line(violations: Violations, field_path: str, text: str, *, max_length: int) -> None:
    """One line of text (names, filters, label values): no control characters."""
    if len(text) > max_length:
        violations.add(field_path, f"must be at most {max_length} characters")
    elif has_control_characters(text):
        violations.add(field_path, "must not contain control characters")


def check_slug(violations: Violations, field_path: str, slug: str) -> None:
    if not SLUG_PATTERN.fullmatch(slug):
        violations.add(
            field_path,
            "must be 3-63 characters of a-z, 0-9 and '-', starting and ending with a "
            "letter or digit",
        )


def clean_name(violations: Violations, field_path: str, name: str) -> str:
    """Returns the trimmed name, recording a violation when it breaks the rules."""
    trimmed = name.strip()
    if not trimmed:
        violations.add(field_path, "must not be empty")
    else:
        check_line(violations, field_path, trimmed, max_length=MAX_NAME_LENGTH)
    return trimmed


def check_description(violations: Violations, field_path: str, description: str) -> None:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        violations.add(field_path, f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    elif has_control_characters(description, _LAYOUT_CHARACTERS):
        violations.add(field_path, "must not contain control characters but newline and tab")


def clean_named_fields(
    violations: Violations,
    *,
    name: str | None,
    slug: str | None,
    description: str | None,
    creating: bool,
) -> str | None:
    """The rules organizations and workspaces share: a name (required on create), an
    optional slug that may not be cleared, a description. Returns the trimmed name."""
    if name is not None or creating:
        name = clean_name(violations, "name", name or "")
    if slug:
        check_slug(violations, "slug", slug)
    elif slug is not None and not creating:
        violations.add("slug", "must not be empty")
    if description is not None:
        check_description(violations, "description", description)
    return name


def check_labels(violations: Violations, field_path: str, labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        violations.add(field_path, f"must have at most {MAX_LABELS} entries")
        return
    for key, value in labels.items():
        entry = f"{field_path}[{quoted(key)}]"
        if not LABEL_KEY_PATTERN.fullmatch(key):
            violations.add(
                entry, "key must start with a-z and hold at most 63 of a-z, 0-9, '_', '.', '-'"
            )
        check_line(violations, entry, value, max_length=MAX_LABEL_VALUE_LENGTH)


def slug_to_look_up(field_path: str, text: str) -> str | None:
    """A role name or slug a request names: None when it cannot exist (not a slug), and
    INVALID_ARGUMENT when it holds control characters."""
    if has_control_characters(text):
        raise invalid(field_path, "must not contain control characters")
    return text if SLUG_PATTERN.match(text) else None


def search_text(field_path: str, text: str) -> str:
    """A filter or query: trimmed, at most 200 characters, one line."""
    return checked_line(field_path, text, max_length=MAX_SEARCH_LENGTH).strip()


def normalized_email(email: str, field_path: str = "email") -> str:
    email = email.strip().lower()
    if not email:
        raise invalid(field_path, "is required")
    if (
        len(email) > MAX_EMAIL_LENGTH
        or has_control_characters(email)
        or not _EMAIL_PATTERN.fullmatch(email)
    ):
        raise invalid(field_path, "must be an email address")
    return email


def checked_line(field_path: str, text: str, *, max_length: int) -> str:
    """`text` if it is one line of at most `max_length` characters, else INVALID_ARGUMENT."""
    violations = Violations()
    check_line(violations, field_path, text, max_length=max_length)
    violations.raise_if_any()
    return text


def is_uuid(value: str) -> bool:
    """True for a UUID in the hyphenated form (any case)."""
    return bool(_UUID_PATTERN.fullmatch(value))


def canonical_uuid(value: str) -> str | None:
    """The lower-case form of a hyphenated UUID, or None for anything else."""
    return value.lower() if is_uuid(value) else None


def normalized_request_id(value: str) -> str:
    """A create's idempotency key: empty, or a hyphenated UUID normalized to lower case."""
    if not value:
        return ""
    normalized = canonical_uuid(value)
    if normalized is None:
        raise invalid(
            "request_id", "must be a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
        )
    return normalized


def check_count(
    violations: Violations, field_path: str, items: Sequence[object], maximum: int
) -> None:
    if len(items) > maximum:
        violations.add(field_path, f"must have at most {maximum} entries")


def new_id() -> str:
    """A random (version 4) UUID in its canonical text form."""
    return str(uuid.UUID(bytes=random_bytes(16), version=4))


def slugify(text: str) -> str:
    """Derives a slug from a name: lower-cased, runs of other characters become '-'.

    The result always matches SLUG_PATTERN: too-short results are padded with a random
    suffix, which also keeps slugs of names without any latin letters or digits valid.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug[:MAX_SLUG_LENGTH].rstrip("-")
    if len(slug) < 3:
        slug = with_suffix(slug or "org")
    return slug


def with_suffix(slug: str) -> str:
    """Appends a short random suffix, trimming the base so the result stays a valid slug."""
    # One draw for the whole suffix.
    number = random_below(_SUFFIXES)
    characters = []
    for _ in range(_SUFFIX_LENGTH):
        number, index = divmod(number, len(_SUFFIX_ALPHABET))
        characters.append(_SUFFIX_ALPHABET[index])
    suffix = "".join(characters)
    base = slug[: MAX_SLUG_LENGTH - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}" if base else suffix


def ascii_domain(text: str) -> str | None:
    """A DNS name in its lower-case ASCII form (IDNA 2008 with the UTS 46 mapping, so
    `Bücher.Example` becomes `xn--bcher-kva.example`), or None when `text` is not one:
    at least two labels of letters, digits and inner hyphens, a top-level label that is
    not all digits (no IP addresses), at most 253 characters. A trailing dot is ignored."""
    name = text.strip().removesuffix(".")
    if not name or len(name) > _MAX_DOMAIN_INPUT_LENGTH:
        return None
    try:
        encoded = idna.encode(name, uts46=True).decode("ascii")
    except UnicodeError:  # idna.IDNAError is one
        return None
    labels = encoded.split(".")
    if (
        len(encoded) > MAX_DOMAIN_NAME_LENGTH
        or len(labels) < 2
        or labels[-1].isdigit()
        or not all(_DNS_LABEL.match(label) for label in labels)
    ):
        return None
    return encoded


def domain_name(text: str, field_path: str = "name") -> str:
    """`ascii_domain(text)`, or INVALID_ARGUMENT."""
    name = ascii_domain(text)
    if name is None:
        raise invalid(field_path, "must be a DNS name such as example.com, at most 253 characters")
    return name


def email_domain(email: str) -> str | None:
    """The ASCII form of an email address's domain part, or None."""
    local, at, domain = email.strip().rpartition("@")
    return ascii_domain(domain) if at and local else None


def check_metadata(
    violations: Violations, field_path: str, document: Mapping[str, object], encoded_bytes: int
) -> None:
    """Metadata: at most 8 KiB in binary protobuf form; its strings (keys too) follow
    the rules of descriptions (no control characters but newline and tab, which also
    keeps NUL out of the database); numbers are finite (JSON has no NaN)."""
    if encoded_bytes > MAX_METADATA_BYTES:
        violations.add(field_path, f"must be at most {MAX_METADATA_BYTES} bytes in protobuf form")
        return
    for value in _leaves(document):
        if isinstance(value, str) and has_control_characters(value, _LAYOUT_CHARACTERS):
            violations.add(
                field_path, "strings must not contain control characters but newline and tab"
            )
            return
        if isinstance(value, float) and not math.isfinite(value):
            violations.add(field_path, "numbers must be finite")
            return


def _leaves(value: object) -> Iterator[object]:
    """Every key and scalar of a JSON-like document."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield key
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def check_invitation_ttl(violations: Violations, field_path: str, ttl: timedelta) -> None:
    if ttl <= timedelta(0) or ttl > MAX_INVITATION_TTL:
        violations.add(field_path, "must be positive and at most 30 days")
