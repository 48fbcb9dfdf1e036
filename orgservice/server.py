"""Composition root: wires storage, use cases, servicer, interceptors, health,
reflection, worker processes and graceful shutdown.

The server is grpc.aio: health checks, reflection, admission and cache hits are served
on the event loop and never wait for the database; use cases run through the storage's
runner, at most `--threads` at once (on PostgreSQL in greenlets on the loop, on SQLite
on threads: `storage.runners`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import NoReturn
from typing import TypeVar
from typing import cast

import grpc
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from grpc import aio
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2_grpc
from orgs.v1 import organization_service_pb2

from orgservice import devkeys
from orgservice.api.auth import TokenVerifier
from orgservice.api.auth import jwks_keys
from orgservice.api.auth import static_key
from orgservice.api.dispatch import Dispatcher
from orgservice.api.feed_cursors import FeedCursors
from orgservice.api.feed_hub import FeedHub
from orgservice.api.interceptors import Admission
from orgservice.api.interceptors import CallGuard
from orgservice.api.interceptors import Outcome
from orgservice.api.interceptors import PublicServices
from orgservice.api.interceptors import is_public
from orgservice.api.page_tokens import PageTokens
from orgservice.api.rpc_base import Feed
from orgservice.api.servicer import OrganizationServicer
from orgservice.config import ConfigurationError
from orgservice.config import Settings
from orgservice.dns_txt import DnsTxtResolver
from orgservice.domain.errors import DomainError
from orgservice.health import DatabaseHealth
from orgservice.service.registry import Services
from orgservice.storage.cache import ReadCache
from orgservice.storage.database import EngineOptions
from orgservice.storage.database import create_database_engine
from orgservice.storage.database import is_postgresql
from orgservice.storage.notifications import ChangeListener
from orgservice.storage.probe import database_probe
from orgservice.storage.retention import purge
from orgservice.storage.runners import runner_for
from orgservice.storage.startup import prepare_database
from orgservice.storage.unit_of_work import SqlDatabase
from orgservice.storage.wal_checkpoints import WalCheckpointer
from orgservice.telemetry.logging import configure_logging
from orgservice.telemetry.metrics import Metrics
from orgservice.telemetry.metrics import SharedMetrics
from orgservice.telemetry.metrics import no_metrics
from orgservice.telemetry.metrics import serve_metrics
from orgservice.telemetry.tracing import Tracing
from orgservice.telemetry.tracing import current_trace_id

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE = organization_service_pb2.DESCRIPTOR.services_by_name["OrganizationService"]
SERVICE_NAME: str = SERVICE.full_name
HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
LIVENESS = ""
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_METADATA_BYTES = 64 * 1024
# After the grace period, whatever is left gets this long before the process exits.
_EXIT_MARGIN_SECONDS = 1.5
# How often the change feed polls for changes: new events reach watchers within this
# without notifications; with them, polling only covers notifications lost meanwhile.
_FEED_POLL_SECONDS = 0.5
_FEED_POLL_WITH_NOTIFICATIONS_SECONDS = 5.0


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


def _transport_options(settings: Settings, *, reuse_port: bool) -> list[tuple[str, Any]]:
    keepalive_ms = int(settings.keepalive_seconds * 1000)
    return [
        ("grpc.so_reuseport", int(reuse_port)),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Clients may ping as often as every 10 s without being told to go away.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
    ]


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; mTLS when a client CA is too."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    try:
        chain = settings.tls_cert_file.read_bytes()
        key = settings.tls_key_file.read_bytes()
        client_ca = (
            settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
        )
    except OSError as error:
        raise ConfigurationError(f"cannot read a TLS file: {error}") from error
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _bind(
    server: aio.Server, host: str, port: int, credentials: grpc.ServerCredentials | None
) -> int:
    address = f"{host}:{port}"
    try:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)
    except RuntimeError as error:
        raise ConfigurationError(f"cannot listen on {address} (is the port in use?)") from error


class OrgServer:
    """A configured server. `await start()`, then `await stop(grace)`; or, from
    synchronous code (tests, embedding), `run_in_background()` and `stop_background()`.

    `metrics`: this process's metrics, or None when nobody scrapes them."""

    def __init__(
        self, settings: Settings, *, reuse_port: bool = False, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        verifier = build_verifier(settings)
        self._credentials = _server_credentials(settings)
        self.tracing = Tracing()
        engine = create_database_engine(
            settings.database_url,
            EngineOptions(
                pool_size=settings.threads,
                pooler=settings.database_pooler,
                background_checkpoints=True,
                on_event_loop=True,
            ),
        )
        self._runner = runner_for(engine, settings.threads)
        self._checkpointer = WalCheckpointer.for_engine(engine)
        self.tracing.instrument(engine)
        self.metrics = metrics
        self.cache = ReadCache(
            settings.authz_cache_seconds, on_lookup=metrics.observe_cache if metrics else None
        )
        if metrics is not None:
            metrics.watch_pool(engine, settings.threads)
        self.database = SqlDatabase(engine, self.cache)
        services = Services.build(
            self.database,
            resolver=DnsTxtResolver(settings.dns_resolver),
            personal_organizations=settings.personal_organizations,
        )
        self._services = services
        outcome = Outcome(
            metrics.observe_call if metrics else no_metrics,
            current_trace_id if self.tracing.enabled else str,
        )
        self.admission = Admission(settings.max_concurrent_rpcs, settings.max_streams)
        self.dispatcher = Dispatcher(
            services,
            CallGuard(outcome, self.admission, verifier),
            runner=self._runner,
            threads=settings.threads,
            max_call_seconds=settings.max_call_seconds,
        )
        # Notifications need a direct PostgreSQL connection (SQLite has none).
        self._listen_url = settings.listen_url if is_postgresql(settings.listen_url) else ""
        self.feed_hub = FeedHub(
            self._feed_heads,
            poll_seconds=(
                _FEED_POLL_WITH_NOTIFICATIONS_SECONDS if self._listen_url else _FEED_POLL_SECONDS
            ),
        )
        self.database.on_commit = self.feed_hub.changed
        self._interceptors = self.tracing.server_interceptors(untraced=is_public)
        self._outcome = outcome
        secret = settings.page_token_secret.encode()
        self._servicer = OrganizationServicer(
            services, PageTokens(secret), Feed(FeedCursors(secret), self.feed_hub)
        )
        self._reuse_port = reuse_port
        self.port = 0
        self.health_port = 0
        self._servers: list[aio.Server] = []
        self.health = HealthServicer()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> int:
        """Binds and starts serving; returns the port."""
        settings = self.settings
        options = _transport_options(settings, reuse_port=self._reuse_port)
        server = aio.server(interceptors=self._interceptors, options=options)
        server.add_generic_rpc_handlers((self.dispatcher.handlers(SERVICE, self._servicer),))
        # grpc's generated functions only register handlers (see PublicServices).
        public = cast(grpc.Server, PublicServices(server, self._outcome))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, public)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(
                (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME)
            ),
            public,
        )
        self.port = _bind(server, settings.host, settings.port, self._credentials)
        self._servers.append(server)
        if settings.health_port:
            # Plaintext and health only: kubelet probes cannot present client certificates.
            probes = aio.server(options=options)
            health_pb2_grpc.add_HealthServicer_to_server(self.health, probes)
            self.health_port = _bind(probes, settings.host, settings.health_port, None)
            self._servers.append(probes)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        monitor = DatabaseHealth(
            database_probe(self.database.engine),
            self.health,
            SERVICE_NAME,
            interval=settings.health_interval,
            on_change=self.metrics.database_reachable if self.metrics else None,
        )
        await monitor.check()
        self._tasks.append(asyncio.create_task(monitor.run(), name="db-health"))
        self._tasks.append(asyncio.create_task(self._purge_periodically(), name="purge"))
        self._tasks.append(asyncio.create_task(self.feed_hub.poll(), name="feed-poll"))
        if self._listen_url:
            listener = ChangeListener(
                self._listen_url, changed=self._changed, lost=self._changes_lost
            )
            self._tasks.append(asyncio.create_task(listener.run(), name="db-listen"))
        for each in self._servers:
            await each.start()
        if self._checkpointer is not None:
            self._checkpointer.start()
        return self.port

    def _changed(self, organization_id: str) -> None:
        """Another process committed a change to the organization."""
        self.cache.invalidate(organization_id)
        self.feed_hub.changed(organization_id)

    def _changes_lost(self) -> None:
        self.cache.invalidate_all()
        self.feed_hub.everything_changed()

    async def _feed_heads(self, organization_ids: list[str]) -> dict[str, int]:
        return await self.dispatcher.streams.run(
            lambda budget: self._services.feed.heads(budget, organization_ids)
        )

    async def _purge_periodically(self) -> None:
        """The retention job; with several replicas (or workers) one purges at a time."""
        while True:
            await asyncio.sleep(self.settings.purge_interval_seconds)
            try:
                report = await self._runner.run(
                    functools.partial(purge, self.database, datetime.now(UTC))
                )
            except DomainError as error:  # the database is down: try again next time
                log.warning("purge skipped: %s", error.message)
                continue
            log.info("purge: %s", report)

    async def stop(self, grace: float) -> None:
        """Health NOT_SERVING and new calls refused at once; calls in flight (and queued)
        get `grace` seconds; then the rest is cancelled and the database let go."""
        deadline = time.monotonic() + grace
        self.admission.draining = True
        await self.health.enter_graceful_shutdown()
        # Streams end at once (UNAVAILABLE, to resume elsewhere); unary calls finish.
        self.dispatcher.streams.stop()
        while (
            self.admission.in_flight() or self.admission.in_flight(streaming=True)
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        remaining = max(0.0, deadline - time.monotonic())
        await asyncio.gather(*(server.stop(grace=remaining) for server in self._servers))
        # Nothing may hang past the grace period: cut connections still waiting on the
        # database (a hung server answers nothing, not even a cancel request).
        self.database.watchdog.cut_all()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        await self._runner.close(self.database.engine)
        self.tracing.shutdown()

    def run_in_background(self) -> None:
        """Starts the server on an event loop of its own thread (tests, embedding)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=main, name="orgservice-loop", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    def run_database_work(self, work: Callable[[], T]) -> T:
        """Runs `work` (synchronous code using `self.database`) where the server runs
        its use cases, from another thread, and returns its result: for a server started
        with `run_in_background` (tests, embedding)."""
        assert self._loop is not None, "the server runs in the background"
        return asyncio.run_coroutine_threadsafe(self._runner.run(work), self._loop).result()

    def stop_background(self, grace: float) -> None:
        """Stops a server started with `run_in_background`; again, it does nothing."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        asyncio.run_coroutine_threadsafe(self.stop(grace), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def serve(settings: Settings, on_listening: Callable[[int], None] | None = None) -> int:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully and returns 0 (a second
    signal exits 1 at once).

    `on_listening` gets the bound port once the server is listening (never when it
    cannot start), e.g. to print the port that `--port 0` picked."""
    build_verifier(settings)  # a configuration error ends start-up before any database work
    prepare_database(
        settings.database_url,
        pooler=settings.database_pooler,
        wait_seconds=settings.database_wait_seconds,
    )
    if settings.workers > 1:
        return _serve_workers(settings, on_listening)
    metrics = None
    if settings.metrics_port:
        metrics = Metrics()
        serve_metrics(settings.host, settings.metrics_port)
    return _serve_one(settings, reuse_port=False, on_listening=on_listening, metrics=metrics)


def _serve_one(
    settings: Settings,
    *,
    reuse_port: bool,
    on_listening: Callable[[int], None] | None = None,
    metrics: Metrics | None = None,
) -> int:
    # Workers obey their parent only: SIGINT from a terminal reaches every process of
    # the group, and the parent forwards it as SIGTERM.
    signals = (signal.SIGTERM,) if reuse_port else (signal.SIGTERM, signal.SIGINT)
    server = OrgServer(settings, reuse_port=reuse_port, metrics=metrics)
    code = asyncio.run(_run(server, on_listening=on_listening, signals=signals))
    return _exit_now(code)


async def _run(
    server: OrgServer,
    *,
    on_listening: Callable[[int], None] | None,
    signals: tuple[signal.Signals, ...],
) -> int:
    settings = server.settings
    port = await server.start()
    # What start-up made and kept (modules, statements, handlers) lives as long as the
    # process: the collector need not scan it again at every full collection.
    gc.collect()
    gc.freeze()
    log.info("orgservice listening on %s:%d", settings.host, port)
    if on_listening is not None:
        on_listening(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second signal: exiting at once")
            _exit_now(1)
        stop.set()
        # A hung database may keep threads from finishing: the process ends in time
        # regardless (grace, then a margin).
        _exit_later(settings.shutdown_grace + _EXIT_MARGIN_SECONDS)

    for signum in signals:
        loop.add_signal_handler(signum, on_signal)
    await stop.wait()
    log.info("shutting down (grace %.1fs)", settings.shutdown_grace)
    await server.stop(settings.shutdown_grace)
    return 0


def _exit_later(seconds: float) -> None:
    timer = threading.Timer(seconds, _exit_now, args=(0,))
    timer.daemon = True
    timer.start()


def _exit_now(code: int) -> NoReturn:
    """Exits without waiting for threads that may be stuck on a hung database."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _serve_workers(settings: Settings, on_listening: Callable[[int], None] | None) -> int:
    # Before the workers start: they find the samples directory in their environment.
    shared = SharedMetrics() if settings.metrics_port else None
    try:
        return _run_workers(settings, on_listening, shared)
    finally:
        if shared is not None:
            shared.close()


def _run_workers(
    settings: Settings, on_listening: Callable[[int], None] | None, shared: SharedMetrics | None
) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker_main, args=(settings,), name=f"orgservice-worker-{i}")
        for i in range(settings.workers)
    ]
    signals_seen = 0

    def forward(signum: int, _frame: object) -> None:
        nonlocal signals_seen
        signals_seen += 1
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGKILL if signals_seen > 1 else signal.SIGTERM)
        if signals_seen > 1:
            _exit_now(1)

    if shared is not None:  # first: a port in use must not leave workers behind
        shared.serve(settings.host, settings.metrics_port)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    for worker in workers:
        worker.start()
    if on_listening is not None:
        on_listening(settings.port)  # fixed for workers; they bind it as they come up
    for worker in workers:
        worker.join()
        if shared is not None and worker.pid is not None:
            shared.worker_exited(worker.pid)
    failed = [w.name for w in workers if w.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        log.error("workers failed: %s", ", ".join(failed))
        return 1
    return 0


def _worker_main(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve_one(settings, reuse_port=True, metrics=Metrics() if settings.metrics_port else None)
