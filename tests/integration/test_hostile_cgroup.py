"""linux.cgroupsPath naming a cgroup that already holds processes, or is frozen.

The runtime kills every process of a container's cgroup when it deletes the container, or
when a create fails. A config whose cgroupsPath names somebody else's cgroup -- another
container's, a service's, the host's root "/" -- would turn that into killing processes
that are not the container's. runc (since 1.2, a warning before) refuses: "container's
cgroup is not empty", and "container's cgroup unexpectedly frozen".

These tests only ever point the runtime at cgroups they made themselves under
/pyrunc-test/, holding a `sleep` they started.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import CGROUP_PARENT, Runtime, cgroup_hierarchies, force_rmdir_cgroup, reap_children


class VictimCgroup:
    """A test-made cgroup (every hierarchy) with, optionally, a test-made process inside."""

    def __init__(self) -> None:
        self.rel = f"{CGROUP_PARENT}/victim-{uuid.uuid4().hex[:12]}"
        self.path = "/" + self.rel
        self.dirs: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None
        for h in cgroup_hierarchies():
            d = h / self.rel
            d.mkdir(parents=True, exist_ok=True)
            self.dirs.append(d)
            self._init_cpuset(h, d)

    @staticmethod
    def _init_cpuset(h: Path, d: Path) -> None:
        # v1 only: a v2 child with an empty cpuset.cpus uses its parent's (and the v2 root,
        # where systemd enables cpuset for its children, has no cpuset.cpus to copy)
        if not (d / "cpuset.cpus").exists() or not (h / "cpuset.cpus").exists():
            return
        cur = h
        for part in d.relative_to(h).parts:
            nxt = cur / part
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not (nxt / name).read_text().strip():
                    (nxt / name).write_text((cur / name).read_text().strip())
            cur = nxt

    def add_process(self) -> int:
        self.proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(self.proc.pid))
        return self.proc.pid

    def victim_alive(self) -> bool:
        assert self.proc is not None
        return self.proc.poll() is None

    def freeze(self) -> bool:
        for d in self.dirs:
            if (d / "freezer.state").exists():
                (d / "freezer.state").write_text("FROZEN")
                return True
            if (d / "cgroup.freeze").exists() and d.parent.parent.name != "unified":
                (d / "cgroup.freeze").write_text("1")
                return True
        return False

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(5)
        for d in reversed(self.dirs):
            if d.exists():
                force_rmdir_cgroup(d)
        reap_children()


@pytest.fixture
def victim() -> Iterator[VictimCgroup]:
    v = VictimCgroup()
    try:
        yield v
    finally:
        v.cleanup()


def test_create_refuses_a_populated_cgroup(sandbox: Sandbox, rt: Runtime, victim: VictimCgroup) -> None:
    """cgroupsPath names a cgroup with a process in it: refused, and the process lives."""
    pid = victim.add_process()
    b = sandbox.bundle(["sleep", "60"], linux={"cgroupsPath": victim.path})
    cid = sandbox.new_id()
    res = rt.create(b, cid, out_dir=sandbox.tmp / "out", check=False)
    created = res.returncode == 0
    if created:  # show the damage the acceptance leads to, then fail
        rt.run_cmd("delete", "--force", cid)
    assert victim.victim_alive(), f"the runtime killed process {pid} of a cgroup it did not make"
    assert all(d.exists() for d in victim.dirs), "the runtime removed a cgroup it did not make"
    assert not created, "create accepted a cgroup that already holds another process"
    assert len(res.stderr.splitlines()) == 1 and "cgroup" in res.stderr, res.stderr


def test_failed_create_spares_a_populated_cgroup(sandbox: Sandbox, rt: Runtime, victim: VictimCgroup) -> None:
    """The same cgroup, with a config that fails late (no such executable): the cleanup of
    the failed create must not kill the cgroup's other process nor remove the cgroup."""
    pid = victim.add_process()
    b = sandbox.bundle(["/no/such/binary"], linux={"cgroupsPath": victim.path})
    res = rt.create(b, sandbox.new_id(), out_dir=sandbox.tmp / "out", check=False)
    assert res.returncode == 1
    assert victim.victim_alive(), (
        f"a failed create killed process {pid}, which lived in the cgroup named by cgroupsPath")
    assert all(d.exists() for d in victim.dirs), "the runtime removed a cgroup it did not make"


