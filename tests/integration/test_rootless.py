"""Rootless containers: the runtime run by an unprivileged user on a bundle it owns.

A throwaway user (tests/rootless_user.py) with /etc/subuid and /etc/subgid ranges runs the
runtime under setpriv; each test has its own work dir and `--root` in the user's
XDG_RUNTIME_DIR, and teardown deletes what is left and checks no process of the user's
ids survives. On this hybrid (v1) host the user has no cgroup it may write, so the
containers run without one; `test_delegated_cgroup_v2` needs a pure cgroup v2 host (the
systemd guest) and gives the user a delegated subtree the way systemd does (chown).

Against runc: PYRUNC_BIN=/usr/sbin/runc ... -m 'not pyrunc_only' (runc_bug: strict xfail).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rootless_user import RootlessUser, other_rootless_user, rootless_user  # noqa: F401

from .conftest import Sandbox
from .helpers import copy_rootfs, reap_children, wait_for, work_base

FOREVER = ["sleep", "1000"]


def _is_runc(binary: str) -> bool:
    return os.path.basename(os.path.realpath(binary)) == "runc"


class RL:
    """One test's rootless sandbox: bundles owned by the user, its own --root."""

    def __init__(self, user: RootlessUser, binary: str, rootfs_cache: Path) -> None:
        self.user = user
        self.binary = binary
        self.cache = rootfs_cache
        self.tmp = work_base() / f"pyrunc-rl-{uuid.uuid4().hex[:12]}"
        self.tmp.mkdir(mode=0o755)
        os.chown(self.tmp, user.uid, user.gid)
        self.root = user.runtime_dir / f"root-{self.tmp.name}"
        self.ids: list[str] = []
        self.n = 0

    def bundle(self, args: list[str], *, mappings: str = "own", **patch: Any) -> Path:
        """A `spec --rootless` bundle (made by the runtime under test, as the user) running
        `args`; mappings "own" (the user's id only) or "ranges" (+ its subordinate ids)."""
        path = self.tmp / f"b{self.n}"
        self.n += 1
        path.mkdir()
        copy_rootfs(self.cache, path / "rootfs")
        self.user.chown(path)
        res = self.user.run([self.binary, "spec", "--rootless"], cwd=path)
        assert res.returncode == 0, res.stderr
        cfg = json.loads((path / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        cfg["root"]["readonly"] = False
        if mappings == "ranges":
            u, g = self.user.subuid, self.user.subgid
            cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": self.user.uid, "size": 1},
                                           {"containerID": 1, "hostID": u[0], "size": u[1]}]
            cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": self.user.gid, "size": 1},
                                           {"containerID": 1, "hostID": g[0], "size": g[1]}]
        for key, value in patch.items():
            section, _, name = key.partition("__")
            if name:
                if value is None:
                    cfg[section].pop(name, None)
                else:
                    cfg[section][name] = value
            else:
                cfg[section] = value
        self.write(path, cfg)
        return path

    def write(self, path: Path, cfg: dict[str, Any]) -> None:
        (path / "config.json").write_text(json.dumps(cfg))
        os.chown(path / "config.json", self.user.uid, self.user.gid)

    def config(self, path: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((path / "config.json").read_text())
        return data

    def new_id(self) -> str:
        cid = f"rl-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def rt(self, *args: str, user: RootlessUser | None = None, root: Path | None = None,
           cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The runtime as the user (or `user`), with this test's --root (or `root`)."""
        who = user or self.user
        # Files, not pipes: a created container's init inherits them and keeps them open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            res = who.run([self.binary, "--root", str(root or self.root), *args], cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                          capture_output=False)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(res.args, res.returncode, out.read(), err.read())

    def ok(self, *args: str, **kw: Any) -> str:
        res = self.rt(*args, **kw)
        assert res.returncode == 0, f"{args} exited {res.returncode}: {res.stderr!r}"
        return res.stdout

    def state(self, cid: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ok("state", cid))
        return data

    def created(self, args: list[str] = FOREVER, **kw: Any) -> tuple[str, Path]:
        b = self.bundle(args, **kw)
        cid = self.new_id()
        self.ok("create", "--bundle", str(b), cid)
        return cid, b

    def running(self, args: list[str] = FOREVER, **kw: Any) -> tuple[str, int]:
        cid, _b = self.created(args, **kw)
        self.ok("start", cid)
        st = self.state(cid)
        assert st["status"] == "running", st
        return cid, int(st["pid"])

    def cleanup(self) -> list[str]:
        """Delete what is left; return what leaked (processes, state)."""
        for cid in self.ids:
            self.rt("delete", "--force", cid)
        leaks = []
        if self.root.exists() and any(p.is_dir() for p in self.root.iterdir()):
            leaks.append(f"state left in {self.root}: {os.listdir(self.root)}")
        reap_children()  # inits reparented to us (the suite is a subreaper): no zombies
        wait_for(lambda: not self.user.pids(), timeout=5)
        if self.user.pids():
            leaks.append(f"processes left: {self.user.pids()}")
            for pid in self.user.pids():  # the next test must not inherit them
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
            reap_children()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return leaks


@pytest.fixture
def rl(rootless_user: RootlessUser, runtime_bin: str, rootfs_cache: Path) -> Iterator[RL]:
    if not shutil.which("newuidmap"):
        pytest.skip("newuidmap/newgidmap (the uidmap package) are not installed")
    sb = RL(rootless_user, runtime_bin, rootfs_cache)
    leaks: list[str] = []
    try:
        yield sb
    finally:
        leaks = sb.cleanup()
    assert not leaks, leaks


def _status_ids(pid: int) -> tuple[list[int], list[int]]:
    uids = gids = [-1]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            uids = [int(x) for x in line.split()[1:]]
        elif line.startswith("Gid:"):
            gids = [int(x) for x in line.split()[1:]]
    return uids, gids


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


# -- run, ids --------------------------------------------------------------------------


def test_run_as_the_user_with_the_default_root(rl: RL) -> None:
    """`run` by the user on its own bundle, without --root: the state goes to
    $XDG_RUNTIME_DIR/<runtime>, private to the user; root inside is the user outside."""
    b = rl.bundle(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map"])
    cid = rl.new_id()
    res = rl.user.run([rl.binary, "run", "--bundle", str(b), cid], stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    lines = [ln.split() for ln in res.stdout.splitlines()]
    assert lines == [["0"], ["0"], ["0", str(rl.user.uid), "1"], ["0", str(rl.user.gid), "1"]]
    root = rl.user.runtime_dir / ("runc" if _is_runc(rl.binary) else "pyrunc")
    st = root.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode) & 0o777) == (rl.user.uid, 0o700)
    assert st.st_mode & stat.S_ISVTX  # sticky: XDG_RUNTIME_DIR cleaners leave it alone
    assert not (root / cid).exists()  # run (not --keep) deleted it


@pytest.mark.pyrunc_only
def test_without_xdg_runtime_dir_the_error_says_what_to_do(rl: RL) -> None:
    b = rl.bundle(["true"])
    res = rl.user.run([rl.binary, "run", "--bundle", str(b), rl.new_id()],
                      env={"XDG_RUNTIME_DIR": ""}, stdin=subprocess.DEVNULL)
    line = _one_line_error(res)
    assert "/run/pyrunc" in line and "XDG_RUNTIME_DIR" in line, line


@pytest.mark.pyrunc_only
def test_a_relative_xdg_runtime_dir_is_ignored(rl: RL) -> None:
    """XDG_RUNTIME_DIR=rel is invalid (XDG base directory spec): the same error as without
    one, and no state in the cwd (before: ./rel/pyrunc, lost to a `list` from elsewhere)."""
    b = rl.bundle(["true"])
    res = rl.user.run([rl.binary, "run", "--bundle", str(b), rl.new_id()], cwd=rl.tmp,
                      env={"XDG_RUNTIME_DIR": "rel"}, stdin=subprocess.DEVNULL)
    line = _one_line_error(res)
    assert "/run/pyrunc" in line and "XDG_RUNTIME_DIR" in line, line
    assert not (rl.tmp / "rel").exists()


def test_ranges_through_newuidmap(rl: RL) -> None:
    """Several ranges (the user's id and its /etc/subuid range): the container's uid 1000 is
    the user's subordinate id start+999 on the host, as the kernel sees it."""
    cid, pid = rl.running(FOREVER, mappings="ranges",
                          process__user={"uid": 1000, "gid": 1000})
    uids, gids = _status_ids(pid)
    assert uids == [rl.user.subuid[0] + 999] * 4
    assert gids == [rl.user.subgid[0] + 999] * 4
    maps = Path(f"/proc/{pid}/uid_map").read_text().split()
    assert maps == ["0", str(rl.user.uid), "1", "1", str(rl.user.subuid[0]), str(rl.user.subuid[1])]
    out = rl.ok("exec", cid, "id")
    assert out.startswith("uid=1000(user) gid=1000(user)"), out  # the rootfs' /etc/passwd
    # the user's runtime signals its subordinate ids' processes (it owns their namespace)
    rl.ok("kill", cid, "KILL")
    assert wait_for(lambda: rl.state(cid)["status"] == "stopped", timeout=10)


def test_own_id_only_denies_setgroups(rl: RL) -> None:
    """With only the user's own gid mapped the kernel needs setgroups denied first."""
    cid, pid = rl.running()
    assert Path(f"/proc/{pid}/setgroups").read_text().strip() == "deny"
    assert _status_ids(pid)[0] == [rl.user.uid] * 4


def test_mappings_outside_the_users_ranges_are_refused(rl: RL) -> None:
    """A range the user was not given in /etc/subuid: newuidmap refuses, one line, exit 1."""
    b = rl.bundle(["true"], mappings="ranges")
    cfg = rl.config(b)
    cfg["linux"]["uidMappings"][1]["hostID"] = 1  # not the user's
    rl.write(b, cfg)
    cid = rl.new_id()
    res = rl.rt("run", "--bundle", str(b), cid)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    if not _is_runc(rl.binary):
        assert "newuidmap" in _one_line_error(res)
    assert not (rl.root / cid).exists()


def test_spec_rootless_is_runcs(rl: RL) -> None:
    """`spec --rootless` as the user: the parts that make it rootless equal runc's (the
    user's own ids, no network namespace, /sys bound, no uid=/gid=, no resources)."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed")
    out = {}
    for name, binary in (("ours", rl.binary), ("runc", runc)):
        d = rl.tmp / f"spec-{name}"
        d.mkdir()
        os.chown(d, rl.user.uid, rl.user.gid)
        assert rl.user.run([binary, "spec", "--rootless"], cwd=d).returncode == 0
        out[name] = json.loads((d / "config.json").read_text())
    for cfg in out.values():
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                      if ns["type"] != "cgroup"]  # pure-v2 hosts only
    ours, theirs = out["ours"], out["runc"]
    assert ours["linux"]["uidMappings"] == [{"containerID": 0, "hostID": rl.user.uid, "size": 1}]
    assert ours["linux"]["gidMappings"] == [{"containerID": 0, "hostID": rl.user.gid, "size": 1}]
    for key in ("uidMappings", "gidMappings"):
        assert ours["linux"][key] == theirs["linux"][key]
    assert sorted(n["type"] for n in ours["linux"]["namespaces"]) == \
        sorted(n["type"] for n in theirs["linux"]["namespaces"])
    assert "resources" not in ours["linux"] and "resources" not in theirs["linux"]
    assert ours["mounts"] == theirs["mounts"]


# -- lifecycle ---------------------------------------------------------------------------


def test_lifecycle_create_start_state_kill_delete(rl: RL) -> None:
    cid, _b = rl.created()
    st = rl.state(cid)
    assert st["status"] == "created"
    pid = int(st["pid"])
    fifo = rl.root / cid / "exec.fifo"
    fst = fifo.stat()
    assert stat.S_ISFIFO(fst.st_mode) and fst.st_uid == rl.user.uid
    # The container's init is the user's on the host (its root is the user's own id).
    assert _status_ids(pid)[0] == [rl.user.uid] * 4
    rl.ok("start", cid)
    assert rl.state(cid)["status"] == "running"
    assert not fifo.exists()
    listed = json.loads(rl.ok("list", "--format", "json"))
    assert [c["id"] for c in listed] == [cid]
    rl.ok("kill", cid, "KILL")
    assert wait_for(lambda: rl.state(cid)["status"] == "stopped", timeout=10)
    rl.ok("delete", cid)
    assert not (rl.root / cid).exists()
    assert rl.rt("state", cid).returncode != 0


def test_exec(rl: RL) -> None:
    cid, pid = rl.running()
    out = rl.ok("exec", cid, "sh", "-c", "echo $$; id -u; readlink /proc/1/ns/pid").split()
    assert out[1] == "0"
    assert out[2] == os.readlink(f"/proc/{pid}/ns/pid")  # in the container's pid namespace
    res = rl.rt("exec", cid, "sh", "-c", "exit 7")
    assert res.returncode == 7


@pytest.mark.runc_bug("runc 1.1.5 cannot list (or kill --all) a rootless container's "
                      "processes without a cgroup: 'unable to get all container pids'")
def test_ps_and_kill_all_without_a_cgroup(rl: RL) -> None:
    # uid 1000 inside: the processes are the user's subordinate ids on the host
    cid, pid = rl.running(mappings="ranges", process__user={"uid": 1000, "gid": 1000})
    slow = rl.user.popen([rl.binary, "--root", str(rl.root), "exec", cid, "sleep", "1000"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        def two() -> bool:
            return len(json.loads(rl.ok("ps", "--format", "json", cid))) == 2
        assert wait_for(two, timeout=10), rl.ok("ps", "--format", "json", cid)
        pids = json.loads(rl.ok("ps", "--format", "json", cid))
        assert pid in pids
        other = next(p for p in pids if p != pid)
        assert Path(f"/proc/{other}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"1000"]
        rl.ok("kill", "--all", cid, "KILL")
        assert wait_for(lambda: rl.state(cid)["status"] == "stopped", timeout=10)
        slow.wait(timeout=10)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()


def test_run_detached_then_delete_force(rl: RL) -> None:
    b = rl.bundle(FOREVER)
    cid = rl.new_id()
    rl.ok("run", "-d", "--bundle", str(b), cid)
    pid = int(rl.state(cid)["pid"])
    rl.ok("delete", "--force", cid)
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                    Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", timeout=5)
    assert not (rl.root / cid).exists()


# -- mounts -------------------------------------------------------------------------------


def test_sys_devices_and_proc(rl: RL) -> None:
    """/sys is the host's bound (no sysfs of its own in the host's network namespace), the
    devices are the host's nodes bound (an unprivileged user cannot mknod), and work."""
    script = ("grep -E ' /sys | /dev/null ' /proc/self/mountinfo; "
              "stat -c '%t:%T %F' /dev/null /dev/zero; echo x > /dev/null && echo written; "
              "head -c 3 /dev/zero | wc -c; ls /sys/kernel >/dev/null && echo sys")
    b = rl.bundle(["sh", "-c", script])
    res = rl.rt("run", "--bundle", str(b), rl.new_id())
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    sys_line = next(ln for ln in out if " /sys " in ln)
    assert " - sysfs " in sys_line and " ro," in sys_line, sys_line
    null_line = next(ln for ln in out if " /dev/null " in ln)
    assert " - devtmpfs " in null_line or " - tmpfs " in null_line, null_line  # the host's node
    assert "1:3 character special file" in out and "1:5 character special file" in out, out
    assert "written" in out and "3" in out and "sys" in out, out


