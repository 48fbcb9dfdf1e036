"""Prometheus metrics: the go-grpc-prometheus names plus the service's own.

With `--workers N` every worker writes its samples to files in a shared directory
(prometheus-client's multiprocess mode) and the parent process serves `/metrics` for all
of them; a single process serves its own. The directory must be chosen before any
metric exists, so metrics are created per process, never at import time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import multiprocess
from prometheus_client import start_http_server
from sqlalchemy import Engine
from sqlalchemy import event

from orgservice.config import ConfigurationError

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
# Four buckets below prometheus-client's defaults, which begin at 5 ms: most of this
# service's calls end within 1.
_HANDLING_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, *Histogram.DEFAULT_BUCKETS)


class Metrics:
    """The metrics of one process."""

    def __init__(self) -> None:
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, whatever their status.",
            (*_GRPC_LABELS, "grpc_code"),
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time the server took to complete RPCs.",
            _GRPC_LABELS,
            buckets=_HANDLING_BUCKETS,
        )
        # With several workers: up only if every worker reaches the database.
        self.database_up = Gauge(
            "orgservice_database_up",
            "1 while the database answers the readiness probe.",
            multiprocess_mode="livemin",
        )
        self.pool_in_use = Gauge(
            "orgservice_db_pool_in_use",
            "Database connections checked out of the pool.",
            multiprocess_mode="livesum",
        )
        self.pool_size = Gauge(
            "orgservice_db_pool_size",
            "Connections the database pool may hold.",
            multiprocess_mode="livesum",
        )
        self.cache_hits = Counter(
            "orgservice_authz_cache_hits_total", "Reads answered from the read cache."
        )
        self.cache_misses = Counter(
            "orgservice_authz_cache_misses_total", "Reads the read cache could not answer."
        )
        self._series: dict[tuple[str, str], _MethodSeries] = {}

    def observe_call(
        self, method: str, grpc_type: str, code: grpc.StatusCode | None, seconds: float
    ) -> None:
        """`code` None: the call started; otherwise it ended with `code`."""
        series = self._series.get((method, grpc_type))
        if series is None:
            series = self._series[method, grpc_type] = _MethodSeries(self, method, grpc_type)
        if code is None:
            series.started.inc()
            return
        series.handled(code).inc()
        series.handling_seconds.observe(seconds)

    def observe_cache(self, hit: bool) -> None:
        (self.cache_hits if hit else self.cache_misses).inc()

    def watch_pool(self, engine: Engine, size: int) -> None:
        self.pool_size.set(size)
        event.listen(engine, "checkout", lambda *_: self.pool_in_use.inc())
        event.listen(engine, "checkin", lambda *_: self.pool_in_use.dec())

    def database_reachable(self, up: bool) -> None:
        self.database_up.set(1 if up else 0)


class _MethodSeries:
    """One method's series, looked up once: `labels()` costs a lock and a dict lookup
    per call, three times a call."""

    def __init__(self, metrics: Metrics, method: str, grpc_type: str) -> None:
        service, _, name = method.lstrip("/").rpartition("/")
        self._labels = (grpc_type, service, name)
        self.started = metrics.started.labels(*self._labels)
        self.handling_seconds = metrics.handling_seconds.labels(*self._labels)
        self._handled_family = metrics.handled
        self._handled: dict[grpc.StatusCode, Counter] = {}

    def handled(self, code: grpc.StatusCode) -> Counter:
        counter = self._handled.get(code)
        if counter is None:
            counter = self._handled[code] = self._handled_family.labels(*self._labels, code.name)
        return counter


def serve_metrics(host: str, port: int) -> None:
    """Serves this process's metrics over HTTP (single-process mode)."""
    _start_http_server(host, port, REGISTRY)


def _start_http_server(host: str, port: int, registry: CollectorRegistry) -> None:
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port} ({error.strerror or error})"
        ) from error


class SharedMetrics:
    """The parent side of multiprocess mode: a directory for the workers' samples, and
    `/metrics` for all of them. Create (and serve) before starting the workers."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="orgservice-metrics-")
        os.environ[MULTIPROCESS_DIRECTORY] = self.directory

    def serve(self, host: str, port: int) -> None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        _start_http_server(host, port, registry)

    def worker_exited(self, pid: int) -> None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def no_metrics(*_args: Any) -> None:
    """Stands in for a metrics hook when metrics are off."""


ObserveCall = Callable[[str, str, "grpc.StatusCode | None", float], None]