def test_second_container_in_the_same_cgroup_is_refused(sandbox: Sandbox, rt: Runtime) -> None:
    """Two configs with one cgroupsPath: the second create is refused and the first container
    keeps running (a shared cgroup would have it killed by the other's delete)."""
    first = sandbox.bundle(["sleep", "60"])
    shared = first.cgroups_path
    ct1 = sandbox.new_id()
    rt.create(first, ct1, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", ct1, check=True)
    pid = rt.wait_status(ct1, "running")["pid"]

    second = sandbox.bundle(["sleep", "60"], linux={"cgroupsPath": shared})
    ct2 = sandbox.new_id()
    res = rt.create(second, ct2, out_dir=sandbox.tmp / "out", check=False)
    if res.returncode == 0:
        rt.run_cmd("delete", "--force", ct2)
    alive = rt.state(ct1)
    assert alive["status"] == "running" and alive["pid"] == pid, (
        f"deleting the second container killed the first: {alive}")
    assert res.returncode == 1, "a second container was created in a cgroup already in use"
    assert "cgroup" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_stopped_container_spares_the_next_one_in_its_cgroup(sandbox: Sandbox, rt: Runtime) -> None:
    """A container with a pid namespace of its own stops; its cgroup, now empty, is given to
    a second container (allowed, as with runc). `kill --all` and `delete` of the stopped one
    must not reach the second one's processes: the kernel took all of the first's with its
    init. They killed the second one (runc 1.1.5's delete leaves it running, warning that
    the cgroup is busy); `ps` of the stopped one listed the second one's processes."""
    first = sandbox.bundle(["true"])
    ct1 = sandbox.new_id()
    rt.create(first, ct1, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", ct1, check=True)
    rt.wait_status(ct1, "stopped")
    reap_children()

    second = sandbox.bundle(["sleep", "60"], linux={"cgroupsPath": first.cgroups_path})
    ct2 = sandbox.new_id()
    rt.create(second, ct2, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", ct2, check=True)
    pid = rt.wait_status(ct2, "running")["pid"]

    listed = rt.run_cmd("ps", "--format", "json", ct1, check=True).stdout
    assert json.loads(listed) == [], f"ps of the stopped one lists the next one's: {listed}"
    assert rt.run_cmd("kill", "--all", ct1, "KILL").returncode == 0
    res = rt.run_cmd("delete", ct1)
    time.sleep(0.3)
    alive = rt.state(ct2)
    assert alive["status"] == "running" and alive["pid"] == pid, (
        f"kill --all / delete of the stopped container killed the next one: {alive}")
    assert res.returncode == 0, res.stderr
    warned = [e["msg"] for e in rt.log_entries() if e.get("level") == "warning"]
    assert [w for w in warned if "left in place" in w], warned
    assert rt.run_cmd("state", ct1).returncode == 1  # the stopped one is gone all the same
    rt.run_cmd("delete", "--force", ct2, check=True)
    assert not any((h / first.cgroups_path.lstrip("/")).exists() for h in cgroup_hierarchies())


def test_create_refuses_a_frozen_cgroup(sandbox: Sandbox, rt: Runtime, victim: VictimCgroup) -> None:
    """cgroupsPath names an empty but frozen cgroup: refused at once (runc: "container's
    cgroup unexpectedly frozen"), not a create that hangs with its init frozen."""
    if not victim.freeze():
        pytest.skip("no freezer on this host")
    b = sandbox.bundle(["sleep", "60"], linux={"cgroupsPath": victim.path})
    cid = sandbox.new_id()
    try:
        res = rt.create(b, cid, out_dir=sandbox.tmp / "out", check=False, timeout=8)
    except subprocess.TimeoutExpired:
        for d in victim.dirs:  # thaw so the stuck init can be killed
            if (d / "freezer.state").exists():
                (d / "freezer.state").write_text("THAWED")
        pytest.fail("create into a frozen cgroup hung (its init froze) instead of refusing")
    assert res.returncode == 1, "create accepted a frozen cgroup"
    assert "frozen" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_create_refuses_a_cgroup_populated_outside_the_pids_hierarchy(
        sandbox: Sandbox, rt: Runtime, victim: VictimCgroup) -> None:
    """A foreign process in cpu:/x and memory:/x but not pids:/x (v1): still in use. The
    container's limits must not land on it, and `delete --force` has nothing to fail on."""
    v1 = {h.name: h / victim.rel for h in cgroup_hierarchies() if (h / victim.rel).is_dir()}
    if not {"cpu", "memory", "pids"} <= set(v1):
        pytest.skip("needs cgroup v1 cpu, memory and pids hierarchies")
    victim.proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    for ctrl in ("cpu", "memory"):
        (v1[ctrl] / "cgroup.procs").write_text(str(victim.proc.pid))
    assert not (v1["pids"] / "cgroup.procs").read_text().split()
    limit_before = (v1["memory"] / "memory.limit_in_bytes").read_text()
    shares_before = (v1["cpu"] / "cpu.shares").read_text()
    b = sandbox.bundle(["sleep", "60"], linux={
        "cgroupsPath": victim.path,
        "resources": {"memory": {"limit": 64 << 20}, "cpu": {"shares": 123}}})
    cid = sandbox.new_id()
    res = rt.create(b, cid, out_dir=sandbox.tmp / "out", check=False)
    limit_after = (v1["memory"] / "memory.limit_in_bytes").read_text()
    shares_after = (v1["cpu"] / "cpu.shares").read_text()
    gone = rt.run_cmd("delete", "--force", cid)
    assert victim.victim_alive(), "the runtime killed a process of a cgroup it did not make"
    assert (limit_after, shares_after) == (limit_before, shares_before), (
        "the container's limits were applied to the foreign process's cgroup")
    assert res.returncode == 1, "create accepted a cgroup that holds a process in cpu and memory"
    assert len(res.stderr.splitlines()) == 1 and "in use" in res.stderr, res.stderr
    assert str(victim.proc.pid) in res.stderr, res.stderr
    assert "busy" not in gone.stderr.lower(), gone.stderr
    assert not (rt.root / cid).exists(), "a refused create left its state dir"
    assert all(d.exists() for d in victim.dirs), "the runtime removed a cgroup it did not make"
