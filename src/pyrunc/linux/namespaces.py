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
    """Write a new user namespace's maps; each file takes a single write, once."""
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        if not maps:
            continue
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
