"""Bearer-token authentication in production mode, through a real server and the
generated stubs: PEM key file and JWKS key sources, claim rules, one generic rejection,
public health and reflection, start-up refusal without keys, no tokens in logs, and the
platform scope.

Tokens are made here, with keys generated here; the dev key only appears as a key that a
production server must refuse."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc
from orgs.v1 import organization_service_pb2 as rpc

from orgservice.api import auth
from orgservice.config import ConfigurationError
from orgservice.server import SERVICE_NAME
from orgservice.server import OrgServer
from orgservice.server import build_verifier
from tests.conftest import Api
from tests.conftest import Client
from tests.conftest import failure
from tests.conftest import settings_for
from tests.conftest import start_api

GENERIC_MESSAGE = "missing or invalid bearer token"
ISSUER = "https://issuer.example.test"
AUDIENCE = "orgservice"
OMIT: Any = object()
"""As a claim value: leave the claim out of the token."""


@dataclass(frozen=True)
class FromNow:
    """As a claim value: a NumericDate this many seconds from when the token is made."""

    seconds: int


# --- tokens -------------------------------------------------------------------------


def new_subject() -> str:
    return f"auth-{uuid.uuid4().hex[:12]}"


def now() -> int:
    return int(time.time())


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade_token(
    header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """A compact JWT assembled by hand, for tokens PyJWT refuses to produce."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def bearer(token: str) -> str:
    return f"Bearer {token}"


@dataclass(frozen=True)
class Issuer:
    """Mints RS256 tokens; by default exactly what the server under test accepts."""

    key: rsa.RSAPrivateKey
    issuer: str | None = None
    audience: str | None = None
    kid: str | None = None

    def claims(self, subject: str, **changes: Any) -> dict[str, Any]:
        issued = now()
        claims: dict[str, Any] = {"sub": subject, "iat": issued, "exp": issued + 300}
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        claims.update(changes)
        return {
            name: issued + value.seconds if isinstance(value, FromNow) else value
            for name, value in claims.items()
            if value is not OMIT
        }

    def token(self, subject: str, **changes: Any) -> str:
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(
            self.claims(subject, **changes), self.key, algorithm="RS256", headers=headers
        )


# --- servers ------------------------------------------------------------------------


@dataclass
class Server:
    """A production-mode server and the issuer whose tokens it trusts."""

    api: Api
    issuer: Issuer

    def client(self, subject: str | None = None, **changes: Any) -> Client:
        subject = subject or new_subject()
        return Client(self.api.channel, self.issuer.token(subject, **changes), subject)

    def current_user(self, authorization: str | None) -> rpc.GetCurrentUserResponse:
        """GetCurrentUser with exactly this `authorization` metadata (None: none at all)."""
        metadata = () if authorization is None else (("authorization", authorization),)
        reply: rpc.GetCurrentUserResponse = self.api.anonymous().GetCurrentUser(
            rpc.GetCurrentUserRequest(), metadata=metadata, timeout=30
        )
        return reply

    def assert_rejected(self, authorization: str | None) -> None:
        rejected = failure(lambda: self.current_user(authorization))
        assert (rejected.code, rejected.message, rejected.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            GENERIC_MESSAGE,
            "UNAUTHENTICATED",
        )


@contextlib.contextmanager
def production_api(database_url: str, dev_key_file: Path, **settings: Any) -> Iterator[Api]:
    yield from start_api(settings_for(database_url, dev_key_file, dev=False, **settings))


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture(scope="module")
def public_key_file(
    tmp_path_factory: pytest.TempPathFactory, signing_key: rsa.RSAPrivateKey
) -> Path:
    path = tmp_path_factory.mktemp("jwt") / "public.pem"
    path.write_bytes(public_pem(signing_key))
    return path


@pytest.fixture(scope="module")
def pem_server(
    database_url: str, dev_key_file: Path, signing_key: rsa.RSAPrivateKey, public_key_file: Path
) -> Iterator[Server]:
    """PEM public key file; no issuer or audience configured."""
    with production_api(database_url, dev_key_file, jwt_public_key_file=public_key_file) as api:
        yield Server(api, Issuer(signing_key))


@pytest.fixture(scope="module")
def strict_server(
    database_url: str, dev_key_file: Path, signing_key: rsa.RSAPrivateKey, public_key_file: Path
) -> Iterator[Server]:
    """PEM public key file with a required issuer and audience."""
    with production_api(
        database_url,
        dev_key_file,
        jwt_public_key_file=public_key_file,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    ) as api:
        yield Server(api, Issuer(signing_key, issuer=ISSUER, audience=AUDIENCE))


