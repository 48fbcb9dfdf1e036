"""orgservice-stubs: the wheel holds only the generated `orgs` package and needs only client
dependencies; installed into a fresh virtualenv (one per session: pip is slow), the README's
client example runs against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy.conftest import DEPLOY
from tests.deploy.conftest import ROOT
from tests.deploy.conftest import files_under
from tests.deploy.conftest import outside_this_venv
from tests.deploy.conftest import run
from tests.e2e.conftest import ServiceProcess

GENERATED = ROOT / "generated"
CLIENT_DEPENDENCIES = {"googleapis-common-protos", "grpcio", "protobuf"}
BUILD_TIMEOUT = 300.0  # seconds; pip may fetch setuptools for the isolated build
INSTALL_TIMEOUT = 600.0  # seconds; pip may fetch grpcio and protobuf
RUN_TIMEOUT = 60.0


def project(path: Path) -> dict[str, object]:
    data: dict[str, object] = tomllib.loads(path.read_text())["project"]
    return data


def requirements(path: Path) -> dict[str, Requirement]:
    dependencies = project(path)["dependencies"]
    assert isinstance(dependencies, list)
    parsed = (Requirement(text) for text in dependencies)
    return {requirement.name: requirement for requirement in parsed}


def bound(requirement: Requirement, operator: str) -> Version:
    (spec,) = [spec for spec in requirement.specifier if spec.operator == operator]
    return Version(spec.version)


@pytest.fixture(scope="session")
def stubs_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stubs-dist")
    run(
        [ROOT / "scripts" / "build-stubs.sh", out],
        BUILD_TIMEOUT,
        env={**outside_this_venv(), "PY": sys.executable},
    )
    (wheel,) = out.glob("orgservice_stubs-*.whl")
    return wheel


@pytest.fixture(scope="session")
def stubs_python(stubs_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtualenv with only the stubs wheel installed."""
    venv = tmp_path_factory.mktemp("stubs-venv")
    run([sys.executable, "-m", "venv", venv], RUN_TIMEOUT)
    python = venv / "bin" / "python"
    lock = ROOT / "requirements.lock"
    install: list[str | Path] = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--constraint",
        lock,
        stubs_wheel,
    ]
    run(install, INSTALL_TIMEOUT, env=outside_this_venv())
    return python


def test_wheel_holds_only_the_generated_package(stubs_wheel: Path) -> None:
    version = str(project(ROOT / "pyproject.toml")["version"])
    assert stubs_wheel.name == f"orgservice_stubs-{version}-py3-none-any.whl"
    dist_info = f"orgservice_stubs-{version}.dist-info/"
    with zipfile.ZipFile(stubs_wheel) as wheel:
        names = wheel.namelist()
        metadata = Parser().parsestr(wheel.read(dist_info + "METADATA").decode())
    packaged = {name for name in names if not name.startswith(dist_info)}
    assert packaged == files_under(GENERATED / "orgs")
    assert {"orgs/py.typed", "orgs/v1/organization_service_pb2_grpc.pyi"} <= packaged
    required = {Requirement(text).name for text in metadata.get_all("Requires-Dist", [])}
    assert required == CLIENT_DEPENDENCIES


def test_dependency_ranges_fit_the_generated_code_and_the_server() -> None:
    stubs = requirements(ROOT / "clients" / "python" / "pyproject.toml")
    server = requirements(ROOT / "pyproject.toml")
    assert set(stubs) == CLIENT_DEPENDENCIES
    # The generated modules refuse to import on runtimes older than their generator.
    pb2 = (GENERATED / "orgs" / "v1" / "resources_pb2.py").read_text()
    pb2_grpc = (GENERATED / "orgs" / "v1" / "organization_service_pb2_grpc.py").read_text()
    generated_by = {
        "protobuf": re.search(r"^# Protobuf Python Version: (\S+)$", pb2, re.MULTILINE),
        "grpcio": re.search(r"^GRPC_GENERATED_VERSION = '(\S+)'$", pb2_grpc, re.MULTILINE),
    }
    for name, match in generated_by.items():
        assert match, f"no generator version for {name} in generated/"
        assert bound(stubs[name], ">=") >= Version(match.group(1)), name
    for name in CLIENT_DEPENDENCIES:
        assert bound(stubs[name], ">=") >= bound(server[name], ">="), name
        assert bound(stubs[name], "<") == bound(server[name], "<"), name


def test_virtualenv_has_the_stubs_and_nothing_of_the_server(
    stubs_python: Path, tmp_path: Path
) -> None:
    # Run outside the checkout: `python -c` imports from the working directory first.
    imports = "import orgs.v1.organization_service_pb2_grpc, google.rpc.error_details_pb2"
    run([stubs_python, "-c", imports], RUN_TIMEOUT, cwd=tmp_path)
    for server_only in ("sqlalchemy", "orgservice", "psycopg", "jwt"):
        result = subprocess.run(
            [stubs_python, "-c", f"import {server_only}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert result.returncode != 0, f"{server_only} is importable"
        assert "ModuleNotFoundError" in result.stderr


def readme_client_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Calling it from another service\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_readme_client_example_runs_against_a_real_server(
    stubs_python: Path, server: ServiceProcess, tmp_path: Path
) -> None:
    token = server.token("stubs-client")
    script = tmp_path / "client.py"
    script.write_text(readme_client_example())
    output = run(
        [stubs_python, script],
        RUN_TIMEOUT,
        cwd=tmp_path,
        env={
            **outside_this_venv(),
            "ORGS_TARGET": f"127.0.0.1:{server.port}",
            "ORGS_TOKEN": token,
            "ORGS_SERVICE_CONFIG": str(DEPLOY / "service-config.json"),
        },
    )
    user, created, failure = output.splitlines()
    expected_user = server.call("GetCurrentUser", token=token)["user"]["id"]
    assert user == f"user {expected_user}"
    _, first, again = created.split()
    assert first == again  # the retried create returned the first organization
    assert server.call("GetOrganization", {"organizationId": first}, token=token)
    assert failure == "NOT_FOUND orgs.v1 ORGANIZATION_NOT_FOUND"
