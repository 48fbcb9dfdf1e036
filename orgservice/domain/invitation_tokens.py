"""Invitation tokens: shown once, stored only as a SHA-256 hash.

Tokens carry 256 random bits, so an unsalted hash is enough, and lookups go by hash:
the raw token is never compared, stored or logged.
"""

import hashlib
import secrets


def new_token() -> tuple[str, str]:
    """A fresh token and its hash."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
