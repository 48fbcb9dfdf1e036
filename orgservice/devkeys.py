"""Development mode's local Ed25519 signing key, and tokens signed with it."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEV_ALGORITHM = "EdDSA"


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """Reads the key, creating it (mode 0600, parents 0700) on first use."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _publish(path, _new_key_pem())
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def _new_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _publish(path: Path, content: bytes) -> None:
    """Writes `path` unless it exists. Processes that start together race to create the
    key: each writes a whole file of its own (mkstemp: mode 0600) and links it to `path`,
    which only the first link creates, so no one ever reads a file still being written,
    and everyone reads the winner's key."""
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        os.unlink(draft)


def mint_token(
    key: Ed25519PrivateKey,
    *,
    subject: str,
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        **{name: value for name, value in claims.items() if value not in (None, "")},
    }
    if issuer:
        payload["iss"] = issuer
    if audience:
        payload["aud"] = audience
    return jwt.encode(payload, key, algorithm=DEV_ALGORITHM)
