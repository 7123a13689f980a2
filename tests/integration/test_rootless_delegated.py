"""A rootless container in a user's delegated cgroup (systemd's user@UID.service), as a desktop
user's runtime gets it: the user manager owns /sys/fs/cgroup/user.slice/user-UID.slice/
user@UID.service/... with memory and pids delegated, and the runtime is started from a scope in
it (`systemd-run --user --scope`). The container must land below user@UID.service, with its
memory.max and pids.max applied, and pause/resume must freeze and thaw it.

Runs only where such a cgroup can exist: systemd as PID 1 on a pure cgroup v2 host (the guest of
tests/vm/run-systemd-host.sh); elsewhere every test skips and says what is missing. The test user
is the session's (tests/rootless_user.py); its user manager is stopped afterwards, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from rootless_user import RootlessUser, rootless_user  # noqa: F401  (the shared test user)

from .helpers import PATH_ENV, copy_rootfs, default_config, deep_merge

pytestmark = pytest.mark.delegated_cgroup

#: Each runtime call in the emulated (TCG) guest takes seconds; systemd-run adds a D-Bus round trip.
SLOW = 120.0
MEM = 64 << 20
PIDS = 32
CG = Path("/sys/fs/cgroup")
HOST_PATH = PATH_ENV.split("=", 1)[1]


def _missing() -> str | None:
    """Why this host cannot give a user a delegated cgroup, or None."""
    if os.geteuid() != 0:
        return "needs root (it creates a user)"
    if not (CG / "cgroup.controllers").exists():
        return "needs a pure cgroup v2 host (user@.service delegation is v2 only)"
    if not os.path.isdir("/run/systemd/system"):
        return "needs systemd as PID 1 (its user manager delegates the cgroup): tests/vm/run-systemd-host.sh"
    tools = [t for t in ("systemctl", "systemd-run", "setpriv", "useradd") if shutil.which(t, path=HOST_PATH) is None]
    if tools:
        return f"missing {', '.join(tools)}"
    return None


@pytest.fixture(scope="module")
def delegated(rootless_user: RootlessUser) -> Iterator[tuple[RootlessUser, Path]]:
    """The test user with its systemd user manager running; (user, its user@UID.service cgroup)."""
    why = _missing()
    if why:
        pytest.skip(f"no delegated cgroup here: {why}")
    user = rootless_user
    unit = f"user@{user.uid}.service"
    try:
        res = subprocess.run(["systemctl", "start", unit], capture_output=True, text=True, timeout=SLOW)
        if res.returncode != 0:
            log = subprocess.run(["journalctl", "-b", "-n", "30", "--no-pager", "-u", unit],
                                 capture_output=True, text=True).stdout
            pytest.fail(f"systemctl start {unit}: {res.stderr.strip()}\n{log}", pytrace=False)
        top = CG / f"user.slice/user-{user.uid}.slice/{unit}"
        ctrls = (top / "cgroup.controllers").read_text().split()
        if top.stat().st_uid != user.uid or not {"memory", "pids"} <= set(ctrls):
            pytest.skip(f"{unit} is not delegated memory+pids here (owner uid {top.stat().st_uid}, "
                        f"controllers {ctrls})")
        yield user, top
    finally:
        # the manager, its runtime dir (/run/user/UID) and whatever it still runs
        subprocess.run(["systemctl", "stop", unit, f"user-runtime-dir@{user.uid}.service"],
                       capture_output=True, timeout=SLOW)


class AsUser:
    """The runtime run as the user, with the environment a login gives (XDG_RUNTIME_DIR, the bus)."""

    def __init__(self, user: RootlessUser, binary: str) -> None:
        self.user, self.binary = user, binary
        run_dir = f"/run/user/{user.uid}"
        self.root = f"{run_dir}/pyrunc-test-root"
        self.env = {"XDG_RUNTIME_DIR": run_dir, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run_dir}/bus"}

    def run(self, *argv: str, scope: bool = False, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        """`RUNTIME --root R ARGV` as the user; scope: inside a new scope of its user manager."""
        cmd = [self.binary, "--root", self.root, *argv]
        if scope:
            cmd = ["systemd-run", "--user", "--scope", "--quiet", "--collect", "--", *cmd]
        kw.setdefault("capture_output", "stdout" not in kw)
        res = self.user.run(cmd, env=self.env, timeout=SLOW, stdin=subprocess.DEVNULL, **kw)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self.run("state", cid).stdout)  # type: ignore[no-any-return]


def _bundle(user: RootlessUser, rootfs_cache: Path, cgroups_path: str) -> Path:
    """A rootless bundle in the user's home: uid/gid 0 is the user, the rootfs theirs."""
    b = user.home / f"bundle-{uuid.uuid4().hex[:8]}"
    b.mkdir()
    copy_rootfs(rootfs_cache, b / "rootfs")
    cfg = default_config(["sleep", "1000"], cgroups_path, "rootless-delegated")
    deep_merge(cfg, {"linux": {
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup", "user", "network")],
        "uidMappings": [{"containerID": 0, "hostID": user.uid, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": user.gid, "size": 1}],
        "resources": {"memory": {"limit": MEM}, "pids": {"limit": PIDS}}}})
    for m in cfg["mounts"]:  # gid 5 (tty) is not mapped: devpts refuses it
        m["options"] = [o for o in m.get("options", []) if o != "gid=5"]
    (b / "config.json").write_text(json.dumps(cfg))
    user.chown(b)
    return b


def _events(cgdir: Path) -> dict[str, str]:
    return dict(line.split() for line in (cgdir / "cgroup.events").read_text().splitlines())


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {what}")
        time.sleep(0.1)


def test_rootless_container_in_delegated_cgroup(delegated: tuple[RootlessUser, Path], runtime_bin: str,
                                                rootfs_cache: Path) -> None:
    """Placed below user@UID.service, limited, frozen and thawed, and gone after delete."""
    user, top = delegated
    rt = AsUser(user, runtime_bin)
    if rt.run("--version", check=False).returncode != 0:
        pytest.fail(f"{runtime_bin} cannot be run by an unprivileged user (a 0700 dir on its path?)",
                    pytrace=False)
    name = f"pyrunc-rl-{uuid.uuid4().hex[:8]}"
    b = _bundle(user, rootfs_cache, name)
    cid = name
    out = open(user.home / "container.out", "w")
    try:
        # the container's stdio to a file: a pipe would keep run waiting for the detached init
        res = rt.run("run", "-d", "--bundle", str(b), cid, scope=True, check=False, stdout=out, stderr=out)
        assert res.returncode == 0, (user.home / "container.out").read_text()
        pid = rt.state(cid)["pid"]
        cgpath = Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")
        cgdir = CG / cgpath.lstrip("/")
        # below the user's manager, a sibling of the scope the runtime ran in, named by cgroupsPath
        assert cgdir.is_relative_to(top) and cgdir.name == name, cgpath
        assert cgdir.stat().st_uid == user.uid
        assert set(int(x) for x in Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:4]) \
            == {user.uid}
        assert (cgdir / "memory.max").read_text().strip() == str(MEM)
        assert (cgdir / "pids.max").read_text().strip() == str(PIDS)
        # exec from a scope of the user manager too: a process outside the delegated tree (this
        # runuser, in a root-owned cgroup) may not move itself into it (the common ancestor's
        # cgroup.procs is root's), so its exec would run outside the container's cgroup.
        inside = rt.run("exec", cid, "cat", "/proc/self/cgroup", "/sys/fs/cgroup/memory.max",
                        "/sys/fs/cgroup/pids.max", scope=True).stdout.split()
        assert inside == ["0::/", str(MEM), str(PIDS)]
        # the pids limit holds: 40 more sleeps cannot all start
        res = rt.run("exec", cid, "sh", "-c", "for i in $(seq 40); do sleep 100 >/dev/null 2>&1 & done",
                     scope=True, check=False)
        assert int((cgdir / "pids.events").read_text().split()[1]) > 0, res.stderr
        assert int((cgdir / "pids.current").read_text()) <= PIDS

        rt.run("pause", cid)
        assert rt.state(cid)["status"] == "paused"
        _wait(lambda: _events(cgdir)["frozen"] == "1", 30, "the cgroup to be frozen")
        assert (cgdir / "cgroup.freeze").read_text().strip() == "1"
        rt.run("resume", cid)
        assert rt.state(cid)["status"] == "running"
        _wait(lambda: _events(cgdir)["frozen"] == "0", 30, "the cgroup to thaw")

        rt.run("kill", cid, "KILL")
        _wait(lambda: rt.state(cid)["status"] == "stopped", 30, "the container to stop")
        rt.run("delete", cid)
        assert not cgdir.exists()
        assert not Path(rt.root, cid).exists()
    finally:
        out.close()
        rt.run("delete", "--force", cid, check=False)


def _user_show(rt: AsUser, unit: str, *props: str) -> dict[str, str]:
    res = rt.user.run(["systemctl", "--user", "show", unit, *(f"--property={p}" for p in props)],
                      env=rt.env, timeout=SLOW)
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def test_rootless_systemd_driver_uses_the_user_manager(delegated: tuple[RootlessUser, Path], runtime_bin: str,
                                                       rootfs_cache: Path) -> None:
    """--systemd-cgroup as the user: a transient scope of the user's own manager (over its
    session bus), in user.slice below user@UID.service, with the limits as unit properties and
    files; delete stops the unit and removes the cgroup. (podman rootless on a systemd host
    calls the runtime so: cgroup_manager=systemd, cgroupsPath user.slice:libpod:<id>.)"""
    user, top = delegated
    rt = AsUser(user, runtime_bin)
    name = uuid.uuid4().hex[:12]
    unit = f"pyrunc-rl-{name}.scope"
    b = _bundle(user, rootfs_cache, f"user.slice:pyrunc-rl:{name}")
    cid = f"pyrunc-rl-sd-{name}"
    cgdir = top / "user.slice" / unit
    out = open(user.home / "container-sd.out", "w")
    try:
        res = rt.run("--systemd-cgroup", "run", "-d", "--bundle", str(b), cid, scope=True, check=False,
                     stdout=out, stderr=out)
        assert res.returncode == 0, (user.home / "container-sd.out").read_text()
        pid = rt.state(cid)["pid"]
        assert Path(f"/proc/{pid}/cgroup").read_text().strip() == f"0::/{cgdir.relative_to(CG)}"
        props = _user_show(rt, unit, "ActiveState", "Delegate", "MemoryMax", "TasksMax", "Slice")
        assert props == {"ActiveState": "active", "Delegate": "yes", "MemoryMax": str(MEM),
                         "TasksMax": str(PIDS), "Slice": "user.slice"}, props
        assert (cgdir / "memory.max").read_text().strip() == str(MEM)
        assert (cgdir / "pids.max").read_text().strip() == str(PIDS)
        rt.run("pause", cid)
        _wait(lambda: _events(cgdir)["frozen"] == "1", 30, "the scope to be frozen")
        rt.run("resume", cid)
        _wait(lambda: _events(cgdir)["frozen"] == "0", 30, "the scope to thaw")
        rt.run("--systemd-cgroup", "delete", "--force", cid)
        assert not cgdir.exists()
        assert _user_show(rt, unit, "LoadState")["LoadState"] == "not-found"
    finally:
        out.close()
        rt.run("--systemd-cgroup", "delete", "--force", cid, check=False)
