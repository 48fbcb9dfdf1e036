"""The `orgservice` command: serve, token, migrate, purge, health."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from orgservice import devkeys
from orgservice.config import ConfigurationError
from orgservice.config import Settings
from orgservice.config import add_options
from orgservice.config import load_settings
from orgservice.telemetry.logging import configure_logging

_SERVICE = "orgs.v1.OrganizationService"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orgservice", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server")
    add_options(serve, "serve")

    token = commands.add_parser("token", help="print a token signed with the dev key")
    token.add_argument("--sub", required=True, help="subject (user identifier)")
    token.add_argument("--email", help="email claim (marked verified)")
    token.add_argument("--name", help="display name claim")
    token.add_argument("--username", help="preferred_username claim")
    token.add_argument("--scope", help="scope claim, e.g. orgs:admin for platform callers")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    add_options(token, "token")

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    add_options(migrate, "migrate")

    purge = commands.add_parser(
        "purge", help="delete what retention allows now (the server also does it periodically)"
    )
    add_options(purge, "purge")

    health = commands.add_parser(
        "health", help="check a server's health: exit 0 when SERVING, 1 otherwise"
    )
    add_options(health, "health")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args, os.environ if environ is None else environ)
    except ConfigurationError as error:
        print(f"orgservice: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    from orgservice.storage.startup import DatabaseNotReady

    try:
        if args.command == "token":
            print(_token(args, settings))
            return 0
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "purge":
            return _purge(settings)
        if args.command == "health":
            return _health(settings)
        return _serve(settings)
    except ConfigurationError as error:
        print(f"orgservice: {error}", file=sys.stderr)
        return 2
    except DatabaseNotReady as error:
        print(f"orgservice: {error}", file=sys.stderr)
        return 1


def _token(args: argparse.Namespace, settings: Settings) -> str:
    key = devkeys.load_or_create(settings.dev_key_file)
    return devkeys.mint_token(
        key,
        subject=args.sub,
        ttl_seconds=args.ttl,
        issuer=settings.jwt_issuer or None,
        audience=settings.jwt_audience or None,
        email=args.email,
        email_verified=True if args.email else None,
        name=args.name,
        preferred_username=args.username,
        scope=args.scope,
    )


def _migrate(settings: Settings) -> int:
    from orgservice.storage.startup import prepare_database

    prepare_database(
        settings.database_url,
        pooler=settings.database_pooler,
        wait_seconds=settings.database_wait_seconds,
    )
    return 0


def _health(settings: Settings) -> int:
    """One line on stdout: the status, or why there is none (Docker HEALTHCHECK, exec
    probes)."""
    import grpc
    from grpc_health.v1 import health_pb2
    from grpc_health.v1 import health_pb2_grpc

    tls = settings.tls_ca_file or settings.tls_cert_file
    if tls:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(settings.tls_ca_file),
            private_key=_read(settings.tls_key_file),
            certificate_chain=_read(settings.tls_cert_file),
        )
        channel = grpc.secure_channel(settings.address, credentials)
    else:
        channel = grpc.insecure_channel(settings.address)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=settings.service), timeout=settings.timeout
            )
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}")
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _read(path: Path | None) -> bytes | None:
    try:
        return path.read_bytes() if path is not None else None
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error}") from error


def _purge(settings: Settings) -> int:
    from datetime import UTC
    from datetime import datetime

    from orgservice.domain.errors import DomainError
    from orgservice.storage.database import EngineOptions
    from orgservice.storage.database import create_database_engine
    from orgservice.storage.retention import purge
    from orgservice.storage.unit_of_work import SqlDatabase

    engine = create_database_engine(
        settings.database_url, EngineOptions(pool_size=1, pooler=settings.database_pooler)
    )
    try:
        report = purge(SqlDatabase(engine), datetime.now(UTC))
    except DomainError as error:
        print(f"orgservice: {error.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(report)
    return 0


def _serve(settings: Settings) -> int:
    from orgservice.server import serve

    # The banner comes once the server listens: it names the bound port (`--port 0`
    # picks one) and never advertises a server that failed to start.
    if settings.dev:
        return serve(settings, on_listening=lambda port: _print_dev_banner(settings, port))
    return serve(settings)


def _print_dev_banner(settings: Settings, port: int) -> None:
    """Commands to paste into another shell, which may lack .venv/bin on its PATH: the
    tools are named by absolute path, and so is the dev key (the shell's working
    directory may differ)."""
    key = devkeys.load_or_create(settings.dev_key_file)
    token = devkeys.mint_token(
        key,
        subject="dev-user",
        ttl_seconds=12 * 3600,
        issuer=settings.jwt_issuer or None,
        audience=settings.jwt_audience or None,
        email="dev@example.com",
        email_verified=True,
        name="Dev User",
        preferred_username="dev",
    )
    loopback_or_any = settings.host in {"127.0.0.1", "0.0.0.0", "::", "::1"}  # noqa: S104
    target = f"{'localhost' if loopback_or_any else settings.host}:{port}"
    grpcurl = shutil.which("grpcurl")
    grpcurl_hint = "" if grpcurl else " (not found on PATH: install it first)"
    call = f"{shlex.quote(grpcurl or 'grpcurl')} -plaintext"
    auth = '-H "authorization: Bearer $TOKEN"'
    create = shlex.quote('{"name": "Acme Inc"}')
    print(
        f"orgservice (dev mode) on {target}; try it with grpcurl{grpcurl_hint},\n"
        "with a 12-hour token for 'dev-user':\n\n"
        f"  export TOKEN={token}\n"
        f"  {call} {target} list\n"
        f"  {call} {auth} {target} {_SERVICE}/GetCurrentUser\n"
        f"  {call} {auth} -d {create} {target} {_SERVICE}/CreateOrganization\n\n"
        "Tokens for other users (options: --email E, --name N, --scope orgs:admin):\n\n"
        f"  {_token_command(settings)} --sub alice\n",
        flush=True,
    )


def _token_command(settings: Settings) -> str:
    """`orgservice token` with whatever it needs to sign like this server."""
    found = shutil.which("orgservice")
    command = [found, "token"] if found else [sys.executable, "-m", "orgservice", "token"]
    command += ["--dev-key-file", str(settings.dev_key_file.resolve())]
    if settings.jwt_issuer:
        command += ["--jwt-issuer", settings.jwt_issuer]
    if settings.jwt_audience:
        command += ["--jwt-audience", settings.jwt_audience]
    return shlex.join(command)
