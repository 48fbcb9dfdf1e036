"""A PostgreSQL cluster a test owns: initdb into a temporary directory, one postmaster on
a free port, and the faults a test may inflict on it (stop, kill, freeze).

Use it as a context manager (or call `close()`): teardown thaws, kills and removes the
cluster whatever state it is in; a finalizer does the same at interpreter exit.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from tests.support.processes import Releasing
from tests.support.processes import ToolUnavailableError
from tests.support.processes import as_service_user
from tests.support.processes import children_of
from tests.support.processes import free_port
from tests.support.processes import is_gone
from tests.support.processes import owned_temp_dir
from tests.support.processes import poll
from tests.support.processes import process_state
from tests.support.processes import remove_tree

HOST = "127.0.0.1"
SUPERUSER = "postgres"  # the database role initdb creates (not the OS user)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TOOL_TIMEOUT = 60.0  # initdb, pg_basebackup

# Small and fast. fsync and full-page writes only guard against the OS crashing, so every
# commit still survives killed processes (synchronous_commit stays on for that: tests
# restart killed clusters and count rows). wal_level replica and the WAL senders let a
# standby stream from it. Per-instance settings (port, socket directory) go on the
# command line instead: pg_basebackup copies this file to standbys.
SETTINGS = {
    "shared_buffers": "16MB",
    "max_connections": "100",
    "fsync": "off",
    "full_page_writes": "off",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "hot_standby": "on",
}

StopMode = Literal["fast", "immediate"]
_STOP_SIGNALS: dict[StopMode, signal.Signals] = {
    "fast": signal.SIGINT,  # roll back transactions, disconnect clients, shut down cleanly
    "immediate": signal.SIGQUIT,  # quit at once; crash recovery at the next start
}


def postgres_bindir() -> Path:
    """Where initdb and postgres live: `pg_config --bindir`, else the newest Debian-style
    /usr/lib/postgresql/<version>/bin (pg_config may come with the client library only)."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        output = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        candidates.append(Path(output.strip()))

    def version(bindir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise ToolUnavailableError("PostgreSQL server binaries (initdb, postgres) not found")


def _send(pids: Iterable[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _kill_all(postmaster: subprocess.Popen[bytes]) -> None:
    """SIGKILLs the postmaster and every process it started; waits until all are gone."""
    # Children are listed before the postmaster dies: afterwards they have a new parent.
    children = children_of(postmaster.pid)
    _send([postmaster.pid, *children], signal.SIGKILL)  # SIGKILL also ends stopped ones
    postmaster.wait(STOP_TIMEOUT)
    poll(lambda: all(is_gone(pid) for pid in children), STOP_TIMEOUT, "postgres to die")


def _shut_down(postmaster: subprocess.Popen[bytes], mode: StopMode) -> None:
    """Shuts the postmaster down like `pg_ctl stop -m MODE`; one that does not exit in
    time is killed and TimeoutError raised."""
    postmaster.send_signal(_STOP_SIGNALS[mode])
    try:
        postmaster.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        _kill_all(postmaster)
        message = f"postgres ignored a {mode} shutdown for {STOP_TIMEOUT:.0f}s: killed"
        raise TimeoutError(message) from error


@dataclass
class _Resources:
    """What teardown must release, apart from PgCluster so its finalizer can hold it."""

    root: Path
    postmaster: subprocess.Popen[bytes] | None = None
    frozen: list[int] = field(default_factory=list)

    def thaw(self) -> None:
        _send(self.frozen, signal.SIGCONT)
        self.frozen = []

    def release(self) -> None:
        self.thaw()
        if self.postmaster is not None and self.postmaster.poll() is None:
            with contextlib.suppress(TimeoutError):  # it was killed instead
                _shut_down(self.postmaster, "immediate")
        self.postmaster = None
        remove_tree(self.root)


class PgCluster(Releasing):
    """A cluster in its own temporary directory: `PgCluster.initdb()` or
    `PgCluster.standby_of(primary)`, then `start()`. Its server processes run as the OS
    user `postgres` when we are root (PostgreSQL refuses to run as root). `close()` thaws,
    kills and removes it."""

    def __init__(self, root: Path, bindir: Path) -> None:
        self.root = root
        self.bindir = bindir
        self.data = root / "data"
        self.log_path = root / "postgres.log"
        self.port = free_port()
        self._resources = _Resources(root)
        super().__init__(self._resources.release)

    @classmethod
    def initdb(cls) -> PgCluster:
        cluster = cls(owned_temp_dir("orgservice-pg-"), postgres_bindir())
        try:
            cluster._run(
                "initdb",
                *("-D", str(cluster.data), "-U", SUPERUSER, "--auth=trust"),
                *("--encoding=UTF8", "--locale=C", "--no-sync"),
            )
            with (cluster.data / "postgresql.conf").open("a") as conf:
                conf.writelines(f"{name} = '{value}'\n" for name, value in SETTINGS.items())
        except BaseException:
            cluster.close()
            raise
        return cluster

    @classmethod
    def standby_of(cls, primary: PgCluster) -> PgCluster:
        """A streaming standby of `primary` (pg_basebackup -R), started."""
        standby = cls(owned_temp_dir("orgservice-pg-standby-"), primary.bindir)
        try:
            standby._run(
                "pg_basebackup",
                *("-h", HOST, "-p", str(primary.port), "-U", SUPERUSER),
                *("-D", str(standby.data), "-R", "-X", "stream", "--checkpoint=fast"),
                "--no-sync",
            )
            standby.start()
        except BaseException:
            standby.close()
            raise
        return standby

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            as_service_user([str(self.bindir / tool), *args]),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} exited {result.returncode}: {result.stderr.strip()}")

    # -- addresses and connections ----------------------------------------------------------

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL the service takes."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={HOST} port={self.port} user={SUPERUSER} dbname={dbname}"

    def connect(
        self, dbname: str = "postgres", *, autocommit: bool = True, connect_timeout: int = 5
    ) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(
            self.conninfo(dbname), autocommit=autocommit, connect_timeout=connect_timeout
        )

    def create_database(self, name: str) -> str:
        """Creates database `name` and returns its URL."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def answers(self) -> bool:
        """True when a new connection can run a query within about a second."""
        try:
            with self.connect(connect_timeout=1) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    # -- life cycle and faults ----------------------------------------------------------

    @property
    def running(self) -> bool:
        postmaster = self._resources.postmaster
        return postmaster is not None and postmaster.poll() is None

    @property
    def frozen(self) -> bool:
        return bool(self._resources.frozen)

    def _postmaster(self) -> subprocess.Popen[bytes]:
        postmaster = self._resources.postmaster
        if postmaster is None or postmaster.poll() is not None:
            raise RuntimeError(f"the cluster on port {self.port} is not running")
        return postmaster

    def start(self) -> PgCluster:
        """Starts the postmaster (if it is not running) and waits until it answers."""
        if self.running:
            return self
        command = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        # Loopback TCP, and the unix socket in our own directory rather than a shared one.
        command += ["-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.root}"]
        with self.log_path.open("ab") as log:
            self._resources.postmaster = subprocess.Popen(
                as_service_user(command),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is for pytest, not for us
            )

        def ready() -> bool:
            if not self.running:
                raise RuntimeError(f"postgres exited on start; its log:\n{self.log_tail()}")
            return self.answers()

        poll(ready, START_TIMEOUT, f"PostgreSQL on port {self.port} to answer")
        return self

    def stop(self, mode: StopMode = "fast") -> None:
        """Shuts the cluster down (as `pg_ctl stop -m MODE`) and waits until it is gone."""
        postmaster = self._postmaster()
        self.thaw()
        try:
            _shut_down(postmaster, mode)
        finally:
            self._resources.postmaster = None

    def kill(self) -> None:
        """SIGKILLs the postmaster and all its processes, like a machine losing power
        (killing the postmaster alone would leave its backends to hold the shared memory
        that a restart needs)."""
        postmaster = self._postmaster()
        self._resources.frozen = []  # SIGKILL ends stopped processes too
        try:
            _kill_all(postmaster)
        finally:
            self._resources.postmaster = None

    def freeze(self) -> None:
        """SIGSTOPs every process of the cluster: connections are accepted by the kernel
        but never answered, and running queries hang, as on a hung database host."""
        postmaster = self._postmaster()
        # The postmaster first, so it cannot start processes we would not see.
        self._resources.frozen = [postmaster.pid]
        os.kill(postmaster.pid, signal.SIGSTOP)
        poll(lambda: process_state(postmaster.pid) == "T", STOP_TIMEOUT, "the postmaster to stop")
        children = sorted(children_of(postmaster.pid))
        self._resources.frozen += children
        _send(children, signal.SIGSTOP)
        # A backend that just exited stays a zombie: its stopped parent cannot reap it.
        poll(
            lambda: all(process_state(pid) == "T" or is_gone(pid) for pid in children),
            STOP_TIMEOUT,
            "every postgres process to stop",
        )

    def thaw(self) -> None:
        """Lets the processes `freeze()` stopped run again (no-op when not frozen)."""
        self._resources.thaw()

    def promote(self) -> None:
        """Turns a standby into a primary; returns once it accepts writes."""
        with self.connect() as conn:
            row = conn.execute("SELECT pg_promote(true, 30)").fetchone()
        if row is None or row[0] is not True:
            raise RuntimeError(f"pg_promote failed; the log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
