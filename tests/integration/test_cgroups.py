"""Cgroups: placement (linux.cgroupsPath), every resource, update, freeze, stats, OOM events,
cleanup -- proved from the host (the cgroup files) and from inside the container (its
read-only /sys/fs/cgroup, its own view through the cgroup namespace).

Most containers here run an "agent" as init: a shell loop that runs snippets the test drops
into a bind-mounted directory. That is `exec` without its cost, which matters on the
emulated v2 guest (tests/vm/run-v2.sh), where each runtime call takes seconds.

cgroup_v1 tests run on hosts with v1 controllers (this CI host is hybrid: v1 + an almost
empty cgroup2 at /sys/fs/cgroup/unified); cgroup_v2 tests need a pure v2 host and share one
container in a fixed order (update changes what the later tests see). Each skips with the
reason elsewhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox
from .helpers import Bundle, Runtime, cgroup_dirs, force_rmdir_cgroup, wait_for

CG = Path("/sys/fs/cgroup")
MiB = 1 << 20
SLOW = 180.0  # timeout of a runtime call that the emulated v2 guest may make take long


def _cgroup_mounts() -> list[tuple[str, str]]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype = post.split()[0]
            if fstype in ("cgroup", "cgroup2"):
                out.append((pre.split()[4], fstype))
    return out


PURE_V2 = (str(CG), "cgroup2") in _cgroup_mounts()
#: v1 hierarchy names, and each controller of a co-mounted one (systemd mounts cpu,cpuacct and
#: net_cls,net_prio, with a link per controller: /sys/fs/cgroup/cpu reaches it, inside too)
V1_CONTROLLERS = {n for mp, t in _cgroup_mounts() if t == "cgroup"
                  for n in {Path(mp).name, *Path(mp).name.split(",")}}


# -- helpers --------------------------------------------------------------------------------

AGENT = ("i=0; while :; do if [ -f /ctl/cmd.$i ]; then sh /ctl/cmd.$i >/ctl/out.$i 2>&1; "
         "echo $? >/ctl/rc.$i.tmp; mv /ctl/rc.$i.tmp /ctl/rc.$i; i=$((i+1)); "
         "else sleep 0.05; fi; done")


class Agent:
    """A running container whose init runs shell snippets for the test."""

    def __init__(self, sandbox: Sandbox, bundle: Bundle, cid: str, ctl: Path) -> None:
        self.sandbox, self.bundle, self.id, self.ctl = sandbox, bundle, cid, ctl
        self.n = 0

    def sh(self, script: str, timeout: float = 60) -> tuple[int, str]:
        """Run `script` in the container; (exit status, stdout+stderr)."""
        n, self.n = self.n, self.n + 1
        tmp = self.ctl / f".cmd.{n}"
        tmp.write_text(script + "\n")
        tmp.rename(self.ctl / f"cmd.{n}")
        rc = self.ctl / f"rc.{n}"
        assert wait_for(rc.exists, timeout=timeout, interval=0.05), f"agent did not run {script!r}"
        return int(rc.read_text()), (self.ctl / f"out.{n}").read_text()

    def ok(self, script: str) -> str:
        code, out = self.sh(script)
        assert code == 0, f"{script!r} exited {code}: {out}"
        return out

    @property
    def cgroup(self) -> str:
        return self.bundle.cgroups_path


def start_agent(sandbox: Sandbox, *, resources: dict[str, Any] | None = None,
                linux: dict[str, Any] | None = None) -> Agent:
    """create + start an agent container with `resources` merged into linux.resources."""
    ctl = sandbox.host_dir(f"ctl-{uuid.uuid4().hex[:8]}")
    lin: dict[str, Any] = dict(linux or {})
    if resources is not None:
        lin["resources"] = resources
    b = sandbox.bundle(["sh", "-c", AGENT], linux=lin, extra_mounts=[
        {"destination": "/ctl", "type": "bind", "source": str(ctl), "options": ["rbind", "rw"]}])
    cid = sandbox.new_id()
    sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out", timeout=SLOW)
    sandbox.rt.run_cmd("start", cid, check=True, timeout=SLOW)
    return Agent(sandbox, b, cid, ctl)


def v1file(cgroup: str, ctrl: str, name: str) -> str:
    return (CG / ctrl / cgroup.lstrip("/") / name).read_text().strip()


def v2file(cgroup: str, name: str) -> str:
    return (CG / cgroup.lstrip("/") / name).read_text().strip()


def block_device() -> tuple[str, int, int]:
    """A block device to limit and to be denied: brd's /dev/ram0 when loaded (the v2 guest
    loads it), else a loop device (this CI host forbids opening its disks to everyone).
    Opening it read-only (reading at most one byte) is the worst a test does."""
    names = sorted(os.listdir("/sys/block"))
    for name in ["ram0"] + [n for n in names if n.startswith("loop")]:
        dev = Path("/sys/block") / name / "dev"
        if dev.exists():
            major, minor = dev.read_text().strip().split(":")
            return name, int(major), int(minor)
    pytest.skip("no ram or loop block device to test device rules and blockIO limits with")


def warnings_in(rt: Runtime) -> list[str]:
    return [e["msg"] for e in rt.log_entries() if e.get("level") == "warning"]


def events_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


# -- placement (v1) -------------------------------------------------------------------------

def own_hierarchies() -> dict[str, str]:
    """v1 hierarchy mount dir name ("cpu", "systemd") -> this test process's cgroup there."""
    out: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        name = ctrls.replace("name=", "")
        if ctrls and (CG / name).is_dir() and name in V1_CONTROLLERS:
            out[name] = path
    return out


