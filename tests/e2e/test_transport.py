"""TLS, mTLS and the plaintext health port of a real `orgservice serve` process
(OPERATIONS.md "Transport", "Commands"), with certificates the tests issue themselves."""

from __future__ import annotations

import datetime
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc

from tests.e2e.conftest import SERVICE
from tests.e2e.conftest import HealthProbe
from tests.e2e.conftest import ServiceProcess
from tests.e2e.conftest import StartService
from tests.e2e.conftest import health_command
from tests.support.processes import free_port

CALL_TIMEOUT = 10.0
REFUSED_TIMEOUT = 5.0  # a refused handshake fails at once; this bounds the wait


# -- certificates -------------------------------------------------------------------------------


def key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage extension that allows the named uses and nothing else."""
    uses = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    assert set(allowed) <= set(uses), allowed
    return x509.KeyUsage(**{use: use in allowed for use in uses})


@dataclass(frozen=True)
class Identity:
    """A PEM certificate and its private key, written to files."""

    cert: Path
    key: Path

    def credentials(self) -> tuple[bytes, bytes]:
        return self.key.read_bytes(), self.cert.read_bytes()


class Authority:
    """A certificate authority that issues server and client certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        self._directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            self._builder(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                key_usage("digital_signature", "key_cert_sign", "crl_sign"), critical=True
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / f"{name}.pem"
        self.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, name: str, *, server: bool) -> Identity:
        """A certificate for 127.0.0.1 and localhost (server), or a client certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = self._builder(subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        identity = Identity(self._directory / f"{name}.pem", self._directory / f"{name}.key")
        identity.cert.write_bytes(
            builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        identity.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return identity


@dataclass(frozen=True)
class Pki:
    ca: Authority
    server: Identity
    client: Identity
    stranger: Identity  # a client certificate from another authority


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory, "test-ca")
    other = Authority(directory, "other-ca")
    return Pki(
        ca,
        ca.issue("server", server=True),
        ca.issue("client", server=False),
        other.issue("stranger", server=False),
    )


# -- servers and clients ----------------------------------------------------------------------


def start_tls_service(
    start_service: StartService, pki: Pki, *, mutual: bool
) -> tuple[ServiceProcess, int]:
    """A TLS (or mTLS) server and its plaintext health port, once it is SERVING there."""
    health_port = free_port()
    args = ["--tls-cert-file", str(pki.server.cert), "--tls-key-file", str(pki.server.key)]
    if mutual:
        args += ["--tls-client-ca-file", str(pki.ca.cert)]
    service = start_service(*args, "--health-port", str(health_port), wait=False)
    return service.wait_until_serving(port=health_port), health_port


def secure_channel(
    port: int, pki: Pki, client: Identity | None = None, host: str = "127.0.0.1"
) -> grpc.Channel:
    private_key, chain = client.credentials() if client else (None, None)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert.read_bytes(), private_key=private_key, certificate_chain=chain
    )
    # A channel of its own connection: each one performs its own handshake.
    options = [("grpc.use_local_subchannel_pool", 1)]
    return grpc.secure_channel(f"{host}:{port}", credentials, options=options)


def current_subject(channel: grpc.Channel, token: str) -> str:
    reply = rpc_grpc.OrganizationServiceStub(channel).GetCurrentUser(
        rpc.GetCurrentUserRequest(),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=CALL_TIMEOUT,
    )
    return str(reply.user.subject)


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    """The code a health check on `channel` fails with (it must fail)."""
    with pytest.raises(grpc.RpcError) as raised:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=REFUSED_TIMEOUT
        )
    return raised.value.code()  # type: ignore[no-any-return]


def assert_health_port_serves_health_only(port: int) -> None:
    probe = HealthProbe(port)
    try:
        assert probe.all_are("SERVING")
    finally:
        probe.close()
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        rpc_grpc.OrganizationServiceStub(channel).GetCurrentUser(
            rpc.GetCurrentUserRequest(), timeout=CALL_TIMEOUT
        )
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED


# -- tests ------------------------------------------------------------------------------------


def test_tls_serves_verified_clients_and_probes_on_the_plaintext_port(
    start_service: StartService, pki: Pki
) -> None:
    service, health_port = start_tls_service(start_service, pki, mutual=False)
    token = service.mint("tls-user")
    for host in ("127.0.0.1", "localhost"):  # the certificate names both
        with secure_channel(service.port, pki, host=host) as channel:
            assert current_subject(channel, token) == "tls-user"
    # No plaintext on the TLS port.
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        assert refused(channel) is grpc.StatusCode.UNAVAILABLE
    assert_health_port_serves_health_only(health_port)

    # Readiness over TLS; liveness as a kubelet exec probe would ask, on the health port.
    readiness = ("--service", SERVICE, "--tls-ca-file", str(pki.ca.cert))
    with ThreadPoolExecutor() as pool:
        over_tls = pool.submit(health_command, service, service.port, *readiness)
        plaintext = pool.submit(health_command, service, health_port)
        assert over_tls.result() == (0, ["SERVING"])
        assert plaintext.result() == (0, ["SERVING"])


def test_mtls_requires_a_client_certificate_from_the_configured_ca(
    start_service: StartService, pki: Pki
) -> None:
    service, health_port = start_tls_service(start_service, pki, mutual=True)
    token = service.mint("mtls-user")
    with secure_channel(service.port, pki, pki.client) as channel:
        assert current_subject(channel, token) == "mtls-user"
    for client in (None, pki.stranger):
        with secure_channel(service.port, pki, client) as channel:
            assert refused(channel) is grpc.StatusCode.UNAVAILABLE, client
    # Kubelet probes cannot present a client certificate: the health port needs none.
    assert_health_port_serves_health_only(health_port)

    tls = ("--tls-ca-file", str(pki.ca.cert))
    client = ("--tls-cert-file", str(pki.client.cert), "--tls-key-file", str(pki.client.key))
    with ThreadPoolExecutor() as pool:
        with_certificate = pool.submit(health_command, service, service.port, *tls, *client)
        without = pool.submit(health_command, service, service.port, *tls, "--timeout", "2")
        assert with_certificate.result() == (0, ["SERVING"])
        code, lines = without.result()
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith("UNAVAILABLE"), lines
