"""Python face of the C core: each call raises OSError("<syscall>: <strerror>") on failure.

Constants come from kernel headers (sched.h, mount.h, openat2.h); the C side only
makes the call, every flag and order is decided here or above.
"""

from __future__ import annotations

import os

from pyrunc._native import ffi, lib

# sched.h clone/unshare flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount.h flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# openat2.h resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# close_range flags
CLOSE_RANGE_CLOEXEC = 1 << 2


def _fail(name: str, target: str | None = None) -> OSError:
    err = ffi.errno
    return OSError(err, f"{name}: {os.strerror(err)}", target)


def _b(s: str | None) -> bytes | object:
    return ffi.NULL if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    if lib.pr_unshare(flags) < 0:
        raise _fail("unshare")


def setns(fd: int, nstype: int = 0) -> None:
    if lib.pr_setns(fd, nstype) < 0:
        raise _fail("setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    if lib.pr_mount(_b(source), os.fsencode(target), _b(fstype), flags, _b(data)) < 0:
        raise _fail("mount", target)


def umount2(target: str, flags: int = 0) -> None:
    if lib.pr_umount2(os.fsencode(target), flags) < 0:
        raise _fail("umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    if lib.pr_pivot_root(os.fsencode(new_root), os.fsencode(put_old)) < 0:
        raise _fail("pivot_root", new_root)


AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000


def mount_setattr(fd: int, path: str, flags: int, attr_set: int, attr_clr: int,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    if lib.pr_mount_setattr(fd, os.fsencode(path), flags, attr_set, attr_clr, propagation,
                            userns_fd) < 0:
        raise _fail("mount_setattr", path)


def sched_setattr(policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
    if lib.pr_sched_setattr(0, policy, flags, nice, priority, runtime, deadline, period) < 0:
        raise _fail("sched_setattr")


IOPRIO_WHO_PROCESS = 1


def ioprio_set(ioprio: int) -> None:
    if lib.pr_ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio) < 0:
        raise _fail("ioprio_set")


def personality(persona: int) -> int:
    rc: int = lib.pr_personality(persona)
    if rc < 0:
        raise _fail("personality")
    return rc


def sethostname(name: str) -> None:
    raw = name.encode()
    if lib.pr_sethostname(raw, len(raw)) < 0:
        raise _fail("sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    if lib.pr_setdomainname(raw, len(raw)) < 0:
        raise _fail("setdomainname")


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    fd: int = lib.pr_openat2(dirfd, os.fsencode(path), flags, mode, resolve)
    if fd < 0:
        raise _fail("openat2", path)
    return fd


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    if lib.pr_close_range(first, last, flags) < 0:
        raise _fail("close_range")


PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    rc: int = lib.pr_prctl(option, arg2, arg3, arg4, arg5)
    if rc < 0:
        raise _fail("prctl")
    return rc