@pytest.mark.runc_bug("runc 1.1.5 binds whatever the host has at the path")
@pytest.mark.parametrize("dev", [
    {"path": "/dev/zero", "type": "b", "major": 8, "minor": 0},   # the host's is c 1:5
    {"path": "/dev/zero", "type": "c", "major": 8, "minor": 0},
    {"path": "/etc/passwd", "type": "c", "major": 1, "minor": 3},  # a regular file
], ids=["block-8:0-at-dev-zero", "char-8:0-at-dev-zero", "regular-file"])
def test_a_device_the_host_node_does_not_match_is_refused(rl: RL, dev: dict[str, Any]) -> None:
    """Devices are bound from the host by path (no mknod): a path whose host node is not the
    device the config describes is refused in one line, not silently replaced (before: 8:0
    at /dev/zero ran with the host's 1:5; c 1:3 at /etc/passwd bound the host's passwd)."""
    b = rl.bundle(["true"], linux__devices=[dev])
    cid = rl.new_id()
    line = _one_line_error(rl.rt("run", "--bundle", str(b), cid))
    assert f"host's {dev['path']} is " in line, line
    assert not (rl.root / cid).exists()


def test_a_device_that_matches_the_host_node_is_bound(rl: RL) -> None:
    b = rl.bundle(["stat", "-c", "%t:%T %F", "/dev/null"], linux__devices=[
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}])
    assert rl.ok("run", "--bundle", str(b), rl.new_id()).split() == \
        ["1:3", "character", "special", "file"]


