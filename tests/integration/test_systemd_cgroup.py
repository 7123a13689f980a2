"""The systemd cgroup driver (--systemd-cgroup): a transient scope per container.

Where systemd is not PID 1 (this build host), the driver must refuse cleanly; where it is
(the guests of tests/vm/run-systemd-host.sh, pure v2, and run-systemd-hybrid.sh, v1 + unified),
the scope, its properties, its cgroup files (v1: the scope's directory in each hierarchy)
and its removal are checked through systemctl and /sys/fs/cgroup."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import Runtime, cgroup_dirs, mounts_under, wait_for

HAS_SYSTEMD = os.path.isdir("/run/systemd/system")
CG = Path("/sys/fs/cgroup")
V2 = (CG / "cgroup.controllers").exists()   # else v1 or hybrid: runc's legacy manager
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


@pytest.mark.parametrize("key, value", [("Conflicts", "['ssh.service']"),
                                        ("PropagatesStopTo", "['ssh.service']"),
                                        ("SuccessAction", "'reboot-force'"),
                                        ("Slice", "'user.slice'")])
def test_systemd_properties_beyond_the_unit_are_refused(sandbox: Sandbox, rt: Runtime,
                                                         key: str, value: str) -> None:
    """An org.systemd.property annotation that would act on other units or the host (stop a
    service with the container, reboot at delete, move the unit) is refused by name before
    systemd is asked (runc passes them on: rev21 F1)."""
    b = sandbox.bundle(["echo", "should-not-run"],
                       linux={"cgroupsPath": f"system.slice:pyrunc-test:{uuid.uuid4().hex[:12]}"},
                       annotations={f"org.systemd.property.{key}": value})
    cid = sandbox.new_id()
    res = rt.run_cmd("--systemd-cgroup", "run", "--bundle", str(b.path), cid, timeout=SLOW)
    assert res.returncode == 1 and "should-not-run" not in res.stdout, res
    assert f"annotation org.systemd.property.{key}: the systemd property {key} acts on other " \
           "units or the host" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (rt.root / cid).exists()


def _limit_files(scope: str) -> dict[str, Path]:
    """The scope's memory limit, pids limit, cpu quota/period, freezer and process files."""
    if V2:
        d = CG / scope.lstrip("/")
        return {"memory": d / "memory.max", "pids": d / "pids.max", "cpu": d / "cpu.max",
                "freeze": d / "cgroup.freeze", "procs": d / "cgroup.procs"}
    return {"memory": CG / "memory" / scope.lstrip("/") / "memory.limit_in_bytes",
            "pids": CG / "pids" / scope.lstrip("/") / "pids.max",
            "quota": CG / "cpu" / scope.lstrip("/") / "cpu.cfs_quota_us",
            "period": CG / "cpu" / scope.lstrip("/") / "cpu.cfs_period_us",
            "freeze": CG / "freezer" / scope.lstrip("/") / "freezer.state",
            "procs": CG / "systemd" / scope.lstrip("/") / "cgroup.procs"}


def _read(p: Path) -> str:
    return p.read_text().strip()


def _show(unit: str, *props: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)],
                         check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@needs_systemd
def test_systemd_scope_lifecycle(sandbox: Sandbox, rt: Runtime) -> None:
    """create puts the init in <prefix>-<name>.scope with the limits as unit properties and
    files; pause, ps, update and delete go through it; nothing stays in systemd or the fs.
    On v1/hybrid the scope's path is the same in every hierarchy (systemd's and ours), the
    properties runc's legacy ones (MemoryLimit), pause the v1 freezer."""
    name = uuid.uuid4().hex[:12]
    unit = f"pyrunc-test-{name}.scope"
    scope = f"/system.slice/{unit}"
    files = _limit_files(scope)
    mem = "MemoryMax" if V2 else "MemoryLimit"
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
        lines = Path(f"/proc/{pid}/cgroup").read_text().split()
        if V2:
            assert lines == [f"0::{scope}"]
        else:  # every hierarchy: name=systemd, the controllers, a hybrid host's unified (0::)
            assert len(lines) >= 10 and all(line.endswith(f":{scope}") for line in lines), lines
            assert any(":name=systemd:" in line for line in lines)
            assert len(cgroup_dirs(scope)) == len(lines), cgroup_dirs(scope)
        props = _show(unit, "ActiveState", "Delegate", mem, "TasksMax",
                      "CPUQuotaPerSecUSec", "CollectMode", "Slice")
        assert props == {"ActiveState": "active", "Delegate": "yes", mem: str(64 << 20),
                         "TasksMax": "42", "CPUQuotaPerSecUSec": "500ms",
                         "CollectMode": "inactive-or-failed", "Slice": "system.slice"}, props
        # the device allow-list as systemd's own: a daemon-reload re-applies the same list
        devices = subprocess.run(["systemctl", "show", unit, "--property=DevicePolicy",
                                  "--property=DeviceAllow"], check=True, capture_output=True,
                                 text=True).stdout.splitlines()
        assert "DevicePolicy=strict" in devices, devices
        for entry in ("/dev/char/1:3 rwm", "char-pts rwm", "char-* m"):
            assert any(line.startswith("DeviceAllow=") and entry in line for line in devices), devices
        assert _read(files["memory"]) == str(64 << 20)
        assert _read(files["pids"]) == "42"
        if V2:
            assert _read(files["cpu"]) == "50000 100000"
        else:
            assert (_read(files["quota"]), _read(files["period"])) == ("50000", "100000")
        # the placeholder that held the scope open is gone: only the container is in it
        assert [int(p) for p in _read(files["procs"]).split()] == [pid]
        rt.run_cmd("pause", cid, check=True, timeout=SLOW)
        assert _read(files["freeze"]) == ("1" if V2 else "FROZEN")
        rt.run_cmd("resume", cid, check=True, timeout=SLOW)
        assert _read(files["freeze"]) == ("0" if V2 else "THAWED")
        assert rt.run_cmd("ps", "--format", "json", cid, check=True, timeout=SLOW).stdout.strip() == f"[{pid}]"
        rt.run_cmd("update", "--memory", str(32 << 20), "--pids-limit", "7", cid, check=True, timeout=SLOW)
        assert _show(unit, mem, "TasksMax") == {mem: str(32 << 20), "TasksMax": "7"}
        assert _read(files["memory"]) == str(32 << 20)
        assert _read(files["pids"]) == "7"
        if not V2:  # systemd rewrote the cpu files from its properties: still the config's
            assert (_read(files["quota"]), _read(files["period"])) == ("50000", "100000")
        rt.run_cmd("delete", "--force", cid, check=True, timeout=SLOW)
        assert _show(unit, "LoadState")["LoadState"] == "not-found"
        # systemd's directories and ours (v1: cpuset, freezer, ...): none is left
        assert wait_for(lambda: cgroup_dirs(scope) == []), cgroup_dirs(scope)
    finally:
        rt.run_cmd("delete", "--force", cid, timeout=SLOW)
        subprocess.run(["systemctl", "stop", unit], capture_output=True)