@pytest.mark.parametrize("kind", ["absolute", "relative", "absent"])
def test_cgroups_path_placement_and_removal_v1(sandbox: Sandbox, kind: str) -> None:
    """runc's rules: absolute as is; relative (and absent: the id) below our own cgroup of each
    controller. The container's first command already sees itself there (no cgroup namespace
    here, so /proc/self/cgroup shows host paths), and `run` removes the cgroups it made."""
    if not V1_CONTROLLERS:
        pytest.skip("needs cgroup v1 controllers")
    top = f"pyrunc-test-rel-{uuid.uuid4().hex[:8]}"
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    cid = sandbox.new_id()
    linux: dict[str, Any] = {"namespaces": namespaces}
    if kind == "relative":
        linux["cgroupsPath"] = f"{top}/../{top}/ctr"  # cleaned to TOP/ctr
    elif kind == "absent":
        linux["cgroupsPath"] = None
    b = sandbox.bundle(["cat", "/proc/self/cgroup"], linux=linux)
    own = own_hierarchies()
    inner = {"absolute": b.cgroups_path, "relative": f"{top}/ctr", "absent": cid}[kind]
    want = {h: inner if kind == "absolute" else os.path.normpath(os.path.join(path, inner))
            for h, path in own.items()}
    try:
        res = sandbox.rt.run(b, cid)
        assert res.returncode == 0, res.stderr
        seen = {}
        for line in res.stdout.splitlines():
            _, ctrls, path = line.split(":", 2)
            if ctrls:
                seen[ctrls.replace("name=", "")] = path
        for h, path in want.items():
            assert seen.get(h) == path, f"{h}: in {seen.get(h)}, expected {path}"
            assert not (CG / h / path.lstrip("/")).exists(), f"{h}:{path} left behind by run"
    finally:
        # The container's own dirs are the runtime's to remove (checked above); the relative
        # case's parent stays behind, as with runc: it is this test's to remove.
        for h, path in want.items():
            d = CG / h / path.lstrip("/")
            if kind != "absolute" and d.exists():
                force_rmdir_cgroup(d)
            if kind == "relative":
                parent = CG / h / os.path.dirname(path).lstrip("/")
                if parent.name == top and parent.exists():
                    force_rmdir_cgroup(parent)
        # A hybrid host's unified hierarchy gets the same parent (the container joins it too).
        if UNIFIED is not None and kind == "relative":
            own0 = next(ln[3:] for ln in Path("/proc/self/cgroup").read_text().splitlines()
                        if ln.startswith("0::"))
            parent = UNIFIED / own0.lstrip("/") / top
            for d in (parent / "ctr", parent):
                if d.exists():
                    force_rmdir_cgroup(d)


UNIFIED = next((Path(mp) for mp, t in _cgroup_mounts() if t == "cgroup2" and mp != str(CG)), None)


@pytest.mark.parametrize("cgroupns", [False, True])
def test_hybrid_host_joins_the_unified_hierarchy_v1(sandbox: Sandbox, cgroupns: bool) -> None:
    """A v1 host that also mounts the unified hierarchy (here /sys/fs/cgroup/unified): as with
    runc, the container joins its cgroup there too, so its `0::` line names it (systemd, podman
    and monitoring tools read it) -- inside without a cgroup namespace, from the host with one
    -- exec'd processes join it too, and delete removes the directory. Its /sys/fs/cgroup shows
    only the v1 hierarchies, as runc's (no cgroup2 mount there)."""
    if UNIFIED is None or not V1_CONTROLLERS:
        pytest.skip("needs a hybrid host (v1 controllers and a cgroup2 mount beside them)")
    linux: dict[str, Any] = {}
    if not cgroupns:
        linux["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    b = sandbox.bundle(["sh", "-c", "grep '^0::' /proc/self/cgroup; "
                        "grep -c ' - cgroup2 ' /proc/self/mountinfo; "
                        "ls /sys/fs/cgroup | tr '\\n' ' '; echo; exec sleep 1000"], linux=linux)
    rt = sandbox.rt
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    pid = rt.state(cid)["pid"]
    host_line = next(ln for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                     if ln.startswith("0::"))
    assert host_line == f"0::{b.cgroups_path}"
    d = UNIFIED / b.cgroups_path.lstrip("/")
    assert (d / "cgroup.procs").read_text().split() == [str(pid)]
    rt.run_cmd("start", cid, check=True)
    out_file = sandbox.tmp / "out" / f"{cid}.out"
    assert wait_for(lambda: out_file.read_text().count("\n") == 3), out_file.read_text()
    res = rt.run_cmd("exec", cid, "grep", "^0::", "/proc/self/cgroup")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("0::/\n" if cgroupns else f"0::{b.cgroups_path}\n")
    rt.run_cmd("delete", "--force", cid, check=True)
    own_line, cgroup2_mounts, listing = out_file.read_text().splitlines()
    assert own_line == ("0::/" if cgroupns else f"0::{b.cgroups_path}")
    assert cgroup2_mounts == "0", "the container sees a cgroup2 mount (runc shows none on v1)"
    assert UNIFIED.name not in listing.split() and "memory" in listing.split(), listing
    assert not d.exists(), "delete left the unified cgroup behind"


