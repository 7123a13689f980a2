"""The systemd cgroup driver (--systemd-cgroup): a transient scope per container.

Where systemd is not PID 1 (this build host), the driver must refuse cleanly; where it is
(the guest of tests/vm/run-systemd-host.sh), the scope, its properties, its cgroup files
and its removal are checked through systemctl and /sys/fs/cgroup."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import Runtime, cgroup_dirs, mounts_under, wait_for

HAS_SYSTEMD = os.path.isdir("/run/systemd/system")
needs_systemd = pytest.mark.skipif(not HAS_SYSTEMD, reason="systemd is not PID 1 here")
#: The systemd host is an emulated guest (tests/vm/run-systemd-host.sh): a create takes ~25 s.
SLOW = 120.0


def _refused(sandbox: Sandbox, rt: Runtime, cgroups_path: str, want: str) -> None:
    b = sandbox.bundle(["echo", "should-not-run"], linux={"cgroupsPath": cgroups_path})
    cid = sandbox.new_id()
    res = rt.run_cmd("--systemd-cgroup", "run", "--bundle", str(b.path), cid)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "should-not-run" not in res.stdout
    assert want in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr
    errors = [e for e in rt.log_entries() if e["level"] == "error"]
    assert errors and want in errors[-1]["msg"]
    assert not (rt.root / cid).exists()
    assert cgroup_dirs(b.cgroups_path) == [] and mounts_under(b.path) == []


@pytest.mark.skipif(HAS_SYSTEMD, reason="systemd runs here")
def test_systemd_driver_without_systemd(sandbox: Sandbox, rt: Runtime) -> None:
    """No systemd: one line that says so and names the way out; nothing made."""
    _refused(sandbox, rt, f"system.slice:pyrunc-test:{uuid.uuid4().hex[:12]}",
             "--systemd-cgroup: systemd is not running on this host")


@pytest.mark.parametrize("path", ["/pyrunc-test/x", "a:b", "system.slice:p:", "bad--.slice:p:n"])
def test_systemd_driver_bad_cgroups_path(sandbox: Sandbox, rt: Runtime, path: str) -> None:
    """A cgroupfs-style or malformed path is refused by name before systemd is asked."""
    _refused(sandbox, rt, path, "linux.cgroupsPath" if path != "bad--.slice:p:n" else "slice name")


def _show(unit: str, *props: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)],
                         check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.mark.cgroup_v2
@needs_systemd
def test_systemd_scope_lifecycle(sandbox: Sandbox, rt: Runtime) -> None:
    """create puts the init in <prefix>-<name>.scope with the limits as unit properties and
    files; pause, ps, update and delete go through it; nothing stays in systemd or the fs."""
    name = uuid.uuid4().hex[:12]
    unit = f"pyrunc-test-{name}.scope"
    cgdir = Path("/sys/fs/cgroup/system.slice") / unit
    b = sandbox.bundle(["sleep", "1000"], linux={
        "cgroupsPath": f"system.slice:pyrunc-test:{name}",
        "resources": {"memory": {"limit": 64 << 20}, "pids": {"limit": 42},
                      "cpu": {"quota": 50000, "period": 100000}}},
        annotations={"org.systemd.property.CollectMode": "'inactive-or-failed'"})
    cid = sandbox.new_id()
    try:
        # the container's stdio to a file: a pipe would keep communicate() waiting for it
        with open(sandbox.tmp / "container.out", "w") as out:
            rt.run_cmd("--systemd-cgroup", "run", "-d", "--bundle", str(b.path), cid, check=True,
                       timeout=SLOW, stdout=out, stderr=out)
        pid = rt.state(cid)["pid"]
        assert Path(f"/proc/{pid}/cgroup").read_text().strip() == f"0::/system.slice/{unit}"
        props = _show(unit, "ActiveState", "Delegate", "MemoryMax", "TasksMax",
                      "CPUQuotaPerSecUSec", "CollectMode", "Slice")
        assert props == {"ActiveState": "active", "Delegate": "yes", "MemoryMax": str(64 << 20),
                         "TasksMax": "42", "CPUQuotaPerSecUSec": "500ms",
                         "CollectMode": "inactive-or-failed", "Slice": "system.slice"}, props
        # the device allow-list as systemd's own: a daemon-reload re-applies the same list
        devices = subprocess.run(["systemctl", "show", unit, "--property=DevicePolicy",
                                  "--property=DeviceAllow"], check=True, capture_output=True,
                                 text=True).stdout.splitlines()
        assert "DevicePolicy=strict" in devices, devices
        for entry in ("/dev/char/1:3 rwm", "char-pts rwm", "char-* m"):
            assert any(line.startswith("DeviceAllow=") and entry in line for line in devices), devices
        assert (cgdir / "memory.max").read_text().strip() == str(64 << 20)
        assert (cgdir / "pids.max").read_text().strip() == "42"
        assert (cgdir / "cpu.max").read_text().strip() == "50000 100000"
        # the placeholder that held the scope open is gone: only the container is in it
        assert [int(p) for p in (cgdir / "cgroup.procs").read_text().split()] == [pid]
        rt.run_cmd("pause", cid, check=True, timeout=SLOW)
        assert (cgdir / "cgroup.freeze").read_text().strip() == "1"
        rt.run_cmd("resume", cid, check=True, timeout=SLOW)
        assert rt.run_cmd("ps", "--format", "json", cid, check=True, timeout=SLOW).stdout.strip() == f"[{pid}]"
        rt.run_cmd("update", "--memory", str(32 << 20), "--pids-limit", "7", cid, check=True, timeout=SLOW)
        assert _show(unit, "MemoryMax", "TasksMax") == {"MemoryMax": str(32 << 20), "TasksMax": "7"}
        assert (cgdir / "memory.max").read_text().strip() == str(32 << 20)
        rt.run_cmd("delete", "--force", cid, check=True, timeout=SLOW)
        assert _show(unit, "LoadState")["LoadState"] == "not-found"
        assert wait_for(lambda: not cgdir.exists())
    finally:
        rt.run_cmd("delete", "--force", cid, timeout=SLOW)
        subprocess.run(["systemctl", "stop", unit], capture_output=True)


@pytest.mark.cgroup_v2
@needs_systemd
def test_create_killed_before_the_init_joined_leaves_no_scope(sandbox: Sandbox, rt: Runtime) -> None:
    """SIGKILL of `create` while the scope holds only its placeholder (the init not in yet):
    the placeholder dies with the runtime, so systemd stops the empty scope; delete --force
    still succeeds and nothing stays (the placeholder used to hold the scope for ever)."""
    name = uuid.uuid4().hex[:12]
    unit = f"pyrunc-test-{name}.scope"
    cgdir = Path("/sys/fs/cgroup/system.slice") / unit
    b = sandbox.bundle(["true"], linux={"cgroupsPath": f"system.slice:pyrunc-test:{name}"})
    cid = sandbox.new_id()
    proc = rt.popen("--systemd-cgroup", "create", "--bundle", str(b.path), cid,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def only_the_placeholder() -> bool:
        """The scope's one process is the runtime's child with no fd open (the placeholder
        closes them all; the init's stage holds its sync socket)."""
        try:
            pids = (cgdir / "cgroup.procs").read_text().split()
            if len(pids) != 1:
                return False
            ppid = int(Path(f"/proc/{pids[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
            return ppid == proc.pid and not os.listdir(f"/proc/{pids[0]}/fd")
        except (OSError, ValueError):
            return False
    try:
        assert wait_for(only_the_placeholder, timeout=SLOW, interval=0.02), "no placeholder seen"
        os.killpg(proc.pid, 9)
        proc.wait()
        assert wait_for(lambda: not cgdir.exists(), timeout=60), \
            f"{cgdir} outlived the killed create: {(cgdir / 'cgroup.procs').read_text().split()}"
        rt.run_cmd("delete", "--force", cid, check=True, timeout=SLOW)
        assert _show(unit, "LoadState")["LoadState"] == "not-found"
    finally:
        rt.run_cmd("delete", "--force", cid, timeout=SLOW)
        subprocess.run(["systemctl", "stop", unit], capture_output=True)
