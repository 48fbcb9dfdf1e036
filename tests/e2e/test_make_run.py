"""What `make run` shows a developer: a quiet start-up, and a banner whose commands work
when pasted into a fresh shell (one without .venv/bin on its PATH, in another directory).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import CALL_TIMEOUT
from tests.e2e.conftest import SERVICE
from tests.e2e.conftest import StartService
from tests.e2e.conftest import grpcurl

REPOSITORY = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# Separates the outputs of the pasted commands.
MARKER = "----- next command -----"


def banner_commands(stdout: str) -> list[str]:
    """The indented lines of the banner: the commands to paste."""
    return [line.strip() for line in stdout.splitlines() if line.startswith("  ")]


def paste_into_fresh_shell(commands: list[str], cwd: Path) -> list[str]:
    """Runs `commands` in one new bash with a minimal environment; returns each one's
    stdout (the shell stops at the first failing command)."""
    script = f"\necho {shlex.quote(MARKER)}\n".join(commands)
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-c", script],
        env={"PATH": os.defpath, "HOME": str(cwd)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT * len(commands),
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return [part.strip() for part in result.stdout.split(MARKER)]


def test_dev_start_up_is_quiet_and_its_banner_commands_work_in_a_fresh_shell(
    start_service: StartService, tmp_path: Path
) -> None:
    # As `make run` starts it: .venv/bin first on the server's PATH.
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    service = start_service(port=0, wait=False, env={"PATH": path})
    [port] = service.wait_for_stdout(r"^orgservice \(dev mode\) on localhost:(\d+);")
    service.wait_for_stdout(r"--sub alice$")  # the banner's last line
    # A new SQLite database, so every migration ran: without a line per step.
    assert (service.workdir / "orgservice.db").is_file()
    log_lines = service.stderr().splitlines()
    assert not [line for line in log_lines if "alembic" in line.lower()], log_lines
    commands = banner_commands(service.stdout())
    [token_line] = [command for command in commands if command.startswith("export TOKEN=")]
    token = token_line.removeprefix("export TOKEN=")
    # The token is printed once; every later command refers to it as $TOKEN.
    assert service.stdout().count(token) == 1
    assert all(Path(shlex.split(c)[0]).is_absolute() for c in commands if c != token_line)

    elsewhere = tmp_path / "another-directory"
    elsewhere.mkdir()
    export, listing, current_user, created, minted = paste_into_fresh_shell(commands, elsewhere)

    assert export == ""
    assert SERVICE in listing.split()
    assert json.loads(current_user)["user"]["subject"] == "dev-user"
    assert json.loads(created)["organization"]["name"] == "Acme Inc"
    # The minted token is signed with the server's dev key.
    assert grpcurl(int(port), "GetCurrentUser", token=minted)["user"]["subject"] == "alice"


def test_generating_the_stubs_prints_nothing_unless_it_fails(tmp_path: Path) -> None:
    def generate(protos: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPOSITORY / "scripts" / "generate.sh"), str(tmp_path / "out")],
            env={**os.environ, "PY": sys.executable},
            cwd=protos.parent,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    quiet = generate(REPOSITORY / "protos")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")

    broken = tmp_path / "broken" / "protos"
    shutil.copytree(REPOSITORY / "protos", broken)
    with (broken / "orgs" / "v1" / "resources.proto").open("a") as proto:
        proto.write("this is not protobuf\n")
    failed = generate(broken)
    assert failed.returncode != 0
    assert "resources.proto" in failed.stderr
