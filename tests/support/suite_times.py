"""How long each suite took, against its time budget (README, "Tests"), printed at the end
of every run: CI must stay under 30 minutes on the 2-core machine, so a suite that grows
past its budget shows here before it shows as a slow build.

A suite is a folder of tests/, except the replica and switchover tests, which start
several servers (and clusters) and have a budget of their own.
"""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

# Seconds, for the whole suite on both backends (README, "Tests").
BUDGETS = {
    "unit": 30,
    "contract": 60,
    "integration": 420,
    "e2e": 240,
    "replicas": 120,
    "faults": 180,
    "fuzz": 120,
    "deploy": 60,
}
_OWN_BUDGET = {
    "tests/e2e/test_replicas.py": "replicas",
    "tests/faults/test_switchover.py": "replicas",
}
_seconds: defaultdict[str, float] = defaultdict(float)


def _budget(suite: str) -> int | None:
    if suite == "fuzz" and os.environ.get("ORGSERVICE_FUZZ_EXAMPLES"):
        return None  # `make fuzz` runs longer than CI on purpose
    return BUDGETS.get(suite)


def suite_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path in _OWN_BUDGET:
        return _OWN_BUDGET[path]
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[suite_of(report.nodeid)] += report.duration  # setup, call and teardown


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _seconds:
        return
    pooled = os.environ.get("ORGSERVICE_TEST_PGBOUNCER") == "1"
    terminalreporter.section("suite times" + (" (through PgBouncer)" if pooled else ""))
    for suite, seconds in sorted(_seconds.items(), key=lambda item: -item[1]):
        budget = _budget(suite)
        verdict = "" if budget is None else f" of {budget} s"
        if budget is not None and seconds > budget:
            verdict += "  OVER BUDGET"
        terminalreporter.write_line(f"{suite:<12} {seconds:7.1f} s{verdict}")
