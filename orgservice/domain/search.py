"""Member search: the terms a member is found by, and the range a prefix query scans.

Case is folded here, in Python, and stored: SQL `lower()` differs between backends (and
between PostgreSQL collations), so both backends compare folded text with plain
code-point order, which makes a prefix a contiguous range of an index.
"""

from __future__ import annotations

import sys
import unicodedata

MAX_TERM_LENGTH = 320
_SURROGATES = range(0xD800, 0xE000)


def fold(text: str) -> str:
    """Caseless, compatibility-normalized text with runs of whitespace as one space."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def member_terms(username: str, email: str, display_name: str) -> set[str]:
    """What a member is found by: the username, the email, the whole display name and
    each of its words, folded."""
    name = fold(display_name)
    terms = {fold(username), fold(email), name, *name.split(" ")}
    return {term[:MAX_TERM_LENGTH] for term in terms if term}


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """[low, high): every string starting with `prefix` (already folded, non-empty) and
    nothing else, in code-point order; high is None when no string sorts above them."""
    head = prefix
    while head and ord(head[-1]) == sys.maxunicode:
        head = head[:-1]
    if not head:
        return prefix, None
    following = ord(head[-1]) + 1
    if following in _SURROGATES:  # not encodable: skip to the first character after them
        following = _SURROGATES.stop
    return prefix, head[:-1] + chr(following)
