"""Load with h2load (Debian package `nghttp2-client`): gRPC is HTTP/2 POSTs of
length-prefixed protobuf, which h2load sends as raw bodies."""

from __future__ import annotations

import re
import shutil
import statistics
import struct
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

CLIENTS = 4
STREAMS_PER_CLIENT = 4
# h2load's --rps timer fires every 1/rate seconds, but at most every 10 ms.
_RPS_TICK_SECONDS = 0.01


def require_h2load() -> str:
    path = shutil.which("h2load")
    if path is None:
        raise SystemExit(
            "h2load is missing: install it with `apt-get install nghttp2-client` "
            "(Debian/Ubuntu) and run the benchmark again"
        )
    return path


def grpc_body(message: Message, directory: Path, name: str) -> Path:
    """A file holding one gRPC-framed request (uncompressed, 4-byte big-endian length)."""
    data = message.SerializeToString()
    path = directory / f"{name}.bin"
    path.write_bytes(b"\x00" + struct.pack(">I", len(data)) + data)
    return path


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# A Prometheus histogram: upper bound in seconds -> observations within it (cumulative).
Buckets = dict[float, float]


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float


def load(
    url: str, body: Path, token: str, *, seconds: float, rate_per_client: float | None = None
) -> tuple[Run, list[float]]:
    """Sends the request as fast as CLIENTS x STREAMS_PER_CLIENT allow for `seconds` (or
    at `rate_per_client` requests per second per connection); returns the run and
    every request's latency in milliseconds. h2load cannot read gRPC trailers: callers
    check the outcome on the server (its metrics).

    At a rate, each connection gets an h2load of its own, started a fraction of a tick
    apart (process start-up adds jitter of that order): one h2load's connections open
    together, so their request timers (a tick is 1/rate, at least 10 ms) fire together,
    and its clients would send in bursts of CLIENTS requests, which measures the burst
    rather than the rate."""
    if rate_per_client is None:
        return _h2load(url, body, token, seconds=seconds, clients=CLIENTS)
    tick = max(_RPS_TICK_SECONDS, 1 / rate_per_client)
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = []
        for client in range(CLIENTS):
            if client:
                time.sleep(tick / CLIENTS)
            futures.append(
                pool.submit(
                    _h2load, url, body, token, seconds=seconds, clients=1, rate=rate_per_client
                )
            )
        results = [future.result() for future in futures]
    run = Run(
        requests=sum(run.requests for run, _ in results),
        seconds=max(run.seconds for run, _ in results),
    )
    return run, [sample for _, samples in results for sample in samples]


def _h2load(
    url: str, body: Path, token: str, *, seconds: float, clients: int, rate: float | None = None
) -> tuple[Run, list[float]]:
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        command = [
            require_h2load(),
            "-D",
            f"{seconds:g}",
            "-c",
            str(clients),
            "-m",
            str(STREAMS_PER_CLIENT),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-H",
            f"authorization: Bearer {token}",
            "-d",
            str(body),
            "--log-file",
            log.name,
        ]
        if rate is not None:
            command += ["--rps", f"{max(rate, 1):.1f}"]
        result = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True
        )
        latencies = [
            int(fields[2]) / 1000
            for fields in (line.split("\t") for line in Path(log.name).read_text().splitlines())
            if len(fields) >= 3 and fields[2].isdigit()
        ]
    return _parse(result.stdout), latencies


def latency(samples: list[float]) -> Latency:
    cuts = statistics.quantiles(samples, n=100) if len(samples) > 1 else samples * 99
    return Latency(p50_ms=statistics.median(samples), p99_ms=cuts[98])


def latency_in(buckets: Buckets) -> Latency:
    """p50/p99 from a Prometheus histogram (upper bound in seconds -> cumulative count),
    interpolated within a bucket as Prometheus's histogram_quantile does: an estimate,
    as fine as the buckets (within the first, it says only "below its bound")."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != float("inf") or not buckets[bounds[-1]]:
        raise ValueError(f"no observations in the histogram: {buckets}")
    total = buckets[bounds[-1]]

    def quantile(q: float) -> float:
        rank = q * total
        lower, below = 0.0, 0.0
        for bound in bounds:
            within = buckets[bound]
            if within >= rank and within > below:
                if bound == float("inf"):
                    return lower
                return lower + (bound - lower) * (rank - below) / (within - below)
            lower, below = bound, within
        raise AssertionError("the +Inf bucket holds every observation")

    return Latency(p50_ms=quantile(0.5) * 1000, p99_ms=quantile(0.99) * 1000)


def _parse(output: str) -> Run:
    finished = re.search(r"finished in ([\d.]+)(m?s)", output)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded", output)
    if finished is None or counts is None:
        raise RuntimeError(f"cannot read h2load's output:\n{output}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return Run(requests=int(counts.group(1)), seconds=seconds)
