"""Dockerfile and .dockerignore, read as text (no container engine runs the build here), and
the build stage's wheel, built the same way from the files that stage copies."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT
from tests.deploy.conftest import files_under
from tests.deploy.conftest import outside_this_venv
from tests.deploy.conftest import run

BUILD_TIMEOUT = 300.0  # seconds; pip may fetch setuptools for the isolated build


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [
        line
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            parsed.append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return parsed


def stages() -> list[list[Instruction]]:
    """The instructions grouped by build stage (each starts with FROM)."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            grouped.append([])
        grouped[-1].append(instruction)
    return grouped


def arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def environment(stage: list[Instruction]) -> dict[str, str]:
    pairs = [pair for text in arguments(stage, "ENV") for pair in shlex.split(text)]
    return dict(pair.split("=", 1) for pair in pairs)


def test_builds_the_wheel_then_installs_only_it_into_a_slim_runtime() -> None:
    build, runtime = stages()
    assert arguments(build, "FROM") == ["python:3.11-slim AS build"]
    assert any("pip wheel" in command for command in arguments(build, "RUN"))
    assert arguments(runtime, "FROM") == ["python:3.11-slim"]
    assert any(copy.startswith("--from=build ") for copy in arguments(runtime, "COPY"))
    (install,) = [command for command in arguments(runtime, "RUN") if "pip install" in command]
    assert "-c /tmp/requirements.lock" in install
    assert ".whl" in install


def test_runs_as_a_numeric_non_root_user() -> None:
    (user,) = arguments(stages()[-1], "USER")
    uid = user.split(":")[0]
    assert uid.isdigit()  # Kubernetes' runAsNonRoot can only verify numeric users
    assert int(uid) != 0


def test_health_check_runs_orgservice_health() -> None:
    (healthcheck,) = arguments(stages()[-1], "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert command[:2] == ["orgservice", "health"]
    assert command[command.index("--address") + 1] == "127.0.0.1:50051"


def test_listens_on_all_interfaces_with_metrics_and_sqlite_under_data() -> None:
    runtime = stages()[-1]
    assert set(" ".join(arguments(runtime, "EXPOSE")).split()) == {"50051", "9464"}
    variables = environment(runtime)
    assert variables["ORGSERVICE_HOST"] == "0.0.0.0"
    assert variables["ORGSERVICE_METRICS_PORT"] == "9464"
    assert variables["ORGSERVICE_DATABASE_URL"].startswith("sqlite:////data/")
    assert arguments(runtime, "WORKDIR")[-1] == "/data"
    assert json.loads(arguments(runtime, "VOLUME")[0]) == ["/data"]
    assert json.loads(arguments(runtime, "ENTRYPOINT")[0]) == ["orgservice"]
    assert json.loads(arguments(runtime, "CMD")[0]) == ["serve"]


def test_dockerignore_lets_through_everything_the_build_copies() -> None:
    """.dockerignore excludes everything, then re-includes what COPY takes from the context."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    included = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    copied = {
        source.rstrip("/")
        for stage in stages()
        for copy in arguments(stage, "COPY")
        if not copy.startswith("--from=")
        for source in copy.split()[:-1]
    }
    assert copied == included


@pytest.fixture(scope="module")
def server_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage without a container engine: its COPY sources in a fresh directory,
    then the same `pip wheel`."""
    build = stages()[0]
    context = tmp_path_factory.mktemp("build-stage")
    for copy in arguments(build, "COPY"):
        for source in copy.split()[:-1]:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(
                    path, context / path.name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(path, context / path.name)
    (command,) = arguments(build, "RUN")
    assert command == "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ."
    wheels = tmp_path_factory.mktemp("wheels")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), "."]
    run(pip_wheel, BUILD_TIMEOUT, cwd=context, env=outside_this_venv())
    (wheel,) = wheels.glob("orgservice-*.whl")
    return wheel


def test_build_stage_wheel_holds_the_whole_service(server_wheel: Path) -> None:
    with zipfile.ZipFile(server_wheel) as wheel:
        names = set(wheel.namelist())
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        scripts = wheel.read(entry_points).decode()
    expected = files_under(ROOT / "orgservice") | files_under(ROOT / "generated" / "orgs")
    assert expected <= names, sorted(expected - names)  # migrations and templates included
    assert "orgservice = orgservice.cli:main" in scripts.splitlines()