def _with_sysfs(rl: RL, b: Path, netns: bool) -> None:
    cfg = rl.config(b)
    for m in cfg["mounts"]:
        if m["destination"] == "/sys":
            m.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])
    if netns:
        cfg["linux"]["namespaces"].append({"type": "network"})
    rl.write(b, cfg)


@pytest.mark.runc_bug("runc 1.1.5 fails the sysfs mount with EPERM instead of binding /sys")
def test_sysfs_in_the_hosts_netns_is_the_hosts_bound(rl: RL) -> None:
    """A plain sysfs mount (runc spec's, not --rootless's) in the host's network namespace:
    the kernel refuses a new sysfs to a user namespace that does not own the netns; the
    host's /sys is bound instead, read-only as asked."""
    b = rl.bundle(["sh", "-c", "ls /sys/class/net; grep ' / /sys ' /proc/self/mountinfo"])
    _with_sysfs(rl, b, netns=False)
    res = rl.rt("run", "--bundle", str(b), rl.new_id())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    mount = [ln for ln in lines if " /sys " in ln]
    names = [w for ln in lines if " /sys " not in ln for w in ln.split()]
    assert sorted(names) == sorted(os.listdir("/sys/class/net"))  # the host's devices
    assert len(mount) == 1 and " ro," in mount[0], mount


