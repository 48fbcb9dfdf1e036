"""The `orgservice` command as deployments run it: start-up checks, dev banner, signals,
worker processes, migrations and flag/environment precedence."""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import SHUTDOWN_GRACE
from tests.e2e.conftest import StartService
from tests.e2e.conftest import free_port
from tests.e2e.conftest import grpcurl
from tests.e2e.conftest import orgservice
from tests.e2e.conftest import service_env
from tests.e2e.conftest import wait_until
from tests.support.processes import port_is_open

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_serve_without_a_key_source_refuses_to_start(tmp_path: Path) -> None:
    started = time.monotonic()
    result = orgservice(
        "serve", "--port", str(free_port()), env=service_env(tmp_path / "key"), cwd=tmp_path
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ORGSERVICE_JWKS_URL" in lines[0]


def test_dev_mode_prints_a_banner_with_a_working_token(start_service: StartService) -> None:
    service = start_service(port=0, wait=False)  # the banner names the port it picked
    [port] = service.wait_for_stdout(r"^\s*\S*grpcurl -plaintext localhost:(\d+) list$")
    [token] = service.wait_for_stdout(r"^\s*export TOKEN=(\S+)$")
    reply = grpcurl(int(port), "GetCurrentUser", token=token)
    assert reply["user"]["subject"] == "dev-user"
    assert reply["user"]["email"] == "dev@example.com"
    # The dev key is created on first use, private to its owner; the embedded default
    # database is a SQLite file in the working directory.
    assert service.key_file.stat().st_mode & 0o777 == 0o600
    assert (service.workdir / "orgservice.db").is_file()


def test_serve_on_a_port_in_use_fails_without_a_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = orgservice(
            "serve", "--dev", "--port", str(port), env=service_env(tmp_path / "key"), cwd=tmp_path
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"orgservice: cannot listen on 127.0.0.1:{port} (is the port in use?)"
    )
    assert "grpcurl" not in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_shuts_down_gracefully(start_service: StartService, signum: signal.Signals) -> None:
    service = start_service()
    token = service.token("signal-user")
    assert service.call("GetCurrentUser", token=token)["user"]["subject"] == "signal-user"
    started = time.monotonic()
    assert service.stop(signum) == 0, service.stderr()
    # Nothing is in flight: the process exits well within its grace period (plus the
    # main loop's one-second tick).
    assert time.monotonic() - started < SHUTDOWN_GRACE + 1.5
    assert not port_is_open(service.port)


def _worker_pids(parent: int) -> set[int]:
    """Child processes of `parent` started by multiprocessing's spawn (not its helpers)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # the process went away while we looked
        if ppid == parent and b"spawn_main" in cmdline:
            pids.add(int(stat.parent.name))
    return pids


@linux_only
def test_workers_share_one_port(start_service: StartService) -> None:
    service = start_service("--workers", "2")
    service.wait_for_stderr(r"orgservice listening on", count=2)
    workers = _worker_pids(service.pid)
    assert len(workers) == 2

    token = service.token("worker-user")
    # Each grpcurl run opens its own connection, so the kernel spreads them over workers.
    with ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(lambda _: grpcurl(service.port, "GetCurrentUser", token=token), range(20))
        )
    assert {reply["user"]["subject"] for reply in replies} == {"worker-user"}
    assert len({reply["user"]["id"] for reply in replies}) == 1  # provisioned once
    access = r"INFO (\S+) orgservice\.access: method=/orgs\.v1\.OrganizationService/GetCurrentUser"
    service.wait_for_stderr(access, count=20)
    assert set(re.findall(access, service.stderr())) == {
        "orgservice-worker-0",
        "orgservice-worker-1",
    }

    assert service.stop(signal.SIGTERM) == 0, service.stderr()
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
        timeout=5,
        what="the workers to exit",
    )


def _schema(database: Path) -> tuple[bool, list[str]]:
    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        revisions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    return "organizations" in tables, revisions


def test_migrate_creates_the_schema_and_can_run_again(tmp_path: Path) -> None:
    database = tmp_path / "x.db"
    env = service_env(tmp_path / "key")
    for _ in range(2):
        result = orgservice(
            "migrate", "--database-url", f"sqlite:///{database}", env=env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        has_organizations, revisions = _schema(database)
        assert has_organizations
        assert len(revisions) == 1
        assert revisions[0]


def test_flags_beat_environment_variables(start_service: StartService, tmp_path: Path) -> None:
    env_port = free_port()
    database = tmp_path / "from-env.db"
    service = start_service(
        env={"ORGSERVICE_PORT": str(env_port), "ORGSERVICE_DATABASE_URL": f"sqlite:///{database}"}
    )  # ServiceProcess passes --port with a port of its own
    assert service.port != env_port
    assert not port_is_open(env_port)
    # A variable without a flag still applies.
    assert database.is_file()
    assert not (service.workdir / "orgservice.db").exists()


def test_the_server_purges_periodically(start_service: StartService) -> None:
    service = start_service("--purge-interval-seconds", "0.2")
    matches = service.wait_for_stderr(r"purge: deleted (\d+) organization\(s\)", count=2)
    assert all(count == "0" for count in matches)
