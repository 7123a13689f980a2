"""Joining existing namespaces by path (linux.namespaces[].path), and refusing a path whose
namespace is of another type."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import Sandbox
from .helpers import Runtime, cgroup_dirs, reap_children, sandbox_pids, wait_for


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


def _cgroup_procs(b: object) -> set[int]:
    """Live pids in the container's cgroup (every hierarchy), read from the host."""
    pids: set[int] = set()
    for d in cgroup_dirs(b.cgroups_path):  # type: ignore[attr-defined]
        procs = d / "cgroup.procs"
        if procs.exists():
            pids |= {int(p) for p in procs.read_text().split()}
    return pids


def _orphans_left(sandbox: Sandbox, rt: Runtime, namespaces: list[dict[str, str]]) -> None:
    """The init starts two sleepers and exits: the container is stopped but its children
    live on in its cgroup (a shared pid namespace: nothing kills them with the init).
    `kill --all ID 9` must kill them and exit 0, as runc does for containerd's shim."""
    b = sandbox.bundle(["sh", "-c", "sleep 300 & sleep 301 & echo init-exiting"],
                       linux={"namespaces": namespaces})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    rt.wait_status(cid, "stopped")
    # Reap the init as its parent (an engine's shim) does: we are its subreaper, and its
    # zombie would keep a donor's pid namespace from ever being torn down.
    reap_children()
    assert wait_for(lambda: len(_cgroup_procs(b)) == 2), _cgroup_procs(b)
    left = _cgroup_procs(b)
    res = rt.run_cmd("kill", "--all", cid, "9")
    assert (res.returncode, res.stderr) == (0, "")
    assert wait_for(lambda: not _cgroup_procs(b)), _cgroup_procs(b)
    for pid in left:
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}")
                        or "\nState:\tZ" in open(f"/proc/{pid}/status").read())
    # With nothing left it still says yes, and a plain kill says what runc says.
    assert rt.run_cmd("kill", "--all", cid, "KILL").returncode == 0
    plain = rt.run_cmd("kill", cid, "KILL")
    assert plain.returncode == 1 and "container not running" in plain.stderr
    rt.run_cmd("delete", cid, check=True)


def test_kill_all_after_init_exited_host_pid_ns(sandbox: Sandbox, rt: Runtime) -> None:
    """docker run --pid host: no pid namespace of its own."""
    _orphans_left(sandbox, rt, [ns for ns in _namespaces(replace={}) if ns["type"] != "pid"])


def test_kill_all_after_init_exited_joined_pid_ns(sandbox: Sandbox, rt: Runtime) -> None:
    """docker run --pid container:X / shareProcessNamespace: another container's pid
    namespace, which lives on (so does the donor) after the joiner's init exits."""
    donor, pid = _start_sleeper(sandbox, rt)
    _orphans_left(sandbox, rt, _namespaces(replace={"pid": f"/proc/{pid}/ns/pid"}))
    assert rt.state(donor)["status"] == "running"


def test_kill_all_running(sandbox: Sandbox, rt: Runtime) -> None:
    """kill --all on a running container signals every process in it, not only the init."""
    b = sandbox.bundle(["sh", "-c", "sleep 300 & sleep 301 & trap '' TERM; exec sleep 302"],
                       linux={"namespaces": [ns for ns in _namespaces(replace={})
                                             if ns["type"] != "pid"]})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    assert wait_for(lambda: len(_cgroup_procs(b)) == 3), _cgroup_procs(b)
    init = rt.state(cid)["pid"]
    rt.run_cmd("kill", "--all", cid, "TERM", check=True)
    # the sleepers die of it; the init ignores TERM, so it stays, alone and not frozen
    assert wait_for(lambda: _cgroup_procs(b) == {init}), _cgroup_procs(b)
    assert rt.state(cid)["status"] == "running"
    rt.run_cmd("kill", "--all", cid, "KILL", check=True)
    rt.wait_status(cid, "stopped")
    assert wait_for(lambda: not _cgroup_procs(b)), _cgroup_procs(b)