def test_sysfs_with_its_own_netns_is_fresh(rl: RL) -> None:
    b = rl.bundle(["ls", "/sys/class/net"])
    _with_sysfs(rl, b, netns=True)
    res = rl.rt("run", "--bundle", str(b), rl.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["lo"]


@pytest.mark.runc_bug("runc 1.1.5 remounts a bind of a nosuid,nodev,noexec mount without "
                      "them: EPERM, the container does not start")
def test_locked_mount_flags_are_kept(rl: RL) -> None:
    """A bind of a host mount that is nosuid,nodev,noexec, asked for as plain `ro`: the
    kernel locks those flags for a user namespace; the remount keeps them instead of
    failing with EPERM."""
    host = rl.tmp / "locked"
    host.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,nodev,noexec,size=1m", "rl-locked",
                    str(host)], check=True)
    try:
        (host / "f").write_text("locked\n")
        host.chmod(0o755)
        b = rl.bundle(["sh", "-c", "cat /mnt/f; grep ' /mnt ' /proc/self/mountinfo"])
        cfg = rl.config(b)
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(host),
                              "options": ["rbind", "ro"]})
        rl.write(b, cfg)
        res = rl.rt("run", "--bundle", str(b), rl.new_id())
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[0] == "locked"
        opts = res.stdout.splitlines()[1].split()[5].split(",")
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(opts), opts
    finally:
        subprocess.run(["umount", "-l", str(host)], check=False)