def test_covered_unified_hierarchy_is_left_alone_v1(sandbox: Sandbox) -> None:
    """A hybrid host's cgroup2 mount covered by another mount (what crun needs here: a tmpfs
    over /sys/fs/cgroup/unified in a private mount namespace, as bench/ runs every runtime)
    is not a hierarchy: the container runs in its v1 cgroups, and nothing is written into
    the tmpfs (it failed: 'cannot join cgroup .../unified/...: No such file or directory')."""
    if UNIFIED is None or not V1_CONTROLLERS:
        pytest.skip("needs a hybrid host (v1 controllers and a cgroup2 mount beside them)")
    b = sandbox.bundle(["sh", "-c", "grep -c . /proc/self/cgroup"])
    rt = sandbox.rt
    cid = sandbox.new_id()
    script = (f"mount -t tmpfs pyrunc-test-cover {UNIFIED} && exec \"$@\" && ls -A {UNIFIED}")
    res = subprocess.run(["unshare", "-m", "--propagation", "slave", "sh", "-c", script, "sh",
                          *rt.argv("run", "--bundle", str(b.path), cid)],
                         capture_output=True, text=True, timeout=60, env=rt._env())
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert int(res.stdout) >= 2  # the v1 hierarchies' lines
    assert not (UNIFIED / b.cgroups_path.lstrip("/")).exists()


def test_failed_create_removes_its_cgroups_v1(sandbox: Sandbox, rt: Runtime) -> None:
    """A create that fails after making the cgroups (unified on v1) leaves none behind."""
    if not V1_CONTROLLERS:
        pytest.skip("needs cgroup v1 controllers")
    b = sandbox.bundle(["true"], linux={"resources": {"memory": {"limit": 64 * MiB},
                                                     "unified": {"memory.high": "1"}}})
    res = rt.create(b, sandbox.new_id(), out_dir=sandbox.tmp / "out", check=False)
    assert res.returncode != 0
    assert "unified" in res.stderr and "cgroup v1" in res.stderr
    assert cgroup_dirs(b.cgroups_path) == []


def _killed_create(sandbox: Sandbox, rt: Runtime) -> None:
    b = sandbox.bundle(["true"], hooks={"prestart": [{"path": "/bin/sleep", "args": ["sleep", "60"]}]})
    cid = sandbox.new_id()
    proc = rt.popen("create", "--bundle", str(b.path), cid, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)

    def hook_running() -> bool:
        """The prestart hook (a child of create) runs once the init is in its cgroups; a
        process in the cgroup alone is not enough: the systemd driver's scope holds a
        placeholder from the start (which dies with a killed create: the scope goes too)."""
        for entry in Path("/proc").iterdir():
            try:
                if (entry.name.isdigit() and (entry / "cmdline").read_bytes() == b"sleep\x0060\x00"
                        and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == proc.pid):
                    return True
            except OSError:
                continue
        return False

    def init_in_cgroup() -> bool:
        return hook_running() and any((d / "cgroup.procs").read_text().split()
                                      for d in cgroup_dirs(b.cgroups_path))
    assert wait_for(init_in_cgroup, timeout=SLOW), "create never got its init into the cgroup"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert cgroup_dirs(b.cgroups_path), "cgroups should still be there after the kill"
    rt.run_cmd("delete", "--force", cid, check=True, timeout=SLOW)
    assert cgroup_dirs(b.cgroups_path) == []


def test_killed_create_cgroups_removed_by_delete(sandbox: Sandbox, rt: Runtime) -> None:
    """SIGKILL of `create` while its hooks run (init in its cgroup): delete --force still finds
    the cgroups through the saved state and removes them with what is inside. (Not in the v2
    guest's selection: the path is the same there and costs a minute of emulated time.)"""
    _killed_create(sandbox, rt)


# -- every resource, v1 ---------------------------------------------------------------------

