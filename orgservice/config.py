"""Settings: read once from command-line flags and ORGSERVICE_* variables (flags win).

`OPTIONS` is the one table of settings: each option names the commands that take it,
and the command line is built from it.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any


class ConfigurationError(Exception):
    """The settings cannot work; the message says how to fix them in one line."""


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _algorithms(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _path(text: str) -> Path:
    return Path(text).expanduser()


def parse_resolver_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets: `[::1]:53`), HOST an IP address."""
    host, colon, port_text = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT with HOST an IP address") from None
    if not colon or not 0 < port < 65536:
        raise ValueError(f"{text!r} needs a port between 1 and 65535")
    return str(address), port


def _resolver_address(text: str) -> str:
    if not text.strip():
        return ""  # the system's resolver
    host, port = parse_resolver_address(text)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(repr(a) for a in allowed)}")
        return text

    return parse


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 50051
    database_url: str = "sqlite:///orgservice.db"
    workers: int = 1
    dev: bool = False
    dev_key_file: Path = Path(".orgservice/dev-key")
    jwks_url: str = ""
    jwt_public_key_file: Path | None = None
    jwt_algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    jwt_issuer: str = ""
    jwt_audience: str = ""
    shutdown_grace: float = 10.0
    personal_organizations: bool = True
    # Signs page tokens. Replicas behind one address must share it; the random default
    # keeps tokens valid within one `serve` (its workers receive the same settings).
    page_token_secret: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    # Database work at once (threads on SQLite) and connections, per process; the default
    # is part of the operations contract. Fewer run creates a little faster
    # (docs/performance.md: 8 gave 5% more than 16).
    threads: int = 16
    health_interval: float = 0.5
    log_level: str = "INFO"
    max_call_seconds: float = 10.0
    database_wait_seconds: float = 30.0
    max_concurrent_rpcs: int = 100
    max_streams: int = 1000
    authz_cache_seconds: float = 5.0
    database_pooler: str = ""
    database_listen_url: str = ""
    keepalive_seconds: float = 30.0
    purge_interval_seconds: float = 3600.0
    log_format: str = "text"
    metrics_port: int = 0
    health_port: int = 0
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    dns_resolver: str = ""  # HOST:PORT; empty: the system's resolver
    # `orgservice health`
    address: str = "127.0.0.1:50051"
    service: str = ""
    timeout: float = 3.0
    tls_ca_file: Path | None = None

    @property
    def listen_url(self) -> str:
        """Where notifications are received: a direct connection, never a pooler's (the
        server listens only when it is a PostgreSQL URL)."""
        if self.database_listen_url:
            return self.database_listen_url
        return "" if self.database_pooler else self.database_url


@dataclass(frozen=True)
class Option:
    name: str  # a Settings field
    parse: Callable[[str], Any]
    help: str
    commands: tuple[str, ...] = ("serve",)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "ORGSERVICE_" + self.name.upper()