def test_bind_of_a_dir_the_user_cannot_read_fails(rl: RL) -> None:
    """Binds are made by the user's namespace: a root-only (0700) host dir is not the
    user's to mount (root's runtime opens it as root; rootless must not)."""
    host = rl.tmp / "private"
    host.mkdir(mode=0o700)
    (host / "secret").write_text("s")
    b = rl.bundle(["cat", "/mnt/secret"])
    cfg = rl.config(b)
    cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(host),
                          "options": ["rbind"]})
    rl.write(b, cfg)
    cid = rl.new_id()
    res = rl.rt("run", "--bundle", str(b), cid)
    assert res.returncode != 0 and "s" != res.stdout.strip()
    assert not (rl.root / cid).exists()


# -- cgroups --------------------------------------------------------------------------------


def _v2_host() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(ln.split(" - ")[1].split()[0] == "cgroup2" and ln.split()[4] == "/sys/fs/cgroup"
                   for ln in f)


needs_no_delegation = pytest.mark.skipif(_v2_host(), reason="a v2 host may delegate to the user")


@needs_no_delegation
def test_without_a_cgroup_it_runs_with_a_warning_and_pause_is_refused(rl: RL) -> None:
    cid, b = rl.created()
    rl.ok("start", cid)
    res = rl.rt("pause", cid)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert rl.state(cid)["status"] == "running"


@pytest.mark.pyrunc_only
@needs_no_delegation
def test_no_cgroup_warning_says_why(rl: RL) -> None:
    b = rl.bundle(["true"])
    res = rl.rt("run", "--bundle", str(b), rl.new_id())
    assert res.returncode == 0, res.stderr
    assert "running without a cgroup of its own" in res.stderr, res.stderr


@needs_no_delegation
def test_limits_without_a_cgroup_are_refused(rl: RL) -> None:
    """A memory limit cannot be applied without a cgroup: refused, not ignored."""
    b = rl.bundle(["true"], linux__resources={"memory": {"limit": 64 << 20}})
    cid = rl.new_id()
    res = rl.rt("run", "--bundle", str(b), cid)
    line = _one_line_error(res) if not _is_runc(rl.binary) else res.stderr
    assert res.returncode != 0 and "cgroup" in line, res.stderr
    assert not (rl.root / cid).exists()


def _unified_root() -> tuple[Path, list[str]] | None:
    """Where the test (in the host's mount namespace) sees the v2 hierarchy, and the prefix
    that runs a command where /sys/fs/cgroup is that hierarchy: nothing on a pure v2 host;
    on a hybrid host a private mount namespace whose /sys/fs/cgroup is a cgroup2 mount (the
    host's unified hierarchy; the host's own mounts are not touched)."""
    if _v2_host():
        return Path("/sys/fs/cgroup"), []
    if os.path.exists("/sys/fs/cgroup/unified/cgroup.procs"):
        script = ('umount -R /sys/fs/cgroup && mount -t cgroup2 pyrunc-rl /sys/fs/cgroup '
                  '&& exec "$@"')
        return Path("/sys/fs/cgroup/unified"), ["unshare", "--mount", "--propagation",
                                                "private", "sh", "-c", script, "sh"]
    return None