@pytest.mark.cgroup_v1
def test_limits_v1_from_host_and_inside(sandbox: Sandbox, rt: Runtime) -> None:
    """Every v1 limit this host has a file for, read back from both sides."""
    if not V1_CONTROLLERS:
        pytest.skip("needs cgroup v1 controllers")
    _name, major, minor = block_device()
    res = {
        "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB, "swappiness": 10,
                   "kernelTCP": 16 * MiB, "disableOOMKiller": False, "useHierarchy": True},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000,
                "realtimePeriod": 500000, "cpus": "0", "mems": "0", "idle": 0},
        "pids": {"limit": 42},
        "blockIO": {"weight": 300,
                    "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": MiB}],
                    "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 2 * MiB}],
                    "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 300}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]},
        "devices": [{"allow": False, "access": "rwm"}],
    }
    rt_sched = (CG / "cpu" / "cpu.rt_period_us").exists()  # CONFIG_RT_GROUP_SCHED (not Debian's)
    if not rt_sched:
        del res["cpu"]["realtimePeriod"]
    a = start_agent(sandbox, resources=res)
    want = {
        ("memory", "memory.limit_in_bytes"): str(64 * MiB),
        ("memory", "memory.soft_limit_in_bytes"): str(32 * MiB),
        ("memory", "memory.memsw.limit_in_bytes"): str(96 * MiB),
        ("memory", "memory.swappiness"): "10",
        ("memory", "memory.use_hierarchy"): "1",
        ("cpu", "cpu.shares"): "512",
        ("cpu", "cpu.cfs_quota_us"): "50000",
        ("cpu", "cpu.cfs_period_us"): "100000",
        ("cpu", "cpu.cfs_burst_us"): "10000",
        ("cpu", "cpu.idle"): "0",
        ("cpuset", "cpuset.cpus"): "0",
        ("cpuset", "cpuset.mems"): "0",
        ("pids", "pids.max"): "42",
        ("blkio", "blkio.throttle.read_bps_device"): f"{major}:{minor} {MiB}",
        ("blkio", "blkio.throttle.write_bps_device"): f"{major}:{minor} {2 * MiB}",
        ("blkio", "blkio.throttle.read_iops_device"): f"{major}:{minor} 300",
        ("blkio", "blkio.throttle.write_iops_device"): f"{major}:{minor} 100",
    }
    if rt_sched:
        want[("cpu", "cpu.rt_period_us")] = "500000"
    if (CG / "blkio" / a.cgroup.lstrip("/") / "blkio.bfq.weight").exists():
        want[("blkio", "blkio.bfq.weight")] = "300"  # v1 bfq shows the bare default weight
    kmem_tcp = CG / "memory" / a.cgroup.lstrip("/") / "memory.kmem.tcp.limit_in_bytes"
    if kmem_tcp.exists():
        want[("memory", "memory.kmem.tcp.limit_in_bytes")] = str(16 * MiB)
    for (ctrl, name), value in want.items():
        if ctrl not in V1_CONTROLLERS:
            continue
        assert v1file(a.cgroup, ctrl, name) == value, f"host {ctrl}/{name}"
    # inside: the container's own cgroups are the roots of its /sys/fs/cgroup/<ctrl>
    script = "; ".join(f"echo {ctrl}/{name}=$(cat /sys/fs/cgroup/{ctrl}/{name} | head -1)"
                       for (ctrl, name) in want if ctrl in V1_CONTROLLERS)
    inside = dict(line.split("=", 1) for line in a.ok(script).splitlines())
    for (ctrl, name), value in want.items():
        if ctrl in V1_CONTROLLERS:
            assert inside[f"{ctrl}/{name}"] == value.splitlines()[0], f"inside {ctrl}/{name}"
    assert "oom_kill_disable 0" in a.ok("cat /sys/fs/cgroup/memory/memory.oom_control")


@pytest.mark.cgroup_v1
def test_oom_killer_switch_and_obsolete_knobs_v1(sandbox: Sandbox, rt: Runtime) -> None:
    """disableOOMKiller is written; kernel memory and leaf weights, gone from this kernel,
    are warnings (the container still runs) -- or written where the kernel has them."""
    if "memory" not in V1_CONTROLLERS:
        pytest.skip("needs the v1 memory controller")
    out = sandbox.sh_ok("cat /sys/fs/cgroup/memory/memory.oom_control; "
                        "cat /sys/fs/cgroup/memory/memory.kmem.limit_in_bytes || echo none",
                        linux={"resources": {
                            "memory": {"limit": 64 * MiB, "disableOOMKiller": True,
                                       "kernel": 32 * MiB},
                            "blockIO": {"leafWeight": 200}}})
    assert "oom_kill_disable 1" in out
    warned = " ".join(warnings_in(rt))
    if out.split()[-1] != str(32 * MiB):   # not enforced (Linux >= 5.16 ignores it): warned
        assert "memory.kernel is not" in warned, warned
    assert "leaf weight" in warned


@pytest.mark.cgroup_v1
def test_realtime_runtime_needs_the_parents_budget_v1(sandbox: Sandbox, rt: Runtime) -> None:
    """cpu.realtimeRuntime is written (and refused by the kernel when the parent cgroups
    grant no real-time budget: the test parent has none), with the reason in the error."""
    if "cpu" not in V1_CONTROLLERS:
        pytest.skip("needs the v1 cpu controller")
    b = sandbox.bundle(["true"], linux={"resources": {"cpu": {"realtimeRuntime": 10000}}})
    parent = CG / "cpu" / b.cgroups_path.lstrip("/")
    parent = parent.parent
    if not (CG / "cpu" / "cpu.rt_runtime_us").exists():
        pytest.skip("no real-time group scheduling in this kernel")
    res = rt.create(b, sandbox.new_id(), out_dir=sandbox.tmp / "out", check=False)
    budget = (parent / "cpu.rt_runtime_us").read_text().strip() if parent.exists() else "0"
    if budget == "0":
        assert res.returncode == 1
        assert "cpu.rt_runtime_us" in res.stderr and "parent cgroups must grant" in res.stderr
        assert cgroup_dirs(b.cgroups_path) == []


@pytest.mark.cgroup_v1
def test_weight_device_v1(sandbox: Sandbox, rt: Runtime) -> None:
    """blockIO.weightDevice goes to blkio.bfq.weight_device; a device not under bfq is
    refused by the kernel, and the error says why."""
    if "blkio" not in V1_CONTROLLERS:
        pytest.skip("needs the v1 blkio controller")
    name, major, minor = block_device()
    b = sandbox.bundle(["true"], linux={"resources": {"blockIO": {"weightDevice": [
        {"major": major, "minor": minor, "weight": 200}]}}})
    res = rt.create(b, sandbox.new_id(), out_dir=sandbox.tmp / "out", check=False)
    if "[bfq]" in Path(f"/sys/block/{name}/queue/scheduler").read_text():
        assert res.returncode == 0, res.stderr
        assert f"{major}:{minor} 200" in v1file(b.cgroups_path, "blkio", "blkio.bfq.weight_device")
    else:
        assert res.returncode == 1
        assert "weight_device" in res.stderr and "bfq" in res.stderr, res.stderr
        assert cgroup_dirs(b.cgroups_path) == []


