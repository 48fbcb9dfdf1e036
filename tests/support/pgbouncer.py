"""PgBouncer in transaction pooling mode in front of a PostgreSQL server, as production
deployments with `--database-pooler pgbouncer` run it; and the ORGSERVICE_TEST_PGBOUNCER
switch that routes the test databases through one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.processes import Releasing
from tests.support.processes import as_service_user
from tests.support.processes import free_port
from tests.support.processes import owned_temp_dir
from tests.support.processes import poll
from tests.support.processes import port_is_open
from tests.support.processes import remove_tree
from tests.support.processes import require_binary

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
USER = "postgres"  # the role clients and PgBouncer log in as (trust auth on both sides)

# Timeouts as OPERATIONS.md asks of compose files and tests: a client waits at most about
# a second for a server connection, and a failed server login is retried after a second.
_CONFIG = """\
[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = {host}
listen_port = {port}
unix_socket_dir = {root}
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
auth_type = trust
auth_file = {root}/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
query_wait_timeout = 1
server_login_retry = 1
ignore_startup_parameters = extra_float_digits,options
"""


@dataclass
class _Resources:
    """What teardown must release, apart from PgBouncer so its finalizer can hold it."""

    root: Path
    process: subprocess.Popen[bytes] | None = None

    def release(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # immediate shutdown
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        remove_tree(self.root)


_START_ATTEMPTS = 3


class _ExitedOnStart(Exception):
    pass


class PgBouncer(Releasing):
    """`pgbouncer` (from PATH) on a free port, passing every database name through to
    `upstream_host:upstream_port`; it runs as the OS user `postgres` when we are root.
    `close()` stops it and removes its directory."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.binary = require_binary("pgbouncer")
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = free_port()
        self.root = owned_temp_dir("orgservice-pgbouncer-")
        self._resources = _Resources(self.root)
        super().__init__(self._resources.release)

    def start(self) -> PgBouncer:
        """Starts PgBouncer and waits until it accepts connections (it connects to the
        upstream server only when a client needs it). A free port can be taken by
        another process before PgBouncer binds it: then it starts again on another."""
        for attempt in range(_START_ATTEMPTS):
            if attempt:
                self.port = free_port()
            try:
                self._start_once()
                return self
            except _ExitedOnStart as error:
                if attempt == _START_ATTEMPTS - 1:
                    raise RuntimeError(str(error)) from None
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        config = self.root / "pgbouncer.ini"
        config.write_text(
            _CONFIG.format(
                upstream_host=self.upstream_host,
                upstream_port=self.upstream_port,
                host=HOST,
                port=self.port,
                root=self.root,
            )
        )
        # trust still needs the user listed; the password is never checked.
        (self.root / "userlist.txt").write_text(f'"{USER}" ""\n')
        for path in (config, self.root / "userlist.txt"):
            os.chmod(path, 0o644)  # readable by the user PgBouncer runs as
        with open(self.root / "pgbouncer.out", "wb") as output:  # what it says before its log opens
            self._resources.process = subprocess.Popen(
                as_service_user([self.binary, str(config)]),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def listening() -> bool:
            process = self._resources.process
            if process is None or process.poll() is not None:
                raise _ExitedOnStart(
                    f"pgbouncer exited on start (port {self.port}); its output:\n"
                    f"{self._read('pgbouncer.out')}\nits log:\n{self.log()}"
                )
            return port_is_open(self.port)

        poll(listening, START_TIMEOUT, f"pgbouncer on port {self.port} to listen")

    def _read(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.root / name).read_text(errors="replace")
        return ""

    def log(self) -> str:
        return self._read("pgbouncer.log")

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{USER}@{HOST}:{self.port}/{dbname}"

    def conninfo(self, dbname: str) -> str:
        return f"host={HOST} port={self.port} user={USER} dbname={dbname}"


# -- ORGSERVICE_TEST_PGBOUNCER: test databases through one PgBouncer per server -----------

PGBOUNCER_SWITCH = "ORGSERVICE_TEST_PGBOUNCER"
_shared: dict[tuple[str, int], PgBouncer] = {}


def shared_pgbouncer(upstream_host: str, upstream_port: int) -> PgBouncer:
    """The session's PgBouncer in front of that server, started on first use."""
    key = (upstream_host, upstream_port)
    if key not in _shared:
        _shared[key] = PgBouncer(upstream_host, upstream_port).start()
    return _shared[key]


def close_shared_pgbouncers() -> None:
    while _shared:
        _shared.popitem()[1].close()


def pooled_url(direct_url: str) -> str:
    """With ORGSERVICE_TEST_PGBOUNCER=1, the URL of the same database through the
    session's PgBouncer in front of its server; else `direct_url` unchanged."""
    if os.environ.get(PGBOUNCER_SWITCH) != "1":
        return direct_url
    url = make_url(direct_url)
    bouncer = shared_pgbouncer(url.host or HOST, url.port or 5432)
    return url.set(host=HOST, port=bouncer.port).render_as_string(hide_password=False)


def direct_url_for(url: str) -> str:
    """The direct URL of a database `pooled_url` routed through PgBouncer (what the
    service needs as `--database-listen-url`); other URLs are returned unchanged."""
    parsed = make_url(url)
    for bouncer in _shared.values():
        if parsed.port == bouncer.port and parsed.host == HOST:
            direct = parsed.set(host=bouncer.upstream_host, port=bouncer.upstream_port)
            return direct.render_as_string(hide_password=False)
    return url


def direct_conninfo(url: str) -> str:
    """A libpq URL straight to the database of `url` (past PgBouncer if it goes through
    one), for psycopg connections of a test's own."""
    direct = make_url(direct_url_for(url)).set(drivername="postgresql")
    return direct.render_as_string(hide_password=False)
