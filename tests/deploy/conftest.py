"""Helpers for the deployment-file tests, and one real `orgservice serve` process (SQLite,
dev mode) shared by the tests that call a server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.e2e.conftest import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICE = "orgs.v1.OrganizationService"


def run(command: Sequence[str | Path], timeout: float, **options: object) -> str:
    """Runs a command that must succeed; its stdout."""
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, **options
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stderr}"
    return str(result.stdout)


def outside_this_venv() -> dict[str, str]:
    """This environment without what ties a process to the test run's own virtualenv."""
    hidden = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    return {name: value for name, value in os.environ.items() if name not in hidden}


def files_under(directory: Path) -> set[str]:
    """Every file below `directory` (bytecode caches aside), relative to its parent."""
    return {
        path.relative_to(directory.parent).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("deploy-server")
    service = ServiceProcess(workdir, "--database-url", f"sqlite:///{workdir / 'orgservice.db'}")
    try:
        yield service.start().wait_until_serving()
    finally:
        service.close()