@pytest.mark.cgroup_v1
def test_missing_v1_controllers_are_errors(sandbox: Sandbox, rt: Runtime) -> None:
    """A resource whose controller is not mounted is refused, with the reason."""
    cases = [("hugetlb", {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]}),
             ("net_cls", {"network": {"classID": 1048577}}),
             ("net_prio", {"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
             ("rdma", {"rdma": {"mlx5_0": {"hcaHandles": 1}}})]
    cases = [(c, r) for c, r in cases if c not in V1_CONTROLLERS and
             not any(c in m.split(",") for m in V1_CONTROLLERS)]
    if not cases:
        pytest.skip("every optional v1 controller is mounted here")
    for ctrl, res in cases:
        b = sandbox.bundle(["true"], linux={"resources": res})
        out = rt.create(b, sandbox.new_id(), out_dir=sandbox.tmp / "out", check=False)
        assert out.returncode != 0, ctrl
        assert f"the {ctrl} cgroup controller is not mounted" in out.stderr, out.stderr
        assert cgroup_dirs(b.cgroups_path) == []


@pytest.mark.cgroup_v1
def test_device_allowlist_and_update_v1(sandbox: Sandbox, rt: Runtime) -> None:
    """The default allow-list on top of deny-all: /dev/full reads, a disk node does not;
    `update` with device rules opens it without the disruptive deny-all write."""
    if "devices" not in V1_CONTROLLERS:
        pytest.skip("needs the v1 devices controller")
    _name, major, minor = block_device()
    a = start_agent(sandbox, linux={"devices": [
        {"path": "/dev/blk", "type": "b", "major": major, "minor": minor}]})
    listed = v1file(a.cgroup, "devices", "devices.list").splitlines()
    assert listed[0] == "c *:* m" and listed[-1] == "c 10:200 rwm"  # the defaults, in order
    assert "a *:* rwm" not in listed
    assert {"c 1:7 rwm", "c 1:3 rwm", "c 136:* rwm", "c *:* m", "b *:* m"} <= set(listed)
    assert a.ok("head -c1 /dev/full | od -An -tx1").split() == ["00"]
    code, out = a.sh("head -c1 /dev/blk")
    assert code != 0 and "not permitted" in out
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "b", "major": major, "minor": minor, "access": "r"}]
    rt.run_cmd("update", "-r", "-", a.id, input=json.dumps({"devices": rules}), check=True)
    assert f"b {major}:{minor} r" in v1file(a.cgroup, "devices", "devices.list").splitlines()
    assert a.ok("head -c1 /dev/blk >/dev/null && echo opened").strip() == "opened"
    assert a.ok("head -c1 /dev/full | wc -c").strip() == "1"
    # taken away again, it stays away: an update of something else must not bring it back
    # (the systemd driver: systemd re-applies its own DeviceAllow list then, which only grew
    # unless reset: rev21 F6)
    rt.run_cmd("update", "-r", "-", a.id, input=json.dumps({"devices": rules[:1]}), check=True)
    code, out = a.sh("head -c1 /dev/blk")
    assert code != 0 and "not permitted" in out
    rt.run_cmd("update", "--memory", str(256 << 20), a.id, check=True)
    assert f"b {major}:{minor} r" not in v1file(a.cgroup, "devices", "devices.list").splitlines()
    code, out = a.sh("head -c1 /dev/blk")
    assert code != 0 and "not permitted" in out, out


@pytest.mark.cgroup_v1
def test_no_resources_still_get_the_default_device_list_v1(sandbox: Sandbox) -> None:
    """As with runc: a config without linux.resources is not a config without device rules."""
    if "devices" not in V1_CONTROLLERS:
        pytest.skip("needs the v1 devices controller")
    out = sandbox.sh_ok("cat /sys/fs/cgroup/devices/devices.list", linux={"resources": None})
    assert "a *:* rwm" not in out.splitlines() and "c 1:5 rwm" in out.splitlines()


