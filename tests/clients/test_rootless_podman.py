"""Rootless podman on the runtime under test: an unprivileged user with subuid/subgid ranges runs
`podman --runtime RUNTIME` (native overlay storage under the user's home, `--network none`), as a
rootless user does on a desktop. The runtime then runs as "root" in podman's user namespace, with a
partial id map, no cgroup write access on cgroup v1 and its state under $XDG_RUNTIME_DIR.

Checked: hostname, ids and uid_map inside; from the host the init owned by the user's uid and an
exec'd process by the matching subordinate uid; exec output and exit status; stop delivers SIGTERM;
after rm nothing of the container is left (no process of the user but podman's pause process, no
storage mount, no file named after the container). The user is the session's shared test user
(tests/rootless_user.py); podman's processes and files go after the module, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from clients_support import (
    CONTAINER_PATH,
    DEFAULT_TIMEOUT,
    HOST_PATH,
    MountNamespace,
    Result,
    Runtime,
    build_rootfs_tar,
    pid_alive,
    run,
    unique_name,
    wait_for,
)
from rootless_user import RootlessUser

IMAGE = "localhost/pyrunc-busybox:latest"


def _hybrid_cgroups() -> bool:
    return (os.path.ismount("/sys/fs/cgroup/unified")
            and os.statvfs("/sys/fs/cgroup").f_fsid != os.statvfs("/sys/fs/cgroup/unified").f_fsid)


class UserNamespace(MountNamespace):
    """The mount namespace podman runs in: a copy of the host's with / shared (as on a systemd
    host; podman warns otherwise). For crun on a hybrid host the cgroup2 mount is covered by a
    tmpfs (crun refuses hybrid mode: 'cgroups in hybrid mode not supported'); the runtime under
    test sees the host as it is."""

    def __init__(self, cover_unified: bool) -> None:
        super().__init__()
        self.cover_unified = cover_unified

    def setup_lines(self) -> list[str]:
        lines = ["mount --make-rshared /"]
        if self.cover_unified:
            lines.append("mount -t tmpfs -o mode=0755 pyrunc-rl-nounified /sys/fs/cgroup/unified")
        return lines


class RootlessPodman:
    """podman run as the user (setpriv, a clean environment), configured only by files in a dir
    of its own (in /dev/shm, the user's)."""

    def __init__(self, user: RootlessUser, ns: MountNamespace, runtime: str,
                 cgroup_manager: str = "cgroupfs", env: dict[str, str] | None = None) -> None:
        self.user, self.ns, self.runtime = user, ns, runtime
        # on a tmpfs, like the runtime dir: native overlay cannot stack on an overlay home (the
        # systemd guest's /home), and fuse-overlayfs, its fallback, needs /dev/fuse
        self.top = Path("/dev/shm") / f"{user.name}-podman-{uuid.uuid4().hex[:8]}"
        conf = self.top / "conf"
        self.graphroot = self.top / "storage"
        self.runroot = user.runtime_dir / "containers"
        self.tmp = self.top / "tmp"
        for d in (self.top, conf, self.tmp):
            d.mkdir(mode=0o700)
        names = sorted({"crun", "runc", "pyrunc", os.path.basename(runtime)})
        (conf / "containers.conf").write_text(f"""[containers]
log_driver = "k8s-file"
default_ulimits = []

[engine]
cgroup_manager = "{cgroup_manager}"
events_logger = "file"
conmon_path = ["/usr/bin/conmon"]
runtime_supports_json = {json.dumps(names)}
""")
        # graphroot is root's: a rootless podman takes rootless_storage_path (else its default)
        (conf / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\nrunroot = "{self.runroot}"\n'
            f'rootless_storage_path = "{self.graphroot}"\n')
        (conf / "registries.conf").write_text("unqualified-search-registries = []\n")
        user.chown(self.top)
        self.env = user.env({"TMPDIR": str(self.tmp),
                             "CONTAINERS_CONF": str(conf / "containers.conf"),
                             "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
                             "CONTAINERS_REGISTRIES_CONF": str(conf / "registries.conf"), **(env or {})})

    def argv(self, *args: str) -> list[str]:
        env = [f"{k}={v}" for k, v in self.env.items()]
        return [*self.ns.prefix(), *self.user.argv(["env", "-i", *env, "podman", "--runtime", self.runtime,
                                                    *args])]

    def __call__(self, *args: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True) -> Result:
        return run(self.argv(*args), timeout=timeout, check=check, env={"PATH": HOST_PATH})

    def remove(self) -> list[int]:
        """Kill the user's processes (podman's pause process, anything left), remove podman's
        files (the storage holds subordinate-uid files: root removes them) and its /dev/shm lock.
        Returns the pids killed other than the pause process."""
        pause = self.pause_pid()
        left = [p for p in self.user.kill_all() if p != pause]
        for d in (self.top, self.runroot, self.user.runtime_dir / "libpod",
                  *(self.user.runtime_dir / n for n in ("crun", "runc", "pyrunc", "netns"))):
            shutil.rmtree(d, ignore_errors=True)
        Path(f"/dev/shm/libpod_rootless_lock_{self.user.uid}").unlink(missing_ok=True)
        return left

    def pause_pid(self) -> int | None:
        """podman's pause process: it holds the user's namespaces between podman calls."""
        try:
            return int((self.user.runtime_dir / "libpod/tmp/pause.pid").read_text())
        except (OSError, ValueError):
            return None


@pytest.fixture(scope="module")
def rootless(runtime: Runtime, rootless_user: RootlessUser) -> Iterator[RootlessPodman]:
    """podman set up for the shared test user; afterwards its pause process and every file
    podman made go (the user itself is the session's)."""
    missing = [t for t in ("podman", "conmon", "newuidmap", "newgidmap")
               if shutil.which(t, path=HOST_PATH) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: run tests/clients/setup.sh")
    if Path("/proc/sys/kernel/unprivileged_userns_clone").exists() and \
            Path("/proc/sys/kernel/unprivileged_userns_clone").read_text().strip() == "0":
        pytest.skip("unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0)")
    user = rootless_user
    ns = UserNamespace(cover_unified=os.path.basename(runtime.real_path) == "crun" and _hybrid_cgroups())
    pm: RootlessPodman | None = None
    try:
        ns.start()
        pm = RootlessPodman(user, ns, runtime.real_path)
        rootfs = pm.tmp / "rootfs.tar"
        build_rootfs_tar(rootfs)
        os.chown(rootfs, user.uid, user.gid)
        pm("import", "--change", "CMD=sh", "--change", f"ENV=PATH={CONTAINER_PATH}", str(rootfs), IMAGE,
           timeout=120)
        rootfs.unlink()
        yield pm
        pm("rm", "-af", "-t", "0", check=False, timeout=120)
    finally:
        ns.stop()
        left = pm.remove() if pm is not None else []
        if left:
            warnings.warn(f"killed processes of {user.name} left by podman: {left}")


def _status_ids(pid: int, key: str) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def _map(text: str) -> list[tuple[int, int, int]]:
    return [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in text.strip().splitlines())]


def _in_pid_ns(init: int, argv0: str, arg: str) -> list[int]:
    """Host pids of processes running `argv0 arg` in the pid namespace of init."""
    ns = os.readlink(f"/proc/{init}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if cmd[:2] == [argv0.encode(), arg.encode()] and os.readlink(f"/proc/{entry}/ns/pid") == ns:
                found.append(int(entry))
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""  # gone meanwhile


def _settles(left: Callable[[], list[Any]], what: str, timeout: float = 10) -> None:
    """Wait until left() is empty; fail with what is still there."""
    deadline = time.monotonic() + timeout
    while (now := left()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not now, f"{what} still there after {timeout:.0f} s: {now}"


def _named_after(cid: str, *roots: Path) -> list[str]:
    return [os.path.join(d, n) for root in roots for d, dirs, files in os.walk(root)
            for n in dirs + files if cid in n]


def _storage_mounts(pm: RootlessPodman, pids: list[int]) -> list[str]:
    """Mount points under the user's storage/runroot in the mount namespaces of pids."""
    found = set()
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            point = line.split()[4]
            if point.startswith((str(pm.top), str(pm.runroot), str(pm.user.home))):
                found.add(point)
    return sorted(found)


@pytest.fixture
def name(rootless: RootlessPodman) -> Iterator[str]:
    """A container name; the container is force-removed after the test, whatever happened."""
    name = unique_name("rl")
    yield name
    rootless("rm", "-f", "-t", "0", name, check=False)


def test_rootless_podman_run_exec_stop_rm(rootless: RootlessPodman, name: str) -> None:
    pm, user = rootless, rootless.user
    start = time.monotonic()
    init_sh = "trap 'exit 7' TERM; sleep 1000 & wait"
    cid = pm("run", "-d", "--name", name, "--hostname", "rlbox", "--network", "none", IMAGE,
             "sh", "-c", init_sh).stdout.strip()
    info = json.loads(pm("inspect", name).stdout)[0]
    init = info["State"]["Pid"]
    assert info["State"]["Status"] == "running" and init > 0, info["State"]

    # Inside: the hostname, root in podman's user namespace, the user's id map.
    res = pm("exec", name, "sh", "-c", "hostname; id -u; id -g; cat /proc/self/uid_map; echo --; "
                                       "cat /proc/self/gid_map; echo err >&2")
    hostname, uid, gid, maps = res.stdout.split("\n", 3)
    uid_map, gid_map = maps.split("--\n")
    assert (hostname, uid, gid) == ("rlbox", "0", "0"), res.describe()
    assert _map(uid_map) == [(0, user.uid, 1), (1, *user.subuid)], res.describe()
    assert _map(gid_map) == [(0, user.gid, 1), (1, *user.subgid)], res.describe()
    assert res.stderr.strip().endswith("err"), res.describe()
    res = pm("exec", name, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 4", check=False)
    assert res.returncode == 4 and res.stdout.strip() == f"sh -c {init_sh}", res.describe()

    # From the host: the init is the user's own uid, in a user namespace that is not the host's;
    # an exec as uid 1234 runs as the matching subordinate uid.
    assert set(_status_ids(init, "Uid")) == {user.uid} and set(_status_ids(init, "Gid")) == {user.gid}
    assert os.readlink(f"/proc/{init}/ns/user") != os.readlink("/proc/self/ns/user")
    pm("exec", "-d", "-u", "1234:1235", name, "sleep", "999")
    (child,) = wait_for(lambda: _in_pid_ns(init, "sleep", "999"), 10, "the exec'd sleep 999")
    assert set(_status_ids(child, "Uid")) == {user.subuid[0] + 1233}
    assert set(_status_ids(child, "Gid")) == {user.subgid[0] + 1234}
    storage = _storage_mounts(pm, [p for p in (pm.pause_pid(),) if p])
    assert any(m.startswith(f"{pm.graphroot}/overlay/") and m.endswith("/merged") for m in storage), \
        f"no overlay rootfs in {pm.graphroot} among {storage}"
    driver = pm("info", "--format", "{{.Store.GraphDriverName}} {{.Store.GraphRoot}}").stdout.split()
    assert driver == ["overlay", str(pm.graphroot)], driver

    # stop: SIGTERM reaches the trapping init (exit 7) long before the grace period ends.
    t0 = time.monotonic()
    pm("stop", "-t", "60", name, timeout=120)
    assert time.monotonic() - t0 < 50  # the exit status 7 is the proof; 16.8 s seen under TCG
    state = json.loads(pm("inspect", name).stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 7), state
    assert not pid_alive(init) and not pid_alive(child)

    # rm: nothing of the container is left anywhere.
    pm("rm", name)
    assert pm("ps", "-aq").stdout.strip() == ""
    pause = pm.pause_pid()
    _settles(lambda: [c for p in user.pids() if p != pause and (c := _cmdline(p))],
             "the user's processes other than podman's pause process")
    # conmon's exit command (`podman container cleanup`) may still be unmounting: give it time
    _settles(lambda: _storage_mounts(pm, [p for p in (pause, os.getpid(), pm.ns.pid) if p]),
             "podman's storage mounts")
    assert _named_after(cid, pm.top, user.runtime_dir) == []
    print(f"\nrootless podman flow with {os.path.basename(pm.runtime)}: {time.monotonic() - start:.1f} s")


def test_rootless_podman_run_rm_status_and_streams(rootless: RootlessPodman, name: str) -> None:
    res = rootless("run", "--rm", "--name", name, "--network", "none", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 5",
                   check=False)
    assert (res.returncode, res.stdout, res.stderr.strip().splitlines()[-1:]) == (5, "out\n", ["err"]), \
        res.describe()
    assert rootless("ps", "-aq", "--filter", f"name={name}").stdout.strip() == ""


def test_rootless_podman_systemd_cgroups(rootless: RootlessPodman, name: str) -> None:
    """Where systemd runs (the systemd guest): podman's default there, cgroup_manager=systemd.
    podman calls the runtime with --systemd-cgroup and user.slice:libpod:<id>: the container
    must be a scope of the user's own manager, with --memory/--pids-limit applied, gone after rm."""
    if not os.path.isdir("/run/systemd/system") or not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("needs systemd as PID 1 on a pure cgroup v2 host (tests/vm/run-systemd-host.sh)")
    user = rootless.user
    unit = f"user@{user.uid}.service"
    run(["systemctl", "start", unit], timeout=120)
    # a namespace of its own, made after the manager mounted /run/user/UID (the module's is older)
    ns = UserNamespace(cover_unified=False)
    pm: RootlessPodman | None = None
    try:
        ns.start()
        run_dir = f"/run/user/{user.uid}"
        pm = RootlessPodman(user, ns, rootless.runtime, "systemd",
                            {"XDG_RUNTIME_DIR": run_dir, "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run_dir}/bus"})
        rootfs = pm.tmp / "rootfs.tar"
        build_rootfs_tar(rootfs)
        os.chown(rootfs, user.uid, user.gid)
        pm("import", "--change", "CMD=sh", str(rootfs), IMAGE, timeout=120)
        cid = pm("run", "-d", "--name", name, "--network", "none", "--memory", "64m", "--pids-limit", "32",
                 IMAGE, "sleep", "1000").stdout.strip()
        init = json.loads(pm("inspect", name).stdout)[0]["State"]["Pid"]
        cgpath = Path(f"/proc/{init}/cgroup").read_text().strip().removeprefix("0::")
        top = f"/user.slice/user-{user.uid}.slice/{unit}/"
        assert cgpath.startswith(top) and f"libpod-{cid}.scope" in cgpath, cgpath
        cgdir = Path("/sys/fs/cgroup" + cgpath)
        assert (cgdir / "memory.max").read_text().strip() == str(64 << 20)
        assert (cgdir / "pids.max").read_text().strip() == "32"
        pm("rm", "-f", "-t", "0", name)
        _settles(lambda: [str(cgdir)] if cgdir.exists() else [], "the container's cgroup")
    finally:
        if pm is not None:
            pm("rm", "-af", "-t", "0", check=False, timeout=120)
            pm.remove()
        ns.stop()
        run(["systemctl", "stop", unit, f"user-runtime-dir@{user.uid}.service"], timeout=120, check=False)
