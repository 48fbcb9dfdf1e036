"""Throughput of the hot RPCs against a real `orgservice serve`, as a share of the ceiling.

For each backend (SQLite, PostgreSQL) and worker count, the benchmark starts the service
and, beside it, an empty-handler grpcio server with as many processes (the ceiling of the
Python gRPC stack here: benchmarks/ceiling.py). Rounds alternate between the two so both
see the same machine noise; each RPC is loaded with h2load (4 connections x 4 streams)
and the medians of the rounds are compared (`rounds`: the lowest and highest share
within one round, what the machine's noise does to it). Every response must be a
success: the service's own metrics (grpc_server_handled_total by code) are read before
and after each run, since a fast error is not a result. Then, in as many rounds, each
RPC runs at half its measured maximum rate, for p50/p99 latency over the rounds' pooled
samples; beside them the service's own view of those calls (its latency histogram, from
a call's arrival at the handlers until they return; it also counts the few streams
h2load resets when its time is up), and the ceiling at that same rate: what h2load, the
machine and the gRPC stack add before the service does anything. A
PostgreSQL database starts with 20,000 organizations, analyzed, as a database in use
would be; SQLite starts empty.

    make bench                                # both backends, --workers 1 and 2
    python -m benchmarks --backends postgresql --workers 2 --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from benchmarks.dataset import seed
from benchmarks.h2load import CLIENTS
from benchmarks.h2load import Buckets
from benchmarks.h2load import Latency
from benchmarks.h2load import grpc_body
from benchmarks.h2load import latency
from benchmarks.h2load import latency_in
from benchmarks.h2load import load
from benchmarks.h2load import require_h2load
from benchmarks.processes import Ceiling
from benchmarks.processes import Service
from benchmarks.processes import fresh_postgres_database
from benchmarks.processes import populate

# PostgreSQL starts with this many organizations, analyzed (see benchmarks.dataset).
SEEDED_ORGANIZATIONS = 20_000
RPCS = ("GetOrganization", "CheckPermission", "ListMembers", "CreateOrganization")
SERVICE_PATH = "orgs.v1.OrganizationService"


@dataclass
class Result:
    rpc: str
    ceiling: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)
    latency: Latency | None = None
    server_latency: Latency | None = None  # the service's histogram, over the same calls
    ceiling_latency: Latency | None = None  # the ceiling at the same rate

    @property
    def share(self) -> float:
        return statistics.median(self.service) / statistics.median(self.ceiling)

    @property
    def round_shares(self) -> tuple[float, float]:
        """The lowest and highest share within a round (service and ceiling measured
        back to back): how much the machine's noise moves the share."""
        shares = [
            service / ceiling for service, ceiling in zip(self.service, self.ceiling, strict=True)
        ]
        return min(shares), max(shares)


def bench(database_url: str, workers: int, rounds: int, seconds: float, work: Path) -> list[Result]:
    results = {rpc: Result(rpc) for rpc in RPCS}
    with ExitStack() as stack:
        service = stack.enter_context(Service.started(database_url, workers, work))
        ceiling = stack.enter_context(Ceiling.started(workers, work))
        fixture = populate(service, members=50)
        bodies = {rpc: grpc_body(fixture.requests[rpc], work, rpc) for rpc in RPCS}
        for rpc in RPCS:  # warm-up: caches, pools, lazily built statements
            load(service.url(f"{SERVICE_PATH}/{rpc}"), bodies[rpc], fixture.token, seconds=1)
        for _round in range(rounds):
            for rpc in RPCS:
                path = f"{SERVICE_PATH}/{rpc}"
                run, _ = load(ceiling.url(path), bodies[rpc], fixture.token, seconds=seconds)
                results[rpc].ceiling.append(run.rate)
                before = service.handled(rpc)
                run, _ = load(service.url(path), bodies[rpc], fixture.token, seconds=seconds)
                service.check_all_succeeded(rpc, before, run.requests)
                results[rpc].service.append(run.rate)
        # Latency at half the service's rate, alternating with the ceiling at that rate;
        # every round's samples are pooled: one run's p99 rests on a few calls (eleven, in
        # five seconds of creates at 220 a second).
        pooled: dict[str, tuple[list[float], list[float]]] = {rpc: ([], []) for rpc in RPCS}
        in_server: dict[str, Buckets] = {rpc: {} for rpc in RPCS}
        for _round in range(rounds):
            for rpc in RPCS:
                path = f"{SERVICE_PATH}/{rpc}"
                per_client = statistics.median(results[rpc].service) / 2 / CLIENTS
                before = service.handled(rpc)
                buckets_before = service.handling_buckets(rpc)
                at_half = {"seconds": seconds, "rate_per_client": per_client}
                run, taken = load(service.url(path), bodies[rpc], fixture.token, **at_half)
                service.check_all_succeeded(rpc, before, run.requests)
                _add_calls(in_server[rpc], buckets_before, service.handling_buckets(rpc))
                pooled[rpc][0].extend(taken)
                _, taken = load(ceiling.url(path), bodies[rpc], fixture.token, **at_half)
                pooled[rpc][1].extend(taken)
        for rpc, (at_service, at_ceiling) in pooled.items():
            results[rpc].latency = latency(at_service)
            results[rpc].server_latency = latency_in(in_server[rpc])
            results[rpc].ceiling_latency = latency(at_ceiling)
    return list(results.values())


def _add_calls(pooled: Buckets, before: Buckets, after: Buckets) -> None:
    """Adds to `pooled` what a histogram counted between two readings."""
    for bound, count in after.items():
        pooled[bound] = pooled.get(bound, 0.0) + count - before.get(bound, 0.0)


def report(label: str, workers: int, results: list[Result]) -> None:
    print(
        f"\n{label}, --workers {workers} (medians of the rounds; latency at half the "
        "service's maximum rate, as the service itself saw those calls, and the ceiling's "
        "at that same rate)"
    )
    print(
        f"  {'RPC':<20}{'ceiling req/s':>14}{'service req/s':>15}{'share':>8}{'rounds':>10}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'in service':>12}{'ceiling p50/p99':>17}"
    )
    for result in results:
        assert result.latency is not None
        assert result.server_latency is not None
        assert result.ceiling_latency is not None
        in_service = f"{result.server_latency.p50_ms:.2f}/{result.server_latency.p99_ms:.2f}"
        ceiling = f"{result.ceiling_latency.p50_ms:.2f}/{result.ceiling_latency.p99_ms:.2f}"
        low, high = result.round_shares
        rounds = f"{low * 100:.0f}-{high * 100:.0f}%"
        print(
            f"  {result.rpc:<20}{statistics.median(result.ceiling):>14.0f}"
            f"{statistics.median(result.service):>15.0f}{result.share:>8.0%}{rounds:>10}"
            f"{result.latency.p50_ms:>9.2f}{result.latency.p99_ms:>9.2f}{in_service:>12}"
            f"{ceiling:>17}"
        )
    sys.stdout.flush()


@contextmanager
def database(backend: str, work: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{work / 'bench.db'}"
        return
    with fresh_postgres_database() as url:
        seed(url, SEEDED_ORGANIZATIONS)
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    args = parser.parse_args()
    require_h2load()
    for backend in args.backends.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
                results = bench(url, workers, args.rounds, args.seconds, Path(tmp))
            report({"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend], workers, results)


if __name__ == "__main__":
    main()