def test_delegated_cgroup_v2(rl: RL) -> None:
    """A user with a delegated cgroup v2 subtree (systemd's Delegate=yes: the directory and
    its cgroup.procs/subtree_control/threads chowned to the user), its runtime started in
    a leaf of it: the container gets its cgroup there (and its own cgroupns view of it),
    limits apply where the controllers are there (the guest), pause/ps/delete work."""
    found = _unified_root()
    if found is None:
        pytest.skip("no cgroup v2 hierarchy")
    root, wrap = found
    deleg = root / f"pyrunc-rl-{uuid.uuid4().hex[:8]}"
    deleg.mkdir()
    try:
        # memory and pids where the host has them on v2 (the guest; a hybrid host's
        # unified hierarchy has no controllers)
        ctrls = [c for c in (root / "cgroup.controllers").read_text().split()
                 if c in ("memory", "pids")]
        if ctrls:
            (root / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in ctrls))
        for p in (deleg, deleg / "cgroup.procs", deleg / "cgroup.subtree_control",
                  deleg / "cgroup.threads"):
            os.chown(p, rl.user.uid, rl.user.gid)
        leaf = deleg / "runtime"
        leaf.mkdir()
        for p in (leaf, leaf / "cgroup.procs"):
            os.chown(p, rl.user.uid, rl.user.gid)
        limits = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}
        b = rl.bundle(FOREVER, linux__resources={c: limits[c] for c in ctrls})
        cfg = rl.config(b)
        if {"type": "cgroup"} not in cfg["linux"]["namespaces"]:
            cfg["linux"]["namespaces"].append({"type": "cgroup"})
        rl.write(b, cfg)
        cid = rl.new_id()

        def runtime(*args: str) -> subprocess.CompletedProcess[str]:
            """As the user, started in the leaf (as a systemd user service starts in its
            delegated cgroup): root moves the shell there, then becomes the user."""
            cmd = [*wrap, "sh", "-c", f'echo $$ > /sys/fs/cgroup/{deleg.name}/runtime/cgroup.procs'
                   ' && exec "$@"', "sh",
                   *rl.user.argv([rl.binary, "--root", str(rl.root), *args])]
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                res = subprocess.run(cmd, env=rl.user.env(), stdout=out, stderr=err, text=True,
                                     timeout=60, stdin=subprocess.DEVNULL)
                out.seek(0)
                err.seek(0)
                return subprocess.CompletedProcess(cmd, res.returncode, out.read(), err.read())

        def status() -> str:
            res = runtime("state", cid)
            assert res.returncode == 0, res.stderr
            return str(json.loads(res.stdout)["status"])

        res = runtime("create", "--bundle", str(b), cid)
        assert res.returncode == 0, res.stderr
        assert "without a cgroup" not in res.stderr, res.stderr
        pid = int(json.loads(runtime("state", cid).stdout)["pid"])
        host_path = Path(f"/proc/{pid}/cgroup").read_text().split("0::")[1].strip()
        cg = root / host_path.lstrip("/")
        assert cg.parent == deleg, cg
        assert Path(cg / "cgroup.procs").read_text().split() == [str(pid)]
        if "memory" in ctrls:
            assert (cg / "memory.max").read_text().strip() == str(64 << 20)
        if "pids" in ctrls:
            assert (cg / "pids.max").read_text().strip() == "50"
        assert runtime("start", cid).returncode == 0
        assert status() == "running"
        assert runtime("pause", cid).returncode == 0
        assert status() == "paused"
        assert (cg / "cgroup.freeze").read_text().strip() == "1"
        assert runtime("resume", cid).returncode == 0
        assert status() == "running"
        assert json.loads(runtime("ps", "--format", "json", cid).stdout) == [pid]
        # its cgroup namespace is rooted at its cgroup, and /sys/fs/cgroup shows that (ro)
        inside = runtime("exec", cid, "sh", "-c", "cat /proc/self/cgroup; "
                         "grep ' /sys/fs/cgroup ' /proc/self/mountinfo | tail -1")
        assert inside.returncode == 0, inside.stderr
        lines = inside.stdout.splitlines()
        assert "0::/" in lines, lines
        mount = lines[-1]
        assert " - cgroup2 " in mount and " ro," in mount and mount.split()[3] == "/", lines
        assert runtime("delete", "--force", cid).returncode == 0
        assert not cg.exists()
    finally:
        rl.cleanup()
        for d in sorted(deleg.rglob("*"), reverse=True) if deleg.exists() else []:
            if d.is_dir():
                os.rmdir(d)
        if deleg.exists():
            os.rmdir(deleg)


# -- refusals -----------------------------------------------------------------------------


def test_config_without_a_user_namespace_is_refused(rl: RL) -> None:
    b = rl.bundle(["true"])
    cfg = rl.config(b)
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "user"]
    cfg["linux"].pop("uidMappings")
    cfg["linux"].pop("gidMappings")
    rl.write(b, cfg)
    cid = rl.new_id()
    res = rl.rt("run", "--bundle", str(b), cid)
    if _is_runc(rl.binary):
        assert res.returncode == 1 and "user namespace" in res.stderr, res.stderr
    else:
        assert "user namespace" in _one_line_error(res)
    assert not (rl.root / cid).exists()


@pytest.mark.pyrunc_only
def test_idmapped_mount_is_refused(rl: RL) -> None:
    b = rl.bundle(["true"])
    cfg = rl.config(b)
    cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(rl.tmp),
                          "options": ["rbind", "idmap"]})
    rl.write(b, cfg)
    cid = rl.new_id()
    assert "idmapped" in _one_line_error(rl.rt("run", "--bundle", str(b), cid))
    assert not (rl.root / cid).exists()


