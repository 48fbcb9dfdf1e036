"""Dockerfile and .dockerignore, read as text (no container engine runs the build here)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from tests.deploy.conftest import ROOT


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
