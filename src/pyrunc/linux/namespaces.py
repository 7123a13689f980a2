"""Namespace types, their clone flags, and checked joins of existing namespaces."""

from __future__ import annotations

import fcntl
import os

from pyrunc.errors import SpecError, SystemError_
from pyrunc.linux import syscalls as sc
from pyrunc.spec.config import IDMapping, Namespace

FLAGS = {
    "pid": sc.CLONE_NEWPID,
    "network": sc.CLONE_NEWNET,
    "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS,
    "user": sc.CLONE_NEWUSER,
    "cgroup": sc.CLONE_NEWCGROUP,
    "time": sc.CLONE_NEWTIME,
}
NS_GET_NSTYPE = 0xB703  # linux/nsfs.h: _IO(0xb7, 0x3)

# Join order: user first (it owns the rest), mount last (it changes how paths resolve).
JOIN_ORDER = ("user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount")


def open_checked(ns: Namespace) -> int:
    """Open a namespace path and make sure it is a namespace of the type the config says."""
    assert ns.path is not None
    try:
        # O_NONBLOCK: a path that is a FIFO fails the type check below instead of hanging.
        fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise SpecError(f"config.json: linux.namespaces: {ns.type} namespace path {ns.path}: "
                        f"{exc.strerror}", exc.errno) from None
    try:
        actual = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        os.close(fd)
        raise SpecError(f"config.json: linux.namespaces: {ns.path} is not a namespace "
                        f"(wanted a {ns.type} namespace)") from None
    if actual != FLAGS[ns.type]:
        os.close(fd)
        got = next((k for k, v in FLAGS.items() if v == actual), hex(actual))
        raise SpecError(f"config.json: linux.namespaces: {ns.path} is a {got} namespace, "
                        f"not a {ns.type} namespace")
    return fd


def join(fd: int, ns_type: str, path: str) -> None:
    try:
        sc.setns(fd, FLAGS[ns_type])
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot join {ns_type} namespace {path}", exc) from None


def write_id_maps(pid: int, uid_maps: tuple[IDMapping, ...],
                  gid_maps: tuple[IDMapping, ...]) -> None:
    """Write a new user namespace's maps; each file takes a single write, once.

    Root writes them directly. An unprivileged runtime (rootless) may write only a map of
    its own one id, and a gid map only once setgroups is denied (the kernel's rule: else
    the container's root could drop a group that denies it access). Anything more goes
    through the setuid helpers newuidmap/newgidmap, which allow the ranges /etc/subuid and
    /etc/subgid give the user."""
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        if not maps:
            continue
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        own = os.geteuid() if name == "uid_map" else os.getegid()
        if os.geteuid() != 0 and (len(maps) > 1 or maps[0].size != 1 or maps[0].host_id != own):
            _new_map(pid, name, maps)
            continue
        if os.geteuid() != 0 and name == "gid_map":
            _write_proc(pid, "setgroups", "deny")
        _write_proc(pid, name, text)


def _write_proc(pid: int, name: str, text: str) -> None:
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _new_map(pid: int, name: str, maps: tuple[IDMapping, ...]) -> None:
    """newuidmap/newgidmap PID ID HOSTID SIZE...; its complaint becomes our one line."""
    import shutil
    import subprocess
    tool = "newuidmap" if name == "uid_map" else "newgidmap"
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/bin/{tool}", f"/bin/{tool}") if os.access(p, os.X_OK)), None)
    sub = "/etc/subuid" if name == "uid_map" else "/etc/subgid"
    if path is None:
        raise SystemError_(f"rootless: the {name} asks for more than your own id, which needs "
                           f"{tool} (Debian's uidmap package) and ranges in {sub}")
    args = [path, str(pid)] + [str(v) for m in maps for v in (m.container_id, m.host_id, m.size)]
    res = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         errors="replace")
    if res.returncode != 0:
        why = " ".join(res.stderr.split()) or f"exit status {res.returncode}"
        raise SystemError_(f"rootless: {tool} failed ({why}): are the mappings within your "
                           f"ranges in {sub}?", 1)
