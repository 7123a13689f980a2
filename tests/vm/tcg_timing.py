"""pytest plugin for the emulated guests: each test's wall time as soon as it ends, and an
optional per-file time budget.

Under TCG a test takes 10-50x its time on the host, so the whole integration suite does not
fit one boot; this is how tests/vm/systemd-host.list was chosen (see tests/vm/README.md).
Load with `-p tcg_timing` (tests/vm on PYTHONPATH). Lines go to stdout at once, so a guest
killed by its timeout still leaves the numbers of every test that finished:
    tcg-time 12.3 passed tests/integration/test_cli.py::test_version
TCG_FILE_BUDGET=SECONDS skips a file's remaining tests once its tests took that long (the
measuring boot: a sample of every file within one boot).
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict

import pytest

_spent: dict[str, float] = defaultdict(float)
_outcomes: dict[str, str] = {}


def _budget() -> float | None:
    value = os.environ.get("TCG_FILE_BUDGET")
    return float(value) if value else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip once the file's budget is used up (before the test's fixtures run)."""
    budget = _budget()
    if budget is not None and _spent[item.location[0]] >= budget:
        pytest.skip(f"tcg_timing: {item.location[0]} used its {budget:.0f} s budget")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """Time setup + call + teardown of one test and print it at once."""
    t0 = time.monotonic()
    yield
    took = time.monotonic() - t0
    _spent[item.location[0]] += took
    outcome = _outcomes.pop(item.nodeid, "?")
    print(f"\ntcg-time {took:.1f} {outcome} {item.nodeid}", file=sys.stdout, flush=True)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember the worst outcome of the three phases for the line above."""
    item_outcome = "skipped" if report.skipped else report.outcome
    if report.when == "call" or report.failed or (report.when == "setup" and report.skipped):
        _outcomes[report.nodeid] = item_outcome


