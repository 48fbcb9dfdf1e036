"""Load with h2load (Debian package `nghttp2-client`): gRPC is HTTP/2 POSTs of
length-prefixed protobuf, which h2load sends as raw bodies."""

from __future__ import annotations

import re
import shutil
import statistics
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

CLIENTS = 4
STREAMS_PER_CLIENT = 4


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
    check the outcome on the server (its metrics)."""
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        command = [
            require_h2load(),
            "-D",
            f"{seconds:g}",
            "-c",
            str(CLIENTS),
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
        if rate_per_client is not None:
            command += ["--rps", f"{max(rate_per_client, 1):.1f}"]
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


def _parse(output: str) -> Run:
    finished = re.search(r"finished in ([\d.]+)(m?s)", output)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded", output)
    if finished is None or counts is None:
        raise RuntimeError(f"cannot read h2load's output:\n{output}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return Run(requests=int(counts.group(1)), seconds=seconds)
