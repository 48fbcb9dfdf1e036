"""Helpers for the server processes tests start: free ports, the OS user PostgreSQL and
PgBouncer run as, temporary directories that user owns, and the processes' states."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Self

# PostgreSQL and PgBouncer refuse to run as root; as root, the tests run them as this user.
SERVICE_USER = "postgres"


class ToolUnavailableError(Exception):
    """A binary or OS user a test needs is missing on this machine."""


class Releasing:
    """Owns what `release` frees (processes, directories): on `close()`, at the end of a
    `with` block, or at the latest when garbage collected; once, however often it is asked.
    `release` must not refer to the owner, or the owner is never collected."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._finalizer = weakref.finalize(self, release)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `condition` every 20 ms; raises TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(0.02)


def _service_account() -> pwd.struct_passwd | None:
    """The account to run database servers as: SERVICE_USER when we are root, else none
    (they run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError as error:
        raise ToolUnavailableError(
            f"running as root needs an OS user {SERVICE_USER!r} to run database servers as"
        ) from error


def as_service_user(command: list[str]) -> list[str]:
    """`command`, run as SERVICE_USER when we are root.

    setpriv drops the privileges rather than subprocess's user/group arguments: those make
    Python fork() instead of vfork(), and then grpcio's fork handlers run in the child,
    where they can crash it before it executes the command (grpc/grpc#43055)."""
    account = _service_account()
    if account is None:
        return command
    ids = [f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
    return ["setpriv", *ids, *command]


def owned_temp_dir(prefix: str) -> Path:
    """A new temporary directory the database servers' user owns (mode 0700).

    Outside pytest's tmp_path on purpose: that lies under a root-only directory."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    account = _service_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    return path


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def require_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ToolUnavailableError(f"{name} not found on PATH")
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_state(pid: int) -> str:
    """The process's state letter (R, S, T, Z, …), or "" when it no longer exists."""
    fields = _stat_fields(pid)
    return fields[0] if fields else ""


def is_gone(pid: int) -> bool:
    return process_state(pid) in {"", "Z", "X"}


def children_of(parent: int) -> set[int]:
    """Live child processes of `parent` (Linux /proc)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and int(fields[1]) == parent and fields[0] not in {"Z", "X"}:
            children.add(int(entry.name))
    return children
