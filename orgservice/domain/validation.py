"""Input rules shared by every resource: slugs, names, descriptions, labels, ids."""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
import uuid
from collections.abc import Mapping

from orgservice.domain.errors import Violations, invalid

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
LABEL_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 2000
MAX_LABELS = 64
MAX_LABEL_VALUE_LENGTH = 256
MAX_SLUG_LENGTH = 63
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def check_slug(violations: Violations, field_path: str, slug: str) -> None:
    if not SLUG_PATTERN.match(slug):
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
    elif len(trimmed) > MAX_NAME_LENGTH:
        violations.add(field_path, f"must be at most {MAX_NAME_LENGTH} characters")
    elif _has_control_characters(trimmed):
        violations.add(field_path, "must not contain control characters")
    return trimmed


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


def check_description(violations: Violations, field_path: str, description: str) -> None:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        violations.add(field_path, f"must be at most {MAX_DESCRIPTION_LENGTH} characters")


def check_labels(violations: Violations, field_path: str, labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        violations.add(field_path, f"must have at most {MAX_LABELS} entries")
    for key, value in labels.items():
        if not LABEL_KEY_PATTERN.match(key):
            violations.add(
                f"{field_path}[{key!r}]",
                "key must start with a-z and hold at most 63 of a-z, 0-9, '_', '.', '-'",
            )
        if len(value) > MAX_LABEL_VALUE_LENGTH:
            violations.add(
                f"{field_path}[{key!r}]", f"value must be at most {MAX_LABEL_VALUE_LENGTH} chars"
            )


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def require_id(field_path: str, value: str) -> str:
    """Validates a server-assigned UUID taken from a request."""
    if not value:
        raise invalid(field_path, "is required")
    if not is_uuid(value):
        raise invalid(field_path, "must be a UUID")
    return value


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def new_id() -> str:
    return str(uuid.uuid4())


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
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
    base = slug[: MAX_SLUG_LENGTH - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}" if base else suffix