_SERVE_AND_DATABASE = ("serve", "migrate", "purge")
OPTIONS = (
    Option("host", str, "address to listen on"),
    Option("port", int, "port to listen on (0 picks a free one)"),
    Option(
        "database_url",
        str,
        "SQLAlchemy URL: sqlite:///FILE or postgresql+psycopg://…",
        _SERVE_AND_DATABASE,
    ),
    Option("workers", int, "server processes sharing the port"),
    Option("dev", _bool, "development mode: local signing key, `orgservice token` works"),
    Option(
        "dev_key_file", _path, "development signing key (created on first use)", ("serve", "token")
    ),
    Option("jwks_url", str, "JWKS URL with the token signing keys"),
    Option("jwt_public_key_file", _path, "PEM public key that signs tokens"),
    Option("jwt_algorithms", _algorithms, "comma-separated allowed token algorithms"),
    Option("jwt_issuer", str, "required `iss` claim", ("serve", "token")),
    Option("jwt_audience", str, "required `aud` claim", ("serve", "token")),
    Option("shutdown_grace", float, "seconds in-flight calls get on SIGTERM/SIGINT"),
    Option("personal_organizations", _bool, "give every new user a personal organization"),
    Option("page_token_secret", str, "secret that signs page tokens (share across replicas)"),
    Option(
        "threads", int, "database work at once, and connections, per process (threads on SQLite)"
    ),
    Option("health_interval", float, "seconds between database health probes"),
    Option("log_level", str, "DEBUG, INFO, WARNING or ERROR", _SERVE_AND_DATABASE),
    Option("max_call_seconds", float, "longest a unary call may run (caps client deadlines)"),
    Option(
        "database_wait_seconds",
        float,
        "how long start-up waits for the database",
        _SERVE_AND_DATABASE,
    ),
    Option("max_concurrent_rpcs", int, "unary calls in progress per process; more are refused"),
    Option("max_streams", int, "open streams per process; more are refused"),
    Option("authz_cache_seconds", float, "how stale cached reads may be (0 disables the cache)"),
    Option(
        "database_pooler",
        _choice("", "pgbouncer"),
        "'pgbouncer' when the database URL is a PgBouncer in transaction pooling mode",
        _SERVE_AND_DATABASE,
    ),
    Option("database_listen_url", str, "direct PostgreSQL URL for notifications"),
    Option("keepalive_seconds", float, "interval of keepalive pings on idle connections"),
    Option("purge_interval_seconds", float, "seconds between runs of the purge job"),
    Option(
        "log_format",
        _choice("text", "json"),
        "text or json (one object per line)",
        _SERVE_AND_DATABASE,
    ),
    Option("metrics_port", int, "port of the Prometheus /metrics endpoint (0: off)"),
    Option("health_port", int, "plaintext port serving only grpc.health.v1 (0: off)"),
    Option(
        "tls_cert_file",
        _path,
        "serve: the server's PEM certificate chain; health: a client certificate",
        ("serve", "health"),
    ),
    Option("tls_key_file", _path, "the PEM private key of --tls-cert-file", ("serve", "health")),
    Option("tls_client_ca_file", _path, "PEM CA that must sign client certificates (mTLS)"),
    Option(
        "dns_resolver",
        _resolver_address,
        "HOST:PORT of the DNS resolver VerifyDomain asks (default: the system's)",
    ),
    Option("address", str, "HOST:PORT of the server to check", ("health",)),
    Option(
        "service",
        str,
        "service to check: '' (liveness) or orgs.v1.OrganizationService",
        ("health",),
    ),
    Option("timeout", float, "seconds to wait for the answer", ("health",)),
    Option("tls_ca_file", _path, "PEM CA to verify the server with (TLS)", ("health",)),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds the flags of every option `command` takes."""
    for option in OPTIONS:
        if command not in option.commands:
            continue
        help_text = f"{option.help} (env {option.env})"
        if option.parse is _bool:
            parser.add_argument(
                option.flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(option.flag, default=None, help=help_text)


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Flags first, then ORGSERVICE_* variables, then the defaults above."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        flag_value = getattr(args, option.name, None)
        raw = flag_value if flag_value is not None else environ.get(option.env)
        if raw is None:
            continue
        try:
            values[option.name] = raw if isinstance(raw, bool) else option.parse(raw)
        except ValueError as error:
            raise ConfigurationError(f"{option.flag} / {option.env}: {error}") from error
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    positive = (
        "workers",
        "threads",
        "max_call_seconds",
        "max_concurrent_rpcs",
        "max_streams",
        "health_interval",
        "keepalive_seconds",
        "purge_interval_seconds",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"{OPTIONS_BY_NAME[name].flag} must be positive")
    if settings.workers > 1 and settings.port == 0:
        raise ConfigurationError("--workers above 1 needs a fixed --port to share")
    if not settings.page_token_secret:
        raise ConfigurationError("--page-token-secret must not be empty")
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigurationError("--tls-cert-file and --tls-key-file go together")
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        raise ConfigurationError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
