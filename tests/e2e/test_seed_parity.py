"""docs/seed-parity.md is true: every grpcurl command in its tables runs, in document order,
against the real server (SQLite and PostgreSQL), and the document covers every operation of
every seed API."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import CALL_TIMEOUT
from tests.e2e.conftest import GRPCURL
from tests.e2e.conftest import ServiceProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "seed-parity.md"

# Every operation each seed API document names, by section heading.
SEED_OPERATIONS: dict[str, tuple[str, ...]] = {
    # 000_8c3052d6330ed4d5.txt: the `operations:` list.
    "InfluxDB `/api/v2/orgs`": (
        "GetOrgs",
        "PostOrgs",
        "GetOrgsID",
        "PatchOrgsID",
        "DeleteOrgsID",
        "GetOrgsIDMembers",
        "PostOrgsIDMembers",
        "DeleteOrgsIDMembersID",
        "GetOrgsIDOwners",
        "PostOrgsIDOwners",
        "DeleteOrgsIDOwnersID",
    ),
    # 001_fdb43f5cbc4e45ba.txt: the "Endpoints" table.
    "MongoDB Atlas `/orgs`": (
        "GET /orgs",
        "GET /orgs/{ORG-ID}",
        "GET /orgs/{ORG-ID}/users",
        "PATCH /orgs/{ORG-ID}",
        "DELETE /orgs/{ORG-ID}",
        "GET /orgs/{ORG-ID}/groups",
        "GET /orgs/{ORG-ID}/invites",
        "GET /orgs/{ORG-ID}/invites/{INVITATION-ID}",
        "POST /orgs/{ORG-ID}/invites",
        "PATCH /orgs/{ORG-ID}/invites",
        "PATCH /orgs/{ORG-ID}/invites/{INVITATION-ID}",
        "DELETE /orgs/{ORG-ID}/invites/{INVITATION-ID}",
    ),
    # 002_4a77248791531ed3.txt: one "##" heading per operation.
    "`/organizations` (slug API)": (
        "GET /organizations",
        "GET /organizations/{org_slug}",
        "POST /organizations",
        "POST /organizations/{org_slug}/members",
        "POST /organizations/{org_slug}/members/{user_id}/toggle-admin",
        "DELETE /organizations/{org_slug}/members/{user_id}",
    ),
    # 003_cffb3fea4177469b.txt: the "Endpoints" table (paths under /api/v1/organizations)
    # plus "personal organization and workspace are automatically created on user signup".
    "`/api/v1/organizations`": (
        "POST /api/v1/organizations",
        "PATCH /api/v1/organizations/{org_id}",
        "GET /api/v1/organizations",
        "GET /api/v1/organizations/{org_id}",
        "POST /api/v1/organizations/{org_id}/members/invite",
        "POST /api/v1/organizations/{org_id}/workspaces",
        "GET /api/v1/organizations/{org_id}/workspaces",
        "GET /api/v1/organizations/{org_id}/workspaces/{workspace_id}",
        "GET /api/v1/organizations/{org_id}/roles",
        "signup",
    ),
}
EXPECTED_ROWS = sum(len(operations) for operations in SEED_OPERATIONS.values())  # 39

COMMAND = re.compile(r"`(grpcurl [^`]+)`")
CALLED_RPC = re.compile(r"orgs\.v1\.OrganizationService/(\w+)")
NAMED_RPC = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b")  # CamelCase words: RPC names


@dataclass(frozen=True)
class Row:
    section: str
    line_number: int
    text: str
    operation: str  # the seed operation cell
    rpcs: frozenset[str]  # RPC names in the RPC cell
    command: str

    def __str__(self) -> str:
        return f"{DOC.name}:{self.line_number} [{self.section}] {self.text}"


def parse_rows(markdown: str) -> list[Row]:
    """Table rows holding a grpcurl command, in document order, with their section."""
    rows: list[Row] = []
    section = ""
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.startswith("## "):
            section = line.removeprefix("## ").strip()
        if not line.startswith("|"):
            continue
        commands = COMMAND.findall(line)
        if not commands:
            continue  # header or separator row
        assert len(commands) == 1, f"line {number}: one command per row expected: {line}"
        operation, rpc = (cell.strip() for cell in line.strip("|").split("|", 2)[:2])
        rows.append(
            Row(
                section=section,
                line_number=number,
                text=line,
                operation=operation,
                rpcs=frozenset(NAMED_RPC.findall(rpc)),
                command=commands[0],
            )
        )
    return rows


ROWS = parse_rows(DOC.read_text())


def test_the_document_has_one_row_per_seed_operation() -> None:
    assert len(ROWS) == EXPECTED_ROWS
    for section, operations in SEED_OPERATIONS.items():
        documented = [row.operation for row in ROWS if row.section == section]
        assert len(documented) == len(operations), section
        for operation in operations:
            matches = [cell for cell in documented if operation_matches(operation, cell)]
            assert matches, f"{section}: no row for {operation}"


def operation_matches(operation: str, cell: str) -> bool:
    """`cell` names `operation`: an operation id, or method and path as a whole word."""
    if operation == "signup":
        return "signup" in cell
    return re.search(rf"(^|[\s`]){re.escape(operation)}($|[\s`:])", cell) is not None


def test_each_row_calls_the_rpcs_it_names() -> None:
    for row in ROWS:
        assert row.rpcs, row
        assert set(CALLED_RPC.findall(row.command)) == row.rpcs, row


# -- running the commands --------------------------------------------------------------------


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    server = ServiceProcess(tmp_path / "seed-parity", "--database-url", database_url)
    try:
        yield server.start().wait_until_serving()
    finally:
        server.close()


def create_organization(service: ServiceProcess, token: str, name: str, slug: str = "") -> str:
    request = {"name": name, "slug": slug} if slug else {"name": name}
    return str(service.call("CreateOrganization", request, token)["organization"]["id"])


def shell_variables(service: ServiceProcess) -> dict[str, str]:
    """Creates what the document's preamble creates (with unique names, since the database
    is shared with other tests) and returns the shell variables the commands use."""
    suffix = uuid.uuid4().hex[:8]
    owner = service.token(
        f"alice-{suffix}", email=f"alice-{suffix}@example.com", username=f"alice-{suffix}"
    )
    member_username = f"bob-{suffix}"
    member = service.token(
        f"bob-{suffix}", email=f"bob-{suffix}@example.com", username=member_username
    )
    new_user = service.token(f"erin-{suffix}", email=f"erin-{suffix}@example.com")

    slug = f"acme-{suffix}"
    org = create_organization(service, owner, "Acme", slug)
    invitation = {"organization_id": org, "email": f"frank-{suffix}@example.com", "role": "viewer"}
    workspace = {"organization_id": org, "name": "Production"}
    return {
        "ADDR": f"localhost:{service.port}",
        "TOKEN": owner,
        "MEMBER_TOKEN": member,
        "NEW_USER_TOKEN": new_user,
        "ORG": org,
        "SLUG": slug,
        "USER_ID": service.call("GetCurrentUser", {}, member)["user"]["id"],
        "MEMBER_USERNAME": member_username,
        "INVITE_ID": service.call("CreateInvitation", invitation, owner)["invitation"]["id"],
        "WS_ID": service.call("CreateWorkspace", workspace, owner)["workspace"]["id"],
        "NEW_SLUG": f"acme-labs-{suffix}",
        "SCRATCH_ORG": create_organization(service, owner, "Scratch one"),
        "SCRATCH_ORG_2": create_organization(service, owner, "Scratch two"),
    }


def run_row(row: Row, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", row.command],
        env=env,
        capture_output=True,
        text=True,
        timeout=2 * CALL_TIMEOUT,  # a row makes at most two calls
        check=False,
    )


def test_every_documented_command_runs_in_order(service: ServiceProcess) -> None:
    variables = shell_variables(service)
    path = f"{GRPCURL.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, **variables}

    for row in ROWS:
        used = set(re.findall(r"\$(\w+)", row.command))
        assert used <= variables.keys(), f"{row}\nuses unset variables {used - variables.keys()}"
        result = run_row(row, env)
        assert result.returncode == 0, (
            f"{row}\nexited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )

    # The commands did what their rows say.
    owner = variables["TOKEN"]
    for scratch in ("SCRATCH_ORG", "SCRATCH_ORG_2"):
        deleted = service.call("GetOrganization", {"organization_id": variables[scratch]}, owner)
        assert deleted["organization"]["state"] == "ORGANIZATION_STATE_DELETED"
    invitation = service.call("GetInvitation", {"invitation_id": variables["INVITE_ID"]}, owner)
    assert invitation["invitation"]["state"] == "INVITATION_STATE_REVOKED"
    assert invitation["invitation"]["role"] == "viewer"
    members = service.call("ListMembers", {"organization_id": variables["ORG"]}, owner)
    assert variables["USER_ID"] not in {m["user"]["id"] for m in members["members"]}
    organization = service.call("GetOrganization", {"slug": variables["SLUG"]}, owner)
    assert organization["organization"]["name"] == "Acme Renamed"
    assert organization["organization"]["labels"] == {"team": "platform"}
    assert organization["organization"]["workspace_count"] == 3  # default, Production, Staging
    newcomer = service.call("GetCurrentUser", {}, variables["NEW_USER_TOKEN"])
    assert [m["role"] for m in newcomer["memberships"]] == ["owner"]
