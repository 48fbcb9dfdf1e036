"""Composition root: wires storage, use cases, servicer, interceptors, health,
reflection, worker processes and graceful shutdown."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

import grpc
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from orgs.v1 import organization_service_pb2, organization_service_pb2_grpc

from orgservice import devkeys
from orgservice.api.auth import TokenVerifier, jwks_keys, static_key
from orgservice.api.interceptors import AccessLogInterceptor, AuthInterceptor
from orgservice.api.page_tokens import PageTokens
from orgservice.api.servicer import OrganizationServicer
from orgservice.config import ConfigurationError, Settings
from orgservice.logs import configure_logging
from orgservice.service.registry import Services
from orgservice.storage import migrate
from orgservice.storage.database import create_database_engine
from orgservice.storage.unit_of_work import Database

log = logging.getLogger(__name__)

SERVICE_NAME: str = organization_service_pb2.DESCRIPTOR.services_by_name[
    "OrganizationService"
].full_name
HEALTH_SERVICES = ("", SERVICE_NAME)


def build_verifier(settings: Settings) -> TokenVerifier:
    """Production key sources win; the dev key is used only with --dev and no other."""
    issuer = settings.jwt_issuer or None
    audience = settings.jwt_audience or None
    if settings.jwks_url:
        keys = jwks_keys(settings.jwks_url)
    elif settings.jwt_public_key_file is not None:
        try:
            keys = static_key(load_pem_public_key(settings.jwt_public_key_file.read_bytes()))
        except (OSError, ValueError) as error:
            raise ConfigurationError(
                f"cannot read the public key {settings.jwt_public_key_file}: {error}"
            ) from error
    elif settings.dev:
        key = devkeys.load_or_create(settings.dev_key_file)
        return TokenVerifier(
            static_key(key.public_key()),
            algorithms=[devkeys.DEV_ALGORITHM],
            issuer=issuer,
            audience=audience,
        )
    else:
        raise ConfigurationError(
            "no token key configured: set ORGSERVICE_JWKS_URL or "
            "ORGSERVICE_JWT_PUBLIC_KEY_FILE, or run with --dev for local development"
        )
    return TokenVerifier(keys, algorithms=settings.jwt_algorithms, issuer=issuer, audience=audience)


class DatabaseHealth:
    """Reports NOT_SERVING while the database cannot be reached, SERVING once it can."""

    def __init__(
        self, database: Database, servicer: health.HealthServicer, interval: float
    ) -> None:
        self._database = database
        self._servicer = servicer
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-health", daemon=True)
        self._serving: bool | None = None

    def start(self) -> None:
        self.check()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def check(self) -> None:
        try:
            self._database.ping()
            serving = True
        except Exception:  # any failure to reach the database means "not serving"
            serving = False
        if serving != self._serving:
            (log.info if serving else log.warning)(
                "database %s", "reachable: SERVING" if serving else "unreachable: NOT_SERVING"
            )
            self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in HEALTH_SERVICES:
            self._servicer.set(service, status)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.check()


class OrgServer:
    """A configured, bound server: `start()`, then `stop()` for a graceful shutdown."""

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        health_servicer: health.HealthServicer,
        database_health: DatabaseHealth,
        database: Database,
    ) -> None:
        self.server = server
        self.port = port
        self._health = health_servicer
        self._database_health = database_health
        self.database = database

    def start(self) -> None:
        self._database_health.start()
        self.server.start()

    def stop(self, grace: float) -> None:
        """Turns health NOT_SERVING, refuses new calls, gives calls in flight `grace`."""
        self._health.enter_graceful_shutdown()
        self._database_health.stop()
        self.server.stop(grace).wait()
        self.database.engine.dispose()


def create_server(settings: Settings, *, reuse_port: bool = False) -> OrgServer:
    verifier = build_verifier(settings)
    engine = create_database_engine(settings.database_url, pool_size=settings.threads)
    migrate.upgrade(engine)
    database = Database(engine)
    servicer = OrganizationServicer(
        Services.build(database, personal_organizations=settings.personal_organizations),
        PageTokens(settings.with_page_token_secret().page_token_secret.encode()),
    )
    server = grpc.server(
        ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="rpc"),
        interceptors=[AccessLogInterceptor(), AuthInterceptor(verifier)],
        options=[("grpc.so_reuseport", int(reuse_port))],
    )
    organization_service_pb2_grpc.add_OrganizationServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    except RuntimeError as error:
        raise ConfigurationError(
            f"cannot listen on {settings.host}:{settings.port} (is the port in use?)"
        ) from error
    database_health = DatabaseHealth(database, health_servicer, settings.health_interval)
    return OrgServer(server, port, health_servicer, database_health, database)


def serve(settings: Settings, on_listening: Callable[[int], None] | None = None) -> int:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully and returns 0.

    `on_listening` gets the bound port once the server is listening (never when it
    cannot start), e.g. to print the port that `--port 0` picked."""
    # One secret for every worker, so page tokens work whichever process answers.
    settings = settings.with_page_token_secret()
    if settings.workers > 1:
        return _serve_workers(settings, on_listening)
    return _serve_one(settings, reuse_port=False, on_listening=on_listening)


def _serve_one(
    settings: Settings,
    *,
    reuse_port: bool,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    running = create_server(settings, reuse_port=reuse_port)
    stop = threading.Event()
    _on_termination(stop.set)
    running.start()
    log.info("orgservice listening on %s:%d", settings.host, running.port)
    if on_listening is not None:
        on_listening(running.port)
    while not stop.wait(1):
        pass
    log.info("shutting down (grace %.1fs)", settings.shutdown_grace)
    running.stop(settings.shutdown_grace)
    return 0


def _serve_workers(settings: Settings, on_listening: Callable[[int], None] | None) -> int:
    # Migrate once up front so the workers start against the final schema.
    engine = create_database_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker_main, args=(settings,), name=f"orgservice-worker-{i}")
        for i in range(settings.workers)
    ]

    def stop_workers() -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()

    _on_termination(stop_workers)
    for worker in workers:
        worker.start()
    if on_listening is not None:
        on_listening(settings.port)  # fixed for workers; they bind it as they come up
    for worker in workers:
        worker.join()
    failed = [w.name for w in workers if w.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        log.error("workers failed: %s", ", ".join(failed))
        return 1
    return 0


def _worker_main(settings: Settings) -> None:
    configure_logging(settings.log_level)
    # The parent forwards SIGTERM (Process.terminate); SIGINT from a terminal reaches
    # every process in the group: both lead to the graceful path.
    raise SystemExit(_serve_one(settings, reuse_port=True))


def _on_termination(action: Callable[[], None]) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        action()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
