"""The command line as runc's users and tools drive it: what goes to stderr and --log (and at
which level), exit statuses, exec's flags, ps's pass-through, kill 0, list's JSON, help.

Each test runs the binary under test as a shell user would; run against runc too
(PYRUNC_BIN=/usr/sbin/runc): where Debian's runc 1.1 differs from current runc (1.5), the
test follows 1.5 and is marked runc_bug.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import CMD_TIMEOUT, Runtime, cgroup_dirs, wait_for


def raw(rt: Runtime, *args: str, timeout: float = CMD_TIMEOUT,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The runtime with only --root and the given words (no --log unless given): what a
    user at a shell types."""
    env = dict(os.environ)
    env["PYRUNC_TEST_SANDBOX"] = rt.sandbox_id
    return subprocess.run([rt.binary, "--root", str(rt.root), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


def levels(path: Path) -> list[str]:
    """The level of every JSON line of a --log file."""
    return [json.loads(line)["level"] for line in path.read_text().splitlines() if line.strip()]


# -- warnings, --debug, --log --------------------------------------------------------------


def test_runc_spec_config_runs_without_warnings(sandbox: Sandbox, rt: Runtime) -> None:
    """`runc spec`'s config (ambient capabilities that are not also inheritable) runs with
    nothing on stderr but the container's own output, and no warning in --log: runc accepts
    it silently, and a warning on every run teaches users to ignore warnings."""
    b = sandbox.bundle(["sh", "-c", "grep CapAmb /proc/self/status"])
    assert set(b.config["process"]["capabilities"]["ambient"]) - set(
        b.config["process"]["capabilities"].get("inheritable", []))
    log = sandbox.tmp / "plain.log"
    res = raw(rt, "--log", str(log), "--log-format", "json", "run", "--bundle", str(b.path),
              sandbox.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["CapAmb:", "0000000000000000"]  # the container's view
    assert res.stderr == ""
    assert "warning" not in levels(log), log.read_text()
    res = raw(rt, "run", "--bundle", str(b.path), sandbox.new_id())  # no --log: stderr
    assert (res.returncode, res.stderr) == (0, "")


def test_debug_lines_go_to_stderr_without_log(sandbox: Sandbox, rt: Runtime) -> None:
    """--debug without --log: runc-style `level=debug` text lines on stderr; without --debug
    none."""
    b = sandbox.bundle(["true"])
    res = raw(rt, "--debug", "run", "--bundle", str(b.path), sandbox.new_id())
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines, "--debug said nothing"
    for line in lines:
        assert re.match(r'^time="[^"]+" level=debug msg=".*"', line), line
    res = raw(rt, "run", "--bundle", str(b.path), sandbox.new_id())
    assert (res.returncode, res.stderr) == (0, "")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_lines_go_to_the_log_file(sandbox: Sandbox, rt: Runtime, fmt: str) -> None:
    """--debug --log FILE: the debug lines go to the file, in its format, not to stderr."""
    b = sandbox.bundle(["true"])
    log = sandbox.tmp / f"debug.{fmt}"
    res = raw(rt, "--debug", "--log", str(log), "--log-format", fmt, "run", "--bundle",
              str(b.path), sandbox.new_id())
    assert (res.returncode, res.stderr) == (0, "")
    lines = log.read_text().splitlines()
    assert lines
    for line in lines:
        if fmt == "json":
            entry = json.loads(line)
            assert entry["level"] == "debug" and entry["msg"] and entry["time"], entry
        else:
            assert re.match(r'^time="[^"]+" level=debug msg=".+"', line), line


def test_log_file_is_created_even_when_nothing_is_logged(sandbox: Sandbox, rt: Runtime) -> None:
    """--log FILE exists after a command that logged nothing (callers open it to read the
    last error, and an absent file is an error of its own)."""
    log = sandbox.tmp / "quiet.log"
    res = raw(rt, "--log", str(log), "list")
    assert res.returncode == 0, res.stderr
    assert log.exists() and log.read_text() == ""
    log2 = sandbox.tmp / "quiet2.log"
    res = raw(rt, "--log", str(log2), "--log-format", "json", "state", "nosuch")  # fast path
    assert res.returncode == 1
    assert levels(log2) == ["error"]
    log3 = sandbox.tmp / "quiet3.log"
    b = sandbox.bundle(["true"])
    res = raw(rt, "--log", str(log3), "--log-format", "json", "run", "--bundle", str(b.path),
              sandbox.new_id())
    assert res.returncode == 0 and log3.exists(), res.stderr
