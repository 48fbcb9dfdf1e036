"""Settings: read once from command-line flags and ORGSERVICE_* variables (flags win)."""

from __future__ import annotations

import argparse
import dataclasses
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    # Signs page tokens. Replicas behind one address must share it; a random one per
    # start only keeps tokens valid within one `serve` (its workers included).
    page_token_secret: str = field(default="", repr=False)
    threads: int = 16
    health_interval: float = 2.0
    log_level: str = "INFO"

    def with_page_token_secret(self) -> Settings:
        if self.page_token_secret:
            return self
        return dataclasses.replace(self, page_token_secret=secrets.token_hex(32))


@dataclass(frozen=True)
class Option:
    name: str  # a Settings field
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "ORGSERVICE_" + self.name.upper()


def _path(text: str) -> Path:
    return Path(text).expanduser()


SERVE_OPTIONS = (
    Option("host", str, "address to listen on"),
    Option("port", int, "port to listen on (0 picks a free one)"),
    Option("database_url", str, "SQLAlchemy URL: sqlite:///FILE or postgresql+psycopg://…"),
    Option("workers", int, "server processes sharing the port"),
    Option("dev", _bool, "development mode: local signing key, `orgservice token` works"),
    Option("dev_key_file", _path, "development signing key (created on first use)"),
    Option("jwks_url", str, "JWKS URL with the token signing keys"),
    Option("jwt_public_key_file", _path, "PEM public key that signs tokens"),
    Option("jwt_algorithms", _algorithms, "comma-separated allowed token algorithms"),
    Option("jwt_issuer", str, "required `iss` claim"),
    Option("jwt_audience", str, "required `aud` claim"),
    Option("shutdown_grace", float, "seconds in-flight calls get on SIGTERM/SIGINT"),
    Option("personal_organizations", _bool, "give every new user a personal organization"),
    Option("page_token_secret", str, "secret that signs page tokens (share across replicas)"),
    Option("threads", int, "worker threads per process"),
    Option("health_interval", float, "seconds between database health probes"),
    Option("log_level", str, "DEBUG, INFO, WARNING or ERROR"),
)
OPTIONS_BY_NAME = {option.name: option for option in SERVE_OPTIONS}


def add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    for name in names:
        option = OPTIONS_BY_NAME[name]
        if option.parse is _bool:
            parser.add_argument(
                option.flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{option.help} (env {option.env})",
            )
        else:
            parser.add_argument(option.flag, default=None, help=f"{option.help} (env {option.env})")


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Flags first, then ORGSERVICE_* variables, then the defaults above."""
    values: dict[str, Any] = {}
    for option in SERVE_OPTIONS:
        flag_value = getattr(args, option.name, None)
        raw = flag_value if flag_value is not None else environ.get(option.env)
        if raw is None:
            continue
        try:
            values[option.name] = raw if isinstance(raw, bool) else option.parse(raw)
        except ValueError as error:
            raise ConfigurationError(f"{option.flag} / {option.env}: {error}") from error
    settings = Settings(**values)
    if settings.workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    if settings.workers > 1 and settings.port == 0:
        raise ConfigurationError("--workers above 1 needs a fixed --port to share")
    return settings
