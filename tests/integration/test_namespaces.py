"""Joining existing namespaces by path (linux.namespaces[].path), and refusing a path whose
namespace is of another type."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import Sandbox
from .helpers import Runtime, cgroup_dirs, sandbox_pids


def _start_sleeper(sandbox: Sandbox, rt: Runtime, **overrides: object) -> tuple[str, int]:
    """A running container (`sleep`) to borrow namespaces from; returns (id, pid)."""
    b = sandbox.bundle(["sleep", "1000"], **overrides)  # type: ignore[arg-type]
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    return cid, rt.state(cid)["pid"]


def _namespaces(*, replace: dict[str, str]) -> list[dict[str, str]]:
    """The default namespace list with some types given a path."""
    out = []
    for t in ("pid", "network", "ipc", "uts", "mount", "cgroup"):
        ns = {"type": t}
        if t in replace:
            ns["path"] = replace[t]
        out.append(ns)
    return out


def test_join_netns_by_path(sandbox: Sandbox) -> None:
    """A network namespace made with `ip netns add` is joined, not a new one created."""
    path = sandbox.add_netns()
    out = sandbox.sh_ok("readlink /proc/self/ns/net",
                        linux={"namespaces": _namespaces(replace={"network": path})})
    assert out.strip() == f"net:[{os.stat(path).st_ino}]"


def test_join_uts_of_other_container(sandbox: Sandbox, rt: Runtime) -> None:
    """Joining another container's UTS namespace (via /proc/PID/ns/uts) shows its hostname,
    and leaves it unchanged when the joiner sets none."""
    _, pid = _start_sleeper(sandbox, rt, hostname="donor-host")
    ns_path = f"/proc/{pid}/ns/uts"
    out = sandbox.sh_ok("readlink /proc/self/ns/uts; cat /proc/sys/kernel/hostname",
                        hostname=None,
                        linux={"namespaces": _namespaces(replace={"uts": ns_path})})
    assert out.splitlines() == [os.readlink(ns_path), "donor-host"]


def test_join_ipc_and_net_of_other_container(sandbox: Sandbox, rt: Runtime) -> None:
    """Several namespaces can be joined at once (the pod pattern)."""
    _, pid = _start_sleeper(sandbox, rt)
    join = {"network": f"/proc/{pid}/ns/net", "ipc": f"/proc/{pid}/ns/ipc"}
    out = sandbox.sh_ok("readlink /proc/self/ns/net; readlink /proc/self/ns/ipc",
                        linux={"namespaces": _namespaces(replace=join)})
    assert out.splitlines() == [os.readlink(join["network"]), os.readlink(join["ipc"])]


def test_namespace_type_mismatch_refused(sandbox: Sandbox, rt: Runtime) -> None:
    """A uts namespace path given for type network is an error, and the failed container
    leaves nothing behind (state, cgroup, processes)."""
    donor_id, pid = _start_sleeper(sandbox, rt)
    before = set(sandbox_pids(sandbox.id, sandbox.tmp))
    b = sandbox.bundle(["echo", "should-not-run"],
                       linux={"namespaces": _namespaces(replace={"network":
                                                                 f"/proc/{pid}/ns/uts"})})
    cid = sandbox.new_id()
    res = rt.run(b, cid)
    assert res.returncode != 0
    assert "should-not-run" not in res.stdout
    assert res.stderr.strip()
    assert rt.run_cmd("state", cid).returncode == 1
    assert not (rt.root / cid).exists()
    assert cgroup_dirs(b.cgroups_path) == []
    assert set(sandbox_pids(sandbox.id, sandbox.tmp)) <= before
    assert rt.state(donor_id)["status"] == "running"


def test_namespace_path_missing_refused(sandbox: Sandbox, rt: Runtime) -> None:
    """A namespace path that does not exist is an error."""
    b = sandbox.bundle(["echo", "should-not-run"],
                       linux={"namespaces": _namespaces(
                           replace={"network": str(sandbox.tmp / "no-such-netns")})})
    cid = sandbox.new_id()
    res = rt.run(b, cid)
    assert res.returncode != 0
    assert "should-not-run" not in res.stdout
    assert not sandbox.leaks(settle=1.0)


def test_namespace_path_that_is_a_fifo_never_hangs(sandbox: Sandbox, rt: Runtime) -> None:
    """A namespace path naming a FIFO: opening it must not wait for a writer for ever; the
    create is refused in one line ("not a namespace") and leaves nothing behind."""
    fifo = sandbox.tmp / "netns-fifo"
    os.mkfifo(fifo)
    b = sandbox.bundle(["echo", "should-not-run"],
                       linux={"namespaces": _namespaces(replace={"network": str(fifo)})})
    cid = sandbox.new_id()
    try:
        res = rt.run(b, cid, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("create hung opening a namespace path that is a FIFO")
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "not a namespace" in res.stderr, res.stderr
    assert not sandbox.leaks(settle=1.0)
