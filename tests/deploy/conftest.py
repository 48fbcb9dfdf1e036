"""Fixtures for the deployment files: the repository paths, and one real `orgservice serve`
process (SQLite, dev mode) shared by the tests that call a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICE = "orgs.v1.OrganizationService"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("deploy-server")
    service = ServiceProcess(workdir, "--database-url", f"sqlite:///{workdir / 'orgservice.db'}")
    try:
        yield service.start().wait_until_serving()
    finally:
        service.close()