# --- PEM key file: accepted tokens --------------------------------------------------


@pytest.mark.parametrize("with_issuer_and_audience", [False, True])
def test_token_signed_by_configured_key_is_accepted(
    pem_server: Server, strict_server: Server, with_issuer_and_audience: bool
) -> None:
    server = strict_server if with_issuer_and_audience else pem_server
    subject = new_subject()
    reply = server.client(subject, email=f"{subject}@example.com").GetCurrentUser(
        rpc.GetCurrentUserRequest()
    )
    assert reply.user.subject == subject
    assert reply.user.email == f"{subject}@example.com"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": FromNow(-10)}, id="expired-within-leeway"),
        pytest.param({"nbf": FromNow(10)}, id="not-before-within-leeway"),
    ],
)
def test_clock_skew_within_leeway_is_accepted(
    strict_server: Server, changes: dict[str, Any]
) -> None:
    subject = new_subject()
    reply = strict_server.client(subject, **changes).GetCurrentUser(rpc.GetCurrentUserRequest())
    assert reply.user.subject == subject


def test_issuer_and_audience_are_not_checked_unless_configured(pem_server: Server) -> None:
    subject = new_subject()
    client = pem_server.client(subject, iss="https://anyone.example.test", aud="anything")
    assert client.GetCurrentUser(rpc.GetCurrentUserRequest()).user.subject == subject


def test_cached_token_is_still_rejected_once_it_expires(strict_server: Server) -> None:
    # Verified tokens are cached; expiry must still be enforced on later calls.
    expires = now() - auth.LEEWAY_SECONDS + 2  # valid for 1-2 more seconds, leeway included
    authorization = bearer(strict_server.issuer.token(new_subject(), exp=expires))
    strict_server.current_user(authorization)
    time.sleep(max(0.0, expires + auth.LEEWAY_SECONDS + 0.2 - time.time()))
    strict_server.assert_rejected(authorization)


# --- PEM key file: rejected tokens --------------------------------------------------

Forgery = Callable[[Server, str], str | None]
"""Makes the `authorization` value (None: no metadata) for a server and a subject."""


def with_claims(**changes: Any) -> Forgery:
    return lambda server, subject: bearer(server.issuer.token(subject, **changes))


def alg_none(server: Server, subject: str) -> str:
    header = {"alg": "none", "typ": "JWT"}
    return bearer(handmade_token(header, server.issuer.claims(subject), lambda _: b""))


def hs256_keyed_with_public_pem(server: Server, subject: str) -> str:
    # The classic algorithm confusion: the public key used as an HMAC secret.
    secret = public_pem(server.issuer.key)
    return bearer(
        handmade_token(
            {"alg": "HS256", "typ": "JWT"},
            server.issuer.claims(subject),
            lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
        )
    )


def tampered_payload(server: Server, subject: str) -> str:
    header, _, signature = server.issuer.token(subject).split(".")
    forged_payload = server.issuer.token(subject, scope=auth.PLATFORM_SCOPE).split(".")[1]
    return bearer(f"{header}.{forged_payload}.{signature}")


def other_rsa_key(server: Server, subject: str) -> str:
    return bearer(replace(server.issuer, key=new_rsa_key()).token(subject))