def test_rlimit_above_the_users_hard_limit_is_refused(rl: RL) -> None:
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard RLIMIT_NOFILE to exceed")
    b = rl.bundle(["true"], process__rlimits=[
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1}])
    cid = rl.new_id()
    res = rl.rt("run", "--bundle", str(b), cid)
    assert res.returncode == 1 and "RLIMIT_NOFILE" in res.stderr or "rlimit" in res.stderr
    if not _is_runc(rl.binary):
        assert "RLIMIT_NOFILE" in _one_line_error(res)
    assert not (rl.root / cid).exists()
    # within it: fine, and seen inside
    b = rl.bundle(["sh", "-c", "ulimit -Hn"], process__rlimits=[
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": hard}])
    assert rl.ok("run", "--bundle", str(b), rl.new_id()).strip() == str(hard)


def test_rlimit_locks_within_the_users_hard_limit(rl: RL) -> None:
    """RLIMIT_LOCKS, which Python's `resource` lacks: the check against the user's hard
    limits looked it up there and failed with 'internal error: AttributeError'."""
    b = rl.bundle(["cat", "/proc/self/limits"], process__rlimits=[
        {"type": "RLIMIT_LOCKS", "soft": 10, "hard": 20}])
    out = rl.ok("run", "--bundle", str(b), rl.new_id())
    assert re.search(r"^Max file locks\s+10\s+20\s", out, re.M), out


# -- other users -----------------------------------------------------------------------


def test_another_user_cannot_see_or_touch_the_containers(
        rl: RL, other_rootless_user: RootlessUser) -> None:
    cid, pid = rl.running()
    other = other_rootless_user
    for args in (["state", cid], ["list"], ["kill", cid, "KILL"], ["delete", "--force", cid],
                 ["exec", cid, "true"], ["ps", cid]):
        res = rl.rt(*args, user=other)
        if args == ["list"] and res.returncode == 0:
            assert cid not in res.stdout
            continue
        assert res.returncode != 0, (args, res.stdout)
        assert "Traceback" not in res.stderr
    assert rl.state(cid)["status"] == "running"
    assert (rl.root / cid).exists()
    # and the kernel: the other user cannot signal the container's processes
    res = other.run(["kill", "-9", str(pid)])
    assert res.returncode != 0
    assert rl.state(cid)["status"] == "running"
    # its own default root is its own
    res = other.run([rl.binary, "list"])
    assert res.returncode == 0 and cid not in res.stdout


def _plant(other: RootlessUser, root: Path, marker: Path) -> None:
    """`other` makes `root` (0777) with a stopped container 'web' whose poststop hook
    appends the id of whoever runs it to `marker`."""
    state = {"id": "web", "pid": 999999, "start_time": 1, "bundle": "/", "rootfs": "/",
             "created": "2026-01-01T00:00:00Z", "cgroup_path": "",
             "hooks": {"poststop": [{"path": "/bin/sh",
                                     "args": ["sh", "-c", f"id -u >> {marker}"]}]}}
    script = (f"mkdir -m 0777 {root} && mkdir -m 0755 {root}/web && "
              f"cat > {root}/web/state.json && chmod 0644 {root}/web/state.json")
    res = other.run(["sh", "-c", script], input=json.dumps(state))
    assert res.returncode == 0, res.stderr


@pytest.mark.pyrunc_only
def test_a_root_another_user_made_is_refused(rl: RL, other_rootless_user: RootlessUser) -> None:
    """A shared XDG_RUNTIME_DIR (1777, as /tmp) where another user made pyrunc/ first and
    planted a container: the user's runtime refuses the root in one line (before, `list`
    showed the planted one and `delete web` ran its poststop hook as the user)."""
    shared = rl.tmp / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    marker = rl.tmp / "marker"
    _plant(other_rootless_user, shared / "pyrunc", marker)
    env = {"XDG_RUNTIME_DIR": str(shared)}
    b = rl.bundle(["true"])
    for args in (["list"], ["state", "web"], ["delete", "web"], ["kill", "web", "KILL"],
                 ["run", "--bundle", str(b), rl.new_id()]):
        res = rl.user.run([rl.binary, *args], env=env, stdin=subprocess.DEVNULL)
        line = _one_line_error(res)
        assert "owned by uid" in line and str(shared / "pyrunc") in line, (args, line)
    assert not marker.exists(), marker.read_text()
    assert sorted(os.listdir(shared / "pyrunc")) == ["web"]  # nothing of the user's there


@pytest.mark.pyrunc_only
def test_root_does_not_use_a_users_state(rl: RL) -> None:
    """Root pointed at a user's root (`sudo pyrunc --root ~/.../pyrunc delete x`) refuses
    the user's state file: its hooks would run as root (runc runs them)."""
    marker = rl.tmp / "marker"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"id -u >> {marker}"]}
    cid, _pid = rl.running(hooks={"poststop": [hook]})
    res = subprocess.run([rl.binary, "--root", str(rl.root), "delete", "--force", cid],
                         capture_output=True, text=True, timeout=30)
    line = _one_line_error(res)
    assert f"owned by uid {rl.user.uid}" in line, line
    assert not marker.exists(), marker.read_text()
    assert rl.state(cid)["status"] == "running"
    rl.ok("delete", "--force", cid)  # the user's own delete runs its hook, as the user
    assert marker.read_text().split() == [str(rl.user.uid)]