@pytest.mark.cgroup_v1
def test_device_rules_apply_in_the_listed_order_v1(sandbox: Sandbox) -> None:
    """The spec's rules first, in its order, then the defaults (what runtime-tools checks)."""
    if "devices" not in V1_CONTROLLERS:
        pytest.skip("needs the v1 devices controller")
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
             {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
             {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"}]
    out = sandbox.sh_ok("cat /sys/fs/cgroup/devices/devices.list",
                        linux={"resources": {"devices": rules}})
    assert out.splitlines()[:5] == ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r", "c *:* m", "b *:* m"]


# -- update, v1 -----------------------------------------------------------------------------

@pytest.mark.cgroup_v1
def test_update_json_file_and_flags_v1(sandbox: Sandbox, rt: Runtime) -> None:
    """`update --resources -` (containerd), `--resources=FILE` (podman), runc's flags."""
    if not {"memory", "cpu", "pids"} <= V1_CONTROLLERS:
        pytest.skip("needs the v1 memory, cpu and pids controllers")
    a = start_agent(sandbox, resources={"memory": {"limit": 64 * MiB, "swap": 64 * MiB},
                                        "cpu": {"quota": 50000, "period": 100000},
                                        "pids": {"limit": 42}})
    rt.run_cmd("update", "--resources", "-", a.id, check=True, input=json.dumps(
        {"memory": {"limit": 128 * MiB, "swap": 256 * MiB}, "cpu": {"quota": 20000},
         "pids": {"limit": 7}}))
    assert v1file(a.cgroup, "memory", "memory.limit_in_bytes") == str(128 * MiB)
    assert v1file(a.cgroup, "memory", "memory.memsw.limit_in_bytes") == str(256 * MiB)
    assert v1file(a.cgroup, "cpu", "cpu.cfs_quota_us") == "20000"
    assert v1file(a.cgroup, "cpu", "cpu.cfs_period_us") == "100000"  # untouched
    assert a.ok("cat /sys/fs/cgroup/pids/pids.max").strip() == "7"

    f = sandbox.tmp / "res.json"
    f.write_text(json.dumps({"cpu": {"shares": 256}}))
    rt.run_cmd("update", f"--resources={f}", a.id, check=True)
    assert v1file(a.cgroup, "cpu", "cpu.shares") == "256"
    assert v1file(a.cgroup, "pids", "pids.max") == "7"             # a file changes only what it says

    rt.run_cmd("update", "--memory", "32m", "--memory-swap", "48m", "--memory-reservation", "16m",
               "--cpu-quota", "-1", "--cpu-period", "50000", "--cpu-share", "1024",
               "--pids-limit", "9", "--cpuset-cpus", "0", a.id, check=True)
    assert v1file(a.cgroup, "memory", "memory.limit_in_bytes") == str(32 * MiB)
    assert v1file(a.cgroup, "memory", "memory.memsw.limit_in_bytes") == str(48 * MiB)
    assert v1file(a.cgroup, "memory", "memory.soft_limit_in_bytes") == str(16 * MiB)
    assert v1file(a.cgroup, "cpu", "cpu.cfs_quota_us") == "-1"
    assert v1file(a.cgroup, "cpu", "cpu.cfs_period_us") == "50000"
    assert v1file(a.cgroup, "cpu", "cpu.shares") == "1024"
    assert v1file(a.cgroup, "pids", "pids.max") == "9"
    assert a.ok("cat /sys/fs/cgroup/memory/memory.limit_in_bytes").strip() == str(32 * MiB)

    bad = rt.run_cmd("update", "-r", "-", a.id, input='{"memory": {"limit": "lots"}}')
    assert bad.returncode == 1 and "memory.limit" in bad.stderr


@pytest.mark.cgroup_v1
def test_update_check_before_update_and_stopped_v1(sandbox: Sandbox, rt: Runtime) -> None:
    if "memory" not in V1_CONTROLLERS:
        pytest.skip("needs the v1 memory controller")
    a = start_agent(sandbox, resources={"memory": {"limit": 64 * MiB}})
    res = rt.run_cmd("update", "-r", "-", a.id, input=json.dumps(
        {"memory": {"limit": 4096, "checkBeforeUpdate": True}}))
    assert res.returncode == 1 and "below current usage" in res.stderr, res.stderr
    assert v1file(a.cgroup, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    rt.run_cmd("kill", a.id, "KILL", check=True)
    rt.wait_status(a.id, "stopped")
    res = rt.run_cmd("update", "--pids-limit", "5", a.id)
    assert res.returncode == 1 and "not running" in res.stderr
    res = rt.run_cmd("update", "--pids-limit", "5", "no-such-ctr")
    assert res.returncode == 1 and "does not exist" in res.stderr


# -- freeze, stats, events, v1 --------------------------------------------------------------

@pytest.mark.cgroup_v1
def test_pause_is_the_freezer_v1(sandbox: Sandbox, rt: Runtime) -> None:
    if "freezer" not in V1_CONTROLLERS:
        pytest.skip("needs the v1 freezer controller")
    a = start_agent(sandbox)
    rt.run_cmd("pause", a.id, check=True)
    assert v1file(a.cgroup, "freezer", "freezer.state") == "FROZEN"
    assert rt.state(a.id)["status"] == "paused"
    rt.run_cmd("resume", a.id, check=True)
    assert v1file(a.cgroup, "freezer", "freezer.state") == "THAWED"
    assert rt.state(a.id)["status"] == "running"
    assert a.ok("echo alive").strip() == "alive"


@pytest.mark.cgroup_v1
def test_events_stats_v1(sandbox: Sandbox, rt: Runtime) -> None:
    """`events --stats`: one runc-shaped JSON line with the container's numbers."""
    a = start_agent(sandbox, resources={"memory": {"limit": 64 * MiB}, "pids": {"limit": 42}})
    a.ok("head -c 100000 /dev/urandom > /dev/null")
    res = rt.run_cmd("events", "--stats", a.id, check=True)
    lines = res.stdout.splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["type"] == "stats" and ev["id"] == a.id
    d = ev["data"]
    assert set(d) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert d["memory"]["usage"]["limit"] == 64 * MiB and d["memory"]["usage"]["usage"] > 0
    assert d["memory"]["raw"]["rss"] >= 0
    assert d["pids"]["limit"] == 42 and d["pids"]["current"] >= 1
    assert d["cpu"]["usage"]["total"] > 0 and len(d["cpu"]["usage"]["percpu"]) == os.cpu_count()


@pytest.mark.cgroup_v1
def test_events_oom_and_interval_v1(sandbox: Sandbox, rt: Runtime) -> None:
    """`events --interval`: stats lines on the interval, an {"type":"oom"} line when the
    memory limit kills a process; the stream ends when the container stops."""
    a = start_agent(sandbox, resources={"memory": {"limit": 16 * MiB, "swap": 16 * MiB}})
    out = sandbox.tmp / "events.out"
    with open(out, "w") as f:
        proc = rt.popen("events", "--interval", "300ms", a.id, stdout=f)
    try:
        assert wait_for(lambda: any(e["type"] == "stats" for e in events_lines(out)), timeout=15)
        code, _ = a.sh("tail /dev/zero")
        assert code == 137, "tail should have been OOM-killed"
        assert wait_for(lambda: any(e["type"] == "oom" for e in events_lines(out)), timeout=15), \
            out.read_text()
        assert "oom_kill 1" in v1file(a.cgroup, "memory", "memory.oom_control")
        rt.run_cmd("kill", a.id, "KILL", check=True)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    evs = events_lines(out)
    assert {e["id"] for e in evs} == {a.id}
    # one kill can be two notifications apart (runc's stream has them both too)
    ooms = [e for e in evs if e["type"] == "oom"]
    assert ooms and all(e == {"type": "oom", "id": a.id} for e in ooms), ooms


def test_events_refuses_a_stopped_container(sandbox: Sandbox, rt: Runtime) -> None:
    b = sandbox.bundle(["true"])
    cid = sandbox.new_id()
    rt.run(b, cid, "--keep", check=True)
    res = rt.run_cmd("events", "--stats", cid)
    assert res.returncode == 1 and f"container with id {cid} is not running" in res.stderr
    res = rt.run_cmd("events", "--interval", "0s", cid)
    assert res.returncode == 1


# -- cgroup v2: one container, in order -----------------------------------------------------

@pytest.fixture(scope="module")
def v2box(tmp_path_factory: pytest.TempPathFactory, runtime_bin: str,
          rootfs_cache: Path) -> Iterator[tuple[Agent, tuple[str, int, int]]]:
    """One agent container with every v2-relevant limit, shared by the cgroup_v2 tests."""
    if not PURE_V2:
        pytest.skip("needs a pure cgroup v2 host")
    sb = Sandbox(tmp_path_factory.mktemp("v2"), runtime_bin, rootfs_cache)
    try:
        blk = block_device()
        _name, major, minor = blk
        res = {
            "memory": {"limit": 64 * MiB, "swap": 96 * MiB, "reservation": 16 * MiB,
                       "swappiness": 10, "kernel": 32 * MiB},          # these two: warnings
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0},
            "pids": {"limit": 64},
            "network": {"classID": 42},                                 # v1 only: a warning
            "blockIO": {"weight": 500, "leafWeight": 100,               # leaf: a warning
                        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": MiB}],
                        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
            "unified": {"memory.high": str(48 * MiB), "cgroup.max.descendants": "5"},
            "devices": [{"allow": False, "access": "rwm"}],
        }
        agent = start_agent(sb, resources=res, linux={"devices": [
            {"path": "/dev/blk", "type": "b", "major": major, "minor": minor}]})
        yield agent, blk
    finally:
        if any(True for _ in sb.rt.root.iterdir()):
            leaks = sb.teardown()
        else:
            # The last test deleted the container: skip teardown's runtime calls, which
            # take long in the emulated guest, and only check and clean up.
            for proc in sb.rt.procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                for stream in (proc.stdout, proc.stderr, proc.stdin):
                    if stream is not None:
                        stream.close()
            leaks = sb.leaks()
            sb.force_cleanup()
        assert not leaks, leaks.report()


@pytest.mark.cgroup_v2
@pytest.mark.skipif(not PURE_V2, reason="needs a pure cgroup v2 host; run tests/vm/run-v2.sh")
class TestCgroupV2:
    """In order: create-time limits, devices, update (JSON, flags), freeze, stats, OOM."""

    def test_limits_from_the_host(self, v2box: tuple[Agent, tuple[str, int, int]]) -> None:
        a, (_n, major, minor) = v2box
        cg = a.cgroup
        assert v2file(cg, "memory.max") == str(64 * MiB)
        assert v2file(cg, "memory.swap.max") == str(32 * MiB)    # v1 memory+swap 96M - 64M
        assert v2file(cg, "memory.low") == str(16 * MiB)
        assert v2file(cg, "memory.high") == str(48 * MiB)        # unified, as given
        assert v2file(cg, "cgroup.max.descendants") == "5"
        assert v2file(cg, "cpu.weight") == "39"                  # shares 1024, runc's formula
        assert v2file(cg, "cpu.max") == "50000 100000"
        assert v2file(cg, "cpu.max.burst") == "1000"
        assert v2file(cg, "cpu.idle") == "0"
        assert v2file(cg, "pids.max") == "64"
        io_max = v2file(cg, "io.max")
        assert f"{major}:{minor} rbps={MiB} wbps=max riops=max wiops=100" in io_max
        if (CG / cg.lstrip("/") / "io.bfq.weight").exists():
            assert "default 500" in v2file(cg, "io.bfq.weight")
        else:
            assert "default 4950" in v2file(cg, "io.weight")     # blkio 500 -> io.weight
        if (CG / cg.lstrip("/") / "hugetlb.2MB.max").exists():
            assert v2file(cg, "hugetlb.2MB.max") == str(4 * MiB)

    def test_v1_only_knobs_are_warnings(self, v2box: tuple[Agent, tuple[str, int, int]]) -> None:
        """What v2 has no file for is logged as a warning; create still succeeded."""
        warned = "\n".join(warnings_in(v2box[0].sandbox.rt))
        for what in ("memory.kernel/kernelTCP", "memory.swappiness", "blockIO leaf weights",
                     "network.classID/priorities"):
            assert what in warned, warned

    def test_limits_from_inside(self, v2box: tuple[Agent, tuple[str, int, int]]) -> None:
        a, _ = v2box
        out = a.ok("cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max "
                   "/sys/fs/cgroup/pids.max")
        assert out.split() == ["0::/", str(64 * MiB), "50000", "100000", "64"]

    def test_device_filter(self, v2box: tuple[Agent, tuple[str, int, int]]) -> None:
        """The eBPF program: default allow-list yes, an unlisted disk no (EPERM)."""
        a, _ = v2box
        assert a.ok("head -c1 /dev/full | od -An -tx1").split() == ["00"]
        assert a.ok("echo x > /dev/null && echo ok").strip() == "ok"
        code, out = a.sh("head -c1 /dev/blk")
        assert code != 0 and "not permitted" in out, out

    def test_update_json(self, v2box: tuple[Agent, tuple[str, int, int]], rt2: Runtime) -> None:
        """update -r -: limits, a new device rule (the old program replaced), unified."""
        a, (_n, major, minor) = v2box
        rt2.run_cmd("update", "-r", "-", a.id, check=True, timeout=SLOW, input=json.dumps({
            "memory": {"limit": 128 * MiB, "swap": 192 * MiB},
            "cpu": {"quota": 20000}, "pids": {"limit": 32},
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "b", "major": major, "minor": minor, "access": "r"}],
            "unified": {"memory.high": str(100 * MiB)}}))
        cg = a.cgroup
        assert v2file(cg, "memory.max") == str(128 * MiB)
        assert v2file(cg, "memory.swap.max") == str(64 * MiB)
        assert v2file(cg, "cpu.max") == "20000 100000"            # the period stays
        assert v2file(cg, "pids.max") == "32"
        assert v2file(cg, "memory.high") == str(100 * MiB)
        # readable now: the old deny program is gone (all attached programs must allow)
        assert a.ok("head -c1 /dev/blk >/dev/null && echo opened").strip() == "opened"
        assert a.ok("head -c1 /dev/full | wc -c").strip() == "1"

    def test_update_flags(self, v2box: tuple[Agent, tuple[str, int, int]], rt2: Runtime) -> None:
        a, _ = v2box
        rt2.run_cmd("update", "--memory", "96m", "--cpu-period", "50000", "--pids-limit", "24",
                    "--cpu-share", "2048", a.id, check=True, timeout=SLOW)
        cg = a.cgroup
        assert v2file(cg, "memory.max") == str(96 * MiB)
        assert v2file(cg, "memory.swap.max") == str(96 * MiB)    # memory+swap total 192M kept
        assert v2file(cg, "cpu.max") == "20000 50000"            # the quota stays
        assert v2file(cg, "pids.max") == "24"
        assert v2file(cg, "cpu.weight") == "79"

    def test_unified_needs_its_controller(self, v2box: tuple[Agent, tuple[str, int, int]],
                                          rt2: Runtime) -> None:
        a, _ = v2box
        res = rt2.run_cmd("update", "-r", "-", a.id, timeout=SLOW,
                          input=json.dumps({"unified": {"nosuch.max": "1"}}))
        assert res.returncode == 1 and "nosuch controller is not available" in res.stderr, res.stderr

    def test_pause_resume(self, v2box: tuple[Agent, tuple[str, int, int]], rt2: Runtime) -> None:
        a, _ = v2box
        rt2.run_cmd("pause", a.id, check=True, timeout=SLOW)
        assert v2file(a.cgroup, "cgroup.freeze") == "1"
        assert "frozen 1" in v2file(a.cgroup, "cgroup.events")
        assert rt2.state(a.id)["status"] == "paused"   # derived from cgroup.freeze
        rt2.run_cmd("resume", a.id, check=True, timeout=SLOW)
        assert "frozen 0" in v2file(a.cgroup, "cgroup.events")

    def test_events_oom_and_stats(self, v2box: tuple[Agent, tuple[str, int, int]],
                                  rt2: Runtime) -> None:
        """One `events` stream: a stats line, then an oom line when `tail /dev/zero` hits
        the limit (lowered by update first); then `events --stats`."""
        a, _ = v2box
        rt2.run_cmd("update", "--memory", "24m", "--memory-swap", "24m", a.id, check=True,
                    timeout=SLOW)
        out = a.ctl.parent / "events.out"
        with open(out, "w") as f:
            proc = rt2.popen("events", "--interval", "1s", a.id, stdout=f)
        try:
            assert wait_for(lambda: any(e["type"] == "stats" for e in events_lines(out)),
                            timeout=SLOW), "no stats line"
            code, _ = a.sh("tail /dev/zero", timeout=SLOW)
            assert code == 137, "tail should have been OOM-killed"
            assert wait_for(lambda: any(e["type"] == "oom" for e in events_lines(out)),
                            timeout=60), out.read_text()
        finally:
            proc.kill()
            proc.wait()
        stats = [e for e in events_lines(out) if e["type"] == "stats"][0]["data"]
        assert stats["memory"]["usage"]["limit"] == 24 * MiB
        assert stats["pids"]["limit"] == 24 and stats["pids"]["current"] >= 1
        assert stats["cpu"]["usage"]["total"] > 0
        assert int(v2file(a.cgroup, "memory.events").split("oom_kill ")[1].split()[0]) >= 1

    def test_delete_removes_the_cgroup(self, v2box: tuple[Agent, tuple[str, int, int]],
                                       rt2: Runtime) -> None:
        a, _ = v2box
        rt2.run_cmd("delete", "--force", a.id, check=True, timeout=SLOW)
        assert not (CG / a.cgroup.lstrip("/")).exists()


@pytest.fixture
def rt2(v2box: tuple[Agent, tuple[str, int, int]]) -> Runtime:
    """The v2 box's runtime CLI (its --root and --log)."""
    return v2box[0].sandbox.rt
