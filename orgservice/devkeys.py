"""Development mode's local Ed25519 signing key, and tokens signed with it."""

from __future__ import annotations

import os
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
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # O_EXCL: when two processes race to create the key, one writes it and the
            # other reads the winner's key below.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


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