def ec_key(server: Server, subject: str) -> str:
    # ES256 is on the default allowlist, but nothing configured holds this key.
    claims = server.issuer.claims(subject)
    return bearer(jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"))


def dev_key(server: Server, subject: str) -> str:
    # The dev key file exists in these settings; production mode must not trust it.
    return bearer(server.api.mint(subject=subject, issuer=ISSUER, audience=AUDIENCE))


REJECTED: dict[str, Forgery] = {
    "alg-none": alg_none,
    "hs256-keyed-with-public-pem": hs256_keyed_with_public_pem,
    "expired-beyond-leeway": with_claims(exp=FromNow(-60)),
    "not-before-beyond-leeway": with_claims(nbf=FromNow(60)),
    "wrong-audience": with_claims(aud="someone-else"),
    "wrong-issuer": with_claims(iss="https://attacker.example.test"),
    "missing-audience": with_claims(aud=OMIT),
    "missing-issuer": with_claims(iss=OMIT),
    "tampered-payload": tampered_payload,
    "other-rsa-key": other_rsa_key,
    "unknown-ec-key": ec_key,
    "dev-key": dev_key,
    "missing-sub": with_claims(sub=OMIT),
    "empty-sub": with_claims(sub=""),
    "missing-exp": with_claims(exp=OMIT),
    "non-numeric-exp": lambda server, subject: bearer(
        server.issuer.token(subject, exp=str(now() + 300))
    ),
    "no-authorization-metadata": lambda server, subject: None,
    "basic-scheme": lambda server, subject: "Basic xyz",
    "bearer-without-token": lambda server, subject: "Bearer",
    "bearer-empty-token": lambda server, subject: "Bearer    ",
    "token-without-scheme": lambda server, subject: server.issuer.token(subject),
    "garbage": lambda server, subject: bearer("this-is-not-a-jwt"),
    "garbage-three-segments": lambda server, subject: bearer("a.b.c"),
}


@pytest.mark.parametrize("forge", REJECTED.values(), ids=REJECTED.keys())
def test_invalid_credentials_are_rejected_generically(
    strict_server: Server, forge: Forgery
) -> None:
    subject = new_subject()
    strict_server.assert_rejected(forge(strict_server, subject))
    # The same subject with a genuine token works: only the credential was at fault.
    assert strict_server.current_user(bearer(strict_server.issuer.token(subject))).user.subject


# --- JWKS key source ----------------------------------------------------------------


class JwksEndpoint:
    """A JWKS document served over HTTP on 127.0.0.1; its keys can change at any time."""

    def __init__(self) -> None:
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self._lock = threading.Lock()
        self.fetches = 0
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = endpoint.document()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"

    def publish(self, kid: str, key: rsa.RSAPrivateKey) -> None:
        with self._lock:
            self._keys[kid] = key

    def withdraw(self, kid: str) -> None:
        with self._lock:
            del self._keys[kid]

    def document(self) -> bytes:
        with self._lock:
            self.fetches += 1
            keys = [
                {
                    **jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True),
                    "kid": kid,
                    "use": "sig",
                    "alg": "RS256",
                }
                for kid, key in self._keys.items()
            ]
        return json.dumps({"keys": keys}).encode()

    def __enter__(self) -> JwksEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()


@dataclass
class JwksServer(Server):
    endpoint: JwksEndpoint


@contextlib.contextmanager
def jwks_server_for(database_url: str, dev_key_file: Path) -> Iterator[JwksServer]:
    key = new_rsa_key()
    with JwksEndpoint() as endpoint:
        endpoint.publish("key-1", key)
        with production_api(database_url, dev_key_file, jwks_url=endpoint.url) as api:
            yield JwksServer(api, Issuer(key, kid="key-1"), endpoint)


@pytest.fixture(scope="module")
def jwks_server(database_url: str, dev_key_file: Path) -> Iterator[JwksServer]:
    with jwks_server_for(database_url, dev_key_file) as server:
        yield server


@pytest.fixture
def fresh_jwks_server(database_url: str, dev_key_file: Path) -> Iterator[JwksServer]:
    """A JWKS server of its own, for tests that change its key set."""
    with jwks_server_for(database_url, dev_key_file) as server:
        yield server


def test_jwks_token_with_published_kid_is_accepted(jwks_server: JwksServer) -> None:
    subject = new_subject()
    reply = jwks_server.client(subject).GetCurrentUser(rpc.GetCurrentUserRequest())
    assert reply.user.subject == subject
    assert jwks_server.endpoint.fetches >= 1


@pytest.mark.parametrize(
    "signer",
    [
        pytest.param(lambda issuer: replace(issuer, kid="not-published"), id="unknown-kid"),
        pytest.param(lambda issuer: replace(issuer, kid=None), id="no-kid"),
        pytest.param(
            lambda issuer: replace(issuer, key=new_rsa_key()), id="published-kid-wrong-key"
        ),
    ],
)
def test_jwks_token_without_a_matching_published_key_is_rejected(
    jwks_server: JwksServer, signer: Callable[[Issuer], Issuer]
) -> None:
    jwks_server.assert_rejected(bearer(signer(jwks_server.issuer).token(new_subject())))


def wait_out_refresh_cooldown() -> None:
    # The key set was last fetched before the previous call returned; the next unknown
    # kid may force a refresh once the cooldown has passed.
    time.sleep(auth.JWKS_REFRESH_COOLDOWN_SECONDS + 0.05)