@needs_systemd
def test_create_killed_before_the_init_joined_leaves_no_scope(sandbox: Sandbox, rt: Runtime) -> None:
    """SIGKILL of `create` while the scope holds only its placeholder (the init not in yet):
    the placeholder dies with the runtime, so systemd stops the empty scope; delete --force
    still succeeds and nothing stays (the placeholder used to hold the scope for ever)."""
    name = uuid.uuid4().hex[:12]
    unit = f"pyrunc-test-{name}.scope"
    scope = f"/system.slice/{unit}"
    procs = _limit_files(scope)["procs"]  # v1: the name=systemd hierarchy's (systemd's own)
    cgdir = procs.parent
    b = sandbox.bundle(["true"], linux={"cgroupsPath": f"system.slice:pyrunc-test:{name}"})
    cid = sandbox.new_id()
    proc = rt.popen("--systemd-cgroup", "create", "--bundle", str(b.path), cid,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def only_the_placeholder() -> bool:
        """The scope's one process is the runtime's child with no fd open (the placeholder
        closes them all; the init's stage holds its sync socket)."""
        try:
            pids = procs.read_text().split()
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
        assert cgroup_dirs(scope) == []  # v1: the hierarchies systemd does not manage too
    finally:
        rt.run_cmd("delete", "--force", cid, timeout=SLOW)
        subprocess.run(["systemctl", "stop", unit], capture_output=True)


@needs_systemd
def test_a_unit_systemd_already_runs_is_refused_and_left_alone(sandbox: Sandbox,
                                                               rt: Runtime) -> None:
    """A service that stays active with no process (RemainAfterExit) in a slice systemd made
    for it: neither that slice nor its parent has a unit file, so StartTransientUnit would
    take either over, and the container's delete would stop it with the service. Both are
    refused, in one line, and the service runs on (rev20b F1)."""
    name = f"pyrunctest{uuid.uuid4().hex[:8]}"
    inner = f"{name}-inner.slice"
    service = f"{name}-victim.service"
    subprocess.run(["systemd-run", "--quiet", f"--unit={service}", f"--slice={inner}",
                    "--remain-after-exit", "true"], check=True, timeout=SLOW)
    try:
        assert wait_for(lambda: _show(service, "ActiveState")["ActiveState"] == "active",
                        timeout=SLOW)
        for path, unit in ((f"-.slice:pyrunc:{name}.slice", f"{name}.slice"),
                           (f"{name}.slice:pyrunc:{inner}", inner)):
            b = sandbox.bundle(["echo", "should-not-run"], linux={"cgroupsPath": path})
            cid = sandbox.new_id()
            res = rt.run_cmd("--systemd-cgroup", "run", "--bundle", str(b.path), cid,
                             timeout=SLOW)
            assert res.returncode == 1 and "should-not-run" not in res.stdout, res
            assert f"systemd unit {unit} already exists (active)" in res.stderr, res.stderr
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr
            assert not (rt.root / cid).exists()
            assert _show(unit, "ActiveState")["ActiveState"] == "active"
            assert _show(service, "ActiveState")["ActiveState"] == "active"
    finally:
        subprocess.run(["systemctl", "stop", service, inner, f"{name}.slice"],
                       capture_output=True, timeout=SLOW)


@needs_systemd
def test_without_a_bus_daemon_root_talks_to_systemd_directly(sandbox: Sandbox, rt: Runtime,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """No system bus at the address (dbus-daemon not installed, dbus is only a Recommends of
    systemd, or down): as runc, root falls back to systemd's private socket, and create
    (StartTransientUnit and its job signal), update (SetUnitProperties) and delete (StopUnit)
    all work over it."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    name = uuid.uuid4().hex[:12]
    unit = f"pyrunc-test-{name}.scope"
    scope = f"/system.slice/{unit}"
    b = sandbox.bundle(["sleep", "1000"], linux={"cgroupsPath": f"system.slice:pyrunc-test:{name}",
                                                 "resources": {"pids": {"limit": 42}}})
    cid = sandbox.new_id()
    try:
        with open(sandbox.tmp / "container.out", "w") as out:
            rt.run_cmd("--systemd-cgroup", "run", "-d", "--bundle", str(b.path), cid, check=True,
                       timeout=SLOW, stdout=out, stderr=out)
        pid = rt.state(cid)["pid"]
        assert f":{scope}" in Path(f"/proc/{pid}/cgroup").read_text()
        assert _show(unit, "ActiveState", "TasksMax") == {"ActiveState": "active", "TasksMax": "42"}
        rt.run_cmd("update", "--pids-limit", "7", cid, check=True, timeout=SLOW)
        assert _show(unit, "TasksMax") == {"TasksMax": "7"}
        rt.run_cmd("delete", "--force", cid, check=True, timeout=SLOW)
        assert _show(unit, "LoadState")["LoadState"] == "not-found"
        assert wait_for(lambda: cgroup_dirs(scope) == []), cgroup_dirs(scope)
    finally:
        rt.run_cmd("delete", "--force", cid, timeout=SLOW)
        subprocess.run(["systemctl", "stop", unit], capture_output=True)


@needs_systemd
def test_a_unit_started_again_by_another_is_left_alone(sandbox: Sandbox) -> None:
    """A container without a pid namespace of its own whose scope was stopped (systemctl
    stop) is stopped; another container then gets a unit of the same name (the same
    cgroupsPath, another state root). The first one's kill --all and delete must not touch
    it: they act on the unit of the first create only (its InvocationID), where runc 1.1.5
    SIGKILLs the second container and stops its unit (rev21 F12). Its ps lists nothing."""
    name = uuid.uuid4().hex[:12]
    unit = f"pyrunc-test-{name}.scope"
    linux = {"cgroupsPath": f"system.slice:pyrunc-test:{name}",
             "namespaces": [{"type": t} for t in ("network", "ipc", "uts", "mount")]}
    rts = [sandbox.rt, Runtime(sandbox.rt.binary, sandbox.tmp / "root2", sandbox.tmp / "rt2.log",
                               sandbox.id)]
    ids = [sandbox.new_id(), sandbox.new_id()]
    try:
        for rt, cid in zip(rts, ids):
            b = sandbox.bundle(["sleep", "1000"], linux=linux)
            with open(sandbox.tmp / f"{cid}.out", "w") as out:
                rt.run_cmd("--systemd-cgroup", "run", "-d", "--bundle", str(b.path), cid,
                           check=True, timeout=SLOW, stdout=out, stderr=out)
            if rt is rts[0]:
                subprocess.run(["systemctl", "stop", unit], check=True, timeout=SLOW)
                assert wait_for(lambda: rt.state(cid)["status"] == "stopped", timeout=SLOW)
        first, second = rts
        pid = second.state(ids[1])["pid"]
        before = _show(unit, "InvocationID", "ActiveState")
        assert before["ActiveState"] == "active"
        listed = first.run_cmd("ps", "--format", "json", ids[0], check=True, timeout=SLOW).stdout
        assert json.loads(listed) == [], f"ps of the first lists the second's: {listed}"
        res = first.run_cmd("kill", "--all", ids[0], "KILL", timeout=SLOW)
        assert res.returncode == 0, res.stderr
        assert second.state(ids[1])["status"] == "running" and Path(f"/proc/{pid}").exists()
        res = first.run_cmd("--systemd-cgroup", "delete", ids[0], timeout=SLOW)
        assert res.returncode == 0, res.stderr
        assert not (first.root / ids[0]).exists()
        assert second.state(ids[1])["status"] == "running" and Path(f"/proc/{pid}").exists()
        assert _show(unit, "InvocationID", "ActiveState") == before
        said = [e["msg"] for e in first.log_entries() if e["level"] == "warning"]
        assert len([m for m in said if f"{unit} was started again" in m or
                    "was started again since its create" in m]) == 2, said
        second.run_cmd("--systemd-cgroup", "delete", "--force", ids[1], check=True, timeout=SLOW)
        assert _show(unit, "LoadState")["LoadState"] == "not-found"
    finally:
        for rt, cid in zip(rts, ids):
            rt.run_cmd("--systemd-cgroup", "delete", "--force", cid, timeout=SLOW)
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=SLOW)
