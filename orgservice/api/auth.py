"""Bearer-token verification: key sources, allowlisted algorithms, claim rules."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import jwt

from orgservice.domain.errors import Unauthenticated
from orgservice.domain.models import Identity
from orgservice.domain.validation import has_control_characters

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
JWKS_REFRESH_COOLDOWN_SECONDS = 1.0
PLATFORM_SCOPE = "orgs:admin"
_CACHED_TOKENS = 4096
# Larger `authorization` values are refused before any parsing.
MAX_AUTHORIZATION_BYTES = 16 * 1024

KeyResolver = Callable[[str], Any]
"""Maps a raw token to the key that must have signed it (JWKS looks at its `kid`)."""


def static_key(key: Any) -> KeyResolver:
    return lambda _token: key


def jwks_keys(url: str) -> KeyResolver:
    # PyJWKClient caches the key set and refetches it when a token names an unknown kid.
    # No `cache_keys`: that per-kid cache never expires, so a key withdrawn from the set
    # would stay trusted until restart.
    client = jwt.PyJWKClient(url, lifespan=300, timeout=5)
    # Recent PyJWT (the locked 2.15) only refetches after a cooldown, 30 s by default,
    # counted from every fetch, the first one included: a key rotated in meanwhile would be
    # refused. A short one still bounds the fetches that made-up kids can cause. (Set as an
    # attribute: PyJWT versions without the cooldown reject the argument.)
    client.cooldown_duration = JWKS_REFRESH_COOLDOWN_SECONDS
    return lambda token: client.get_signing_key_from_jwt(token).key


class TokenVerifier:
    def __init__(
        self,
        keys: KeyResolver,
        *,
        algorithms: Sequence[str],
        issuer: str | None = None,
        audience: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._algorithms = list(algorithms)
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        # Signature checks are the expensive part; a verified token is re-checked only
        # for expiry until it falls out of the cache, and its identity is made once.
        self._verified = functools.lru_cache(maxsize=_CACHED_TOKENS)(self._verify_token)

    def verify(self, authorization: str | None) -> Identity:
        """Returns the identity behind an `authorization` metadata value, or raises."""
        if authorization is None or len(authorization) > MAX_AUTHORIZATION_BYTES:
            raise Unauthenticated()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated()
        expires, identity = self._verified(token.strip())
        if expires + LEEWAY_SECONDS < self._clock():
            raise Unauthenticated()
        return identity

    def _verify_token(self, token: str) -> tuple[float, Identity]:
        """The token's expiry and identity, once its signature and claims are checked."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._keys(token),
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["sub", "exp"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            # The token itself is never logged, only why it failed.
            log.info("rejected bearer token: %s", type(error).__name__)
            raise Unauthenticated() from error
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise Unauthenticated()
        if has_control_characters(subject):
            raise Unauthenticated()
        # PyJWT also takes a numeric string as `exp`; `verify` compares it as a number.
        if not isinstance(claims["exp"], int | float) or isinstance(claims["exp"], bool):
            raise Unauthenticated()
        return claims["exp"], identity_from_claims(claims)


def identity_from_claims(claims: Mapping[str, Any]) -> Identity:
    scope = claims.get("scope", "")
    # A space-separated string (RFC 8693) or a list; anything else grants nothing.
    scopes = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else []
    return Identity(
        subject=claims["sub"],
        email=_text(claims.get("email")),
        email_verified=claims.get("email_verified") is True,
        username=_text(claims.get("preferred_username")),
        display_name=_text(claims.get("name")),
        is_platform=PLATFORM_SCOPE in scopes,
    )


def _text(value: object) -> str:
    """A profile claim as stored: at most 255 characters, control characters dropped."""
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value if not has_control_characters(ch))[:255]
