"""Hooks: order, the state each one sees on stdin, where each runs, and failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import cgroup_dirs, wait_for


def _hook(log: Path, name: str, extra: str = "") -> dict[str, object]:
    """A hook that appends `name <state JSON>` to a host file (runs in the runtime namespace)."""
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f'printf "{name} %s\\n" "$(cat)" >> {log}; {extra}']}


def _entries(log: Path) -> list[tuple[str, dict[str, object]]]:
    out = []
    for line in log.read_text().splitlines():
        name, _, state = line.partition(" ")
        out.append((name, json.loads(state)))
    return out


def test_hooks_run_in_order_with_state(sandbox: Sandbox) -> None:
    log = sandbox.host_dir("hooks") / "log"
    hooks = {k: [_hook(log, k)] for k in ("prestart", "createRuntime", "createContainer",
                                          "poststart", "poststop")}
    b = sandbox.bundle(["true"], hooks=hooks)
    rt = sandbox.rt
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    pid = rt.state(cid)["pid"]
    rt.run_cmd("start", cid, check=True)
    rt.wait_status(cid, "stopped")
    rt.run_cmd("delete", cid, check=True)
    got = _entries(log)
    assert [n for n, _ in got] == ["prestart", "createRuntime", "createContainer",
                                   "poststart", "poststop"]
    for name, state in got:
        assert state["id"] == cid and state["bundle"] == str(b.path)
    statuses = {n: s["status"] for n, s in got}
    # prestart is the deprecated hook from before createRuntime: it sees "created", as with
    # crun and as the runtime-tools suite checks.
    assert statuses == {"prestart": "created", "createRuntime": "creating",
                        "createContainer": "creating", "poststart": "running",
                        "poststop": "stopped"}
    assert {n: s["pid"] for n, s in got if n != "poststop"} == {
        "prestart": pid, "createRuntime": pid, "createContainer": pid, "poststart": pid}


def test_start_container_hook_runs_inside(sandbox: Sandbox) -> None:
    """startContainer runs in the container: its path resolves in the container's rootfs."""
    b = sandbox.bundle(["sh", "-c", "cat /tmp/seen"], root={"path": "rootfs", "readonly": False},
                       hooks={"startContainer": [
                           {"path": "/bin/sh", "args": ["sh", "-c", "hostname > /tmp/seen"]}]})
    res = sandbox.rt.run(b)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "pyrunc-test"


