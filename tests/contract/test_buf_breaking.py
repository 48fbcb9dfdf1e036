"""`make buf-breaking` guards the released contract: the real protos must stay
compatible with the latest `v*` tag, and a breaking change must not get past it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "buf-breaking.sh"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TIMEOUT = 120  # seconds for one git or buf run


@pytest.fixture(scope="module")
def buf() -> Path:
    path = ROOT / "node_modules" / ".bin" / "buf"
    if not path.exists():
        reason = "buf is not installed (node_modules/.bin/buf): run `npm ci`"
        if IN_CI:
            pytest.fail(reason)  # the contract gate must never be skipped in CI
        pytest.skip(reason)
    return path


def check_breaking(buf: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    """Runs the same script as `make buf-breaking`, in `repo`."""
    return subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=repo,
        env={**os.environ, "BUF": str(buf)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


GIT_IDENTITY = (
    *("-c", "user.name=contract test", "-c", "user.email=test@example.invalid"),
    *("-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"),
)


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=repo, check=True, capture_output=True, timeout=TIMEOUT
    )


@pytest.fixture
def protos_repo(tmp_path: Path) -> Path:
    """A new git repository whose one commit holds a copy of this repository's protos/."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "protos", repo / "protos")
    git(repo, "init", "--quiet")
    git(repo, "add", "protos")
    git(repo, "commit", "--quiet", "-m", "release")
    return repo


def test_protos_are_compatible_with_the_latest_release(buf: Path) -> None:
    result = check_breaking(buf, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("proto", "old", "new", "reported"),
    [
        pytest.param(
            "resources.proto",
            "string slug = 2 [",
            "string slug = 20 [",
            'field "2" with name "slug"',
            id="renumbered-field",
        ),
        pytest.param(
            "organization_service.proto",
            "rpc DeleteWorkspace(",
            "rpc RemoveWorkspace(",
            '"DeleteWorkspace"',
            id="renamed-rpc",
        ),
    ],
)
def test_a_breaking_change_fails(
    buf: Path, protos_repo: Path, proto: str, old: str, new: str, reported: str
) -> None:
    git(protos_repo, "tag", "v1.0.0")
    path = protos_repo / "protos" / "orgs" / "v1" / proto
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {proto}"
    path.write_text(text.replace(old, new))

    result = check_breaking(buf, protos_repo)

    assert result.returncode != 0
    assert reported in result.stdout + result.stderr


def test_without_a_release_tag_it_fails_clearly(buf: Path, protos_repo: Path) -> None:
    result = check_breaking(buf, protos_repo)
    assert result.returncode != 0
    assert "no v* release tag" in result.stderr