def test_jwks_key_added_after_start_is_picked_up(fresh_jwks_server: JwksServer) -> None:
    server = fresh_jwks_server
    server.current_user(bearer(server.issuer.token(new_subject())))  # key set now cached
    rotated = Issuer(new_rsa_key(), kid="key-2")
    server.endpoint.publish("key-2", rotated.key)
    wait_out_refresh_cooldown()

    subject = new_subject()
    assert server.current_user(bearer(rotated.token(subject))).user.subject == subject
    assert server.endpoint.fetches == 2  # the unknown kid forced exactly one refresh
    # The old key stays valid while it is still published.
    server.current_user(bearer(server.issuer.token(new_subject())))


def test_jwks_key_withdrawn_is_refused_after_refresh(fresh_jwks_server: JwksServer) -> None:
    server = fresh_jwks_server
    server.current_user(bearer(server.issuer.token(new_subject())))  # key-1 now cached
    rotated = Issuer(new_rsa_key(), kid="key-2")
    server.endpoint.publish("key-2", rotated.key)
    server.endpoint.withdraw("key-1")
    wait_out_refresh_cooldown()
    server.current_user(bearer(rotated.token(new_subject())))  # refreshes the key set

    server.assert_rejected(bearer(server.issuer.token(new_subject())))


# --- public methods -----------------------------------------------------------------


@pytest.mark.parametrize("service", ["", SERVICE_NAME])
def test_health_check_needs_no_token(strict_server: Server, service: str) -> None:
    health = health_pb2_grpc.HealthStub(strict_server.api.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_needs_no_token(strict_server: Server) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(strict_server.api.channel)
    requests = iter(
        [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
        ]
    )
    listed, described = stub.ServerReflectionInfo(requests, timeout=10)
    services = {service.name for service in listed.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= services
    assert described.file_descriptor_response.file_descriptor_proto


# --- configuration ------------------------------------------------------------------


@pytest.mark.parametrize("build", [build_verifier, OrgServer])
def test_production_without_key_source_refuses_to_start(
    tmp_path: Path, dev_key_file: Path, build: Callable[..., object]
) -> None:
    database = tmp_path / "never-created.db"
    settings = settings_for(f"sqlite:///{database}", dev_key_file, dev=False)
    with pytest.raises(ConfigurationError) as raised:
        build(settings)
    message = str(raised.value)
    assert "ORGSERVICE_JWKS_URL" in message
    assert "\n" not in message.strip()
    assert not database.exists()


# --- logs ---------------------------------------------------------------------------


def test_tokens_are_never_logged(strict_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    rejected = strict_server.issuer.token(new_subject(), exp=FromNow(-120))
    accepted = strict_server.issuer.token(new_subject())
    with caplog.at_level(logging.DEBUG):
        strict_server.assert_rejected(bearer(rejected))
        strict_server.current_user(bearer(accepted))

    logged = [record.getMessage() for record in caplog.records]
    # The access log did see both calls: an absent token means a redacted, not a muted, log.
    assert any("GetCurrentUser code=UNAUTHENTICATED" in line for line in logged)
    assert any("GetCurrentUser code=OK" in line for line in logged)
    for token in (rejected, accepted):
        signature = token.rsplit(".", 1)[1]
        for text in [*logged, caplog.text]:
            assert token not in text
            assert signature not in text


# --- platform scope -----------------------------------------------------------------


def list_for_user(caller: Client, user_id: str) -> rpc.ListOrganizationsResponse:
    reply: rpc.ListOrganizationsResponse = caller.ListOrganizations(
        rpc.ListOrganizationsRequest(user_id=user_id)
    )
    return reply


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param(auth.PLATFORM_SCOPE, id="string"),
        pytest.param([auth.PLATFORM_SCOPE], id="list"),
        pytest.param(f"openid {auth.PLATFORM_SCOPE} profile", id="among-others"),
    ],
)
def test_platform_scope_may_list_another_users_organizations(
    strict_server: Server, scope: object
) -> None:
    owner = strict_server.client().GetCurrentUser(rpc.GetCurrentUserRequest())
    assert owner.memberships  # the personal organization

    reply = list_for_user(strict_server.client(scope=scope), owner.user.id)
    assert [o.id for o in reply.organizations] == [m.organization_id for m in owner.memberships]


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param(OMIT, id="none"),
        pytest.param("openid profile", id="other-scopes"),
        pytest.param(f"{auth.PLATFORM_SCOPE}s", id="near-miss"),
        pytest.param(["openid", "orgs:read"], id="list-without-admin"),
        pytest.param(5, id="malformed"),
    ],
)
def test_other_scopes_may_not_list_another_users_organizations(
    strict_server: Server, scope: object
) -> None:
    owner_id = strict_server.client().user_id
    caller = strict_server.client(scope=scope)
    denied = failure(lambda: list_for_user(caller, owner_id))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