def test_create_container_hook_runs_in_the_rootfs(sandbox: Sandbox) -> None:
    """The runtime-spec (and runc): createContainer runs with the container's rootfs as its
    working directory (a relative path there is the image's)."""
    log = sandbox.host_dir("hooks") / "log"
    b = sandbox.bundle(["true"], hooks={"createContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"pwd > {log}; cat etc/rootfs-marker >> {log}"]}]})
    res = sandbox.rt.run(b)
    assert res.returncode == 0, res.stderr
    assert log.read_text().splitlines() == [str(b.rootfs), "pyrunc-test-rootfs"]


def test_failing_create_runtime_hook_fails_create(sandbox: Sandbox) -> None:
    log = sandbox.host_dir("hooks") / "log"
    b = sandbox.bundle(["true"], hooks={"createRuntime": [_hook(log, "cr", "exit 7")]})
    res = sandbox.rt.run_cmd("create", "--bundle", str(b.path), sandbox.new_id())
    assert res.returncode == 1
    assert "createRuntime hook" in res.stderr and "7" in res.stderr
    assert not sandbox.leaks()


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its reaper (the test, a subreaper) has not reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_failing_poststart_hook_stops_the_container(sandbox: Sandbox) -> None:
    """runtime-spec 1.3: start fails naming the hook, the container is stopped (its process
    gone), the hooks after the failed one do not run, and delete still runs poststop."""
    log = sandbox.host_dir("hooks") / "log"
    b = sandbox.bundle(["sleep", "1000"],
                       hooks={"poststart": [_hook(log, "p1", "exit 5"), _hook(log, "p2")],
                              "poststop": [_hook(log, "ps")]})
    cid = sandbox.new_id()
    sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out")
    pid = sandbox.rt.state(cid)["pid"]
    res = sandbox.rt.run_cmd("start", cid)
    assert res.returncode == 1, res
    assert "poststart hook" in res.stderr and "5" in res.stderr, res.stderr
    assert sandbox.rt.state(cid)["status"] == "stopped"
    assert wait_for(lambda: _gone(pid)), f"the container's process {pid} still runs"
    sandbox.rt.run_cmd("delete", cid, check=True)
    assert [n for n, _ in _entries(log)] == ["p1", "ps"]
    assert not sandbox.leaks()


def test_failing_poststart_hook_fails_run(sandbox: Sandbox) -> None:
    log = sandbox.host_dir("hooks") / "log"
    b = sandbox.bundle(["sleep", "1000"], hooks={"poststart": [_hook(log, "p1", "exit 5")],
                                                 "poststop": [_hook(log, "ps")]})
    res = sandbox.rt.run(b)
    assert res.returncode == 1, res
    assert "poststart hook" in res.stderr, res.stderr
    assert [n for n, _ in _entries(log)] == ["p1", "ps"]
    assert not sandbox.leaks()


def test_failing_poststop_hook_is_a_warning(sandbox: Sandbox) -> None:
    log = sandbox.host_dir("hooks") / "log"
    b = sandbox.bundle(["true"], hooks={"poststop": [_hook(log, "ps", "exit 3")]})
    res = sandbox.rt.run(b)
    assert res.returncode == 0, res.stderr
    levels = [e["level"] for e in sandbox.rt.log_entries()]
    assert "warning" in levels and "error" not in levels
    assert [n for n, _ in _entries(log)] == ["ps"]


def test_hook_timeout(sandbox: Sandbox) -> None:
    b = sandbox.bundle(["true"], hooks={"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1}]})
    res = sandbox.rt.run_cmd("create", "--bundle", str(b.path), sandbox.new_id(), timeout=20)
    assert res.returncode == 1
    assert "timed out" in res.stderr
    assert not sandbox.leaks()


@pytest.mark.parametrize("timeout", [2**31, 2**63 - 1])
def test_hook_timeout_beyond_int32_runs_the_hook(sandbox: Sandbox, timeout: int) -> None:
    """A timeout is any positive integer in the spec (runc: a Go int); pyrunc refused more
    than 2**31-1 s and now waits up to that (68 years): the hook runs and the container too."""
    log = sandbox.host_dir("hooks") / "log"
    b = sandbox.bundle(["true"], hooks={"createRuntime": [{**_hook(log, "cr"), "timeout": timeout}]})
    res = sandbox.rt.run(b)
    assert res.returncode == 0, res.stderr
    assert [n for n, _ in _entries(log)] == ["cr"]
    assert not sandbox.leaks()


def _children_of(pid: int) -> list[int]:
    """Live child pids of `pid`, from /proc (zombies left out)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


@pytest.mark.parametrize("command,sig", [("create", signal.SIGTERM), ("create", signal.SIGINT),
                                         ("run", signal.SIGTERM), ("run", signal.SIGINT)])
def test_signal_during_setup_cleans_up(sandbox: Sandbox, command: str, sig: int) -> None:
    """SIGTERM or SIGINT while a create or a run is still setting up (here: blocked in a
    createRuntime hook that sleeps) ends it promptly with one line and exit 1, and leaves
    nothing: no init, no hook nor what it started, no cgroup, no state (the sandbox's
    teardown checks the rest)."""
    marker = "97.125"
    # a shell that forks the sleep: what the hook started must go too, not the hook alone
    b = sandbox.bundle(["true"], hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"sleep {marker}; true"]}]})
    cid = sandbox.new_id()
    proc = sandbox.rt.popen(command, "--bundle", str(b.path), cid)

    def hook_pids() -> list[int]:
        found = []
        for p in [q for c in _children_of(proc.pid) for q in _children_of(c)]:
            try:
                argv = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
            except OSError:  # gone meanwhile
                continue
            if argv[:2] == [b"sleep", marker.encode()]:
                found.append(p)
        return found

    assert wait_for(lambda: bool(hook_pids()), timeout=20), "the hook never started"
    hook = hook_pids()[0]
    inits = {int(p) for d in cgroup_dirs(b.cgroups_path) if (d / "cgroup.procs").exists()
             for p in (d / "cgroup.procs").read_text().split()}
    assert len(inits) == 1, inits  # the init, waiting for the hooks in its cgroup
    os.kill(proc.pid, sig)
    try:
        _out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{command} ignored {signal.Signals(sig).name}")
    assert proc.returncode == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert f"interrupted by {signal.Signals(sig).name}" in err, err
    for pid in (hook, *inits):
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}")
                        or "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text(), timeout=5), pid
    assert cid not in sandbox.rt.list_ids()
    assert not cgroup_dirs(b.cgroups_path)
    assert not sandbox.leaks(settle=2.0)