def test_root_does_not_follow_a_users_link_in_a_shared_root(sandbox: Sandbox, rl: RL) -> None:
    """Root pointed at a root its users may write (1777, as the shared rootless roots of
    42dc789): a user's symlink there, named as a container, to one of root's own container
    directories elsewhere made root's state and kill act on that container (its state.json
    is root's). Refused in one line; the container runs on."""
    b = sandbox.bundle(["sleep", "1000"])
    cid = sandbox.new_id()
    sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out")
    sandbox.rt.run_cmd("start", cid, check=True)
    shared = rl.tmp / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    assert rl.user.run(["ln", "-s", str(sandbox.rt.root / cid), str(shared / "web")]).returncode == 0
    for args in (["state", "web"], ["kill", "web", "KILL"], ["delete", "--force", "web"]):
        res = subprocess.run([rl.binary, "--root", str(shared), *args], capture_output=True,
                             text=True, timeout=30)
        line = _one_line_error(res)
        assert f"owned by uid {rl.user.uid}" in line, (args, line)
    res = subprocess.run([rl.binary, "--root", str(shared), "list", "-q"], capture_output=True,
                         text=True, timeout=30)
    assert (res.returncode, res.stdout) == (0, ""), res  # as a rootless user's list
    assert sandbox.rt.state(cid)["status"] == "running"
    (shared / "web").unlink()


def _other_bundle(rl: RL, other: RootlessUser, args: list[str]) -> Path:
    """A `spec --rootless` bundle of `other`'s (its own ids mapped)."""
    path = rl.tmp / f"other-b{rl.n}"
    rl.n += 1
    path.mkdir()
    copy_rootfs(rl.cache, path / "rootfs")
    other.chown(path)
    assert other.run([rl.binary, "spec", "--rootless"], cwd=path).returncode == 0
    cfg = json.loads((path / "config.json").read_text())
    cfg["process"].update(terminal=False, args=args)
    (path / "config.json").write_text(json.dumps(cfg))
    os.chown(path / "config.json", other.uid, other.gid)
    return path


@pytest.mark.pyrunc_only
def test_a_shared_sticky_root_keeps_each_users_containers_apart(
        rl: RL, other_rootless_user: RootlessUser) -> None:
    """A root that root made for several users (1777, sticky as /tmp): each runs its own
    containers there; neither lists, reads or deletes the other's, a state the other planted
    (its hook) is refused, and without the sticky bit the root is refused (its users could
    rename each other's containers away and put their own in their place)."""
    other = other_rootless_user
    shared = rl.tmp / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # root's
    mine = rl.new_id()
    rl.ok("create", "--bundle", str(rl.bundle(FOREVER)), mine, root=shared)
    theirs = f"rl-other-{uuid.uuid4().hex[:8]}"
    try:
        res = rl.rt("run", "-d", "--bundle", str(_other_bundle(rl, other, FOREVER)), theirs,
                    user=other, root=shared)
        assert res.returncode == 0, res.stderr
        assert [c["id"] for c in json.loads(rl.ok("list", "--format", "json", root=shared))] == [mine]
        listed = json.loads(rl.rt("list", "--format", "json", user=other, root=shared).stdout)
        assert [c["id"] for c in listed] == [theirs]
        for args in (["state", theirs], ["delete", "--force", theirs], ["kill", theirs, "KILL"]):
            line = _one_line_error(rl.rt(*args, root=shared))
            assert f"is owned by uid {other.uid}" in line, (args, line)
        st = json.loads(rl.rt("state", theirs, user=other, root=shared).stdout)
        assert st["status"] == "running", st
        marker = rl.tmp / "marker"
        _plant_in(other, shared, "web", marker)
        line = _one_line_error(rl.rt("delete", "web", root=shared))
        assert f"is owned by uid {other.uid}" in line, line
        assert not marker.exists()
        shared.chmod(0o777)
        line = _one_line_error(rl.rt("list", root=shared))
        assert "without the sticky bit" in line, line
        shared.chmod(0o1777)
    finally:
        shared.chmod(0o1777)
        rl.rt("delete", "--force", theirs, user=other, root=shared)
        rl.rt("delete", "--force", mine, root=shared)
        shutil.rmtree(shared / "web", ignore_errors=True)
    assert sorted(os.listdir(shared)) == []


def _plant_in(other: RootlessUser, root: Path, cid: str, marker: Path) -> None:
    state = {"id": cid, "pid": 999999, "start_time": 1, "bundle": "/", "rootfs": "/",
             "created": "2026-01-01T00:00:00Z", "cgroup_path": "",
             "hooks": {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"id -u >> {marker}"]}]}}
    script = f"mkdir -m 0755 {root}/{cid} && cat > {root}/{cid}/state.json"
    res = other.run(["sh", "-c", script], input=json.dumps(state))
    assert res.returncode == 0, res.stderr
