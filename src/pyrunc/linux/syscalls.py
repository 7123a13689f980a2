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

# mount.h flags: one definition, in mountopts (pure logic, importable without the C core)
from pyrunc.linux.mountopts import (  # noqa: E402
    MS_RDONLY as MS_RDONLY,
    MS_NOSUID as MS_NOSUID,
    MS_NODEV as MS_NODEV,
    MS_NOEXEC as MS_NOEXEC,
    MS_SYNCHRONOUS as MS_SYNCHRONOUS,
    MS_REMOUNT as MS_REMOUNT,
    MS_MANDLOCK as MS_MANDLOCK,
    MS_DIRSYNC as MS_DIRSYNC,
    MS_NOSYMFOLLOW as MS_NOSYMFOLLOW,
    MS_NOATIME as MS_NOATIME,
    MS_NODIRATIME as MS_NODIRATIME,
    MS_BIND as MS_BIND,
    MS_MOVE as MS_MOVE,
    MS_REC as MS_REC,
    MS_SILENT as MS_SILENT,
    MS_UNBINDABLE as MS_UNBINDABLE,
    MS_PRIVATE as MS_PRIVATE,
    MS_SLAVE as MS_SLAVE,
    MS_SHARED as MS_SHARED,
    MS_RELATIME as MS_RELATIME,
    MS_STRICTATIME as MS_STRICTATIME,
    MS_LAZYTIME as MS_LAZYTIME,
)
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
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_IDMAP = 0x00100000


def mount_setattr(fd: int, path: str, flags: int, attr_set: int, attr_clr: int,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    if lib.pr_mount_setattr(fd, os.fsencode(path), flags, attr_set, attr_clr, propagation,
                            userns_fd) < 0:
        raise _fail("mount_setattr", path)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    fd: int = lib.pr_open_tree(dirfd, os.fsencode(path), flags)
    if fd < 0:
        raise _fail("open_tree", path)
    return fd


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
    if lib.pr_move_mount(from_dirfd, os.fsencode(from_path), to_dirfd, os.fsencode(to_path),
                         flags) < 0:
        raise _fail("move_mount", to_path or from_path)


def sched_setattr(policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
    if lib.pr_sched_setattr(0, policy, flags, nice, priority, runtime, deadline, period) < 0:
        raise _fail("sched_setattr")


IOPRIO_WHO_PROCESS = 1


def ioprio_set(ioprio: int) -> None:
    if lib.pr_ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio) < 0:
        raise _fail("ioprio_set")


def set_mempolicy(mode: int, nodes: tuple[int, ...]) -> None:
    """set_mempolicy(2) for this thread (inherited across fork and exec). The kernel reads
    maxnode - 1 bits of the mask, hence the + 1 (as numactl passes it)."""
    if not nodes:
        rc = lib.pr_set_mempolicy(mode, ffi.NULL, 0)
    else:
        words = max(nodes) // 64 + 1
        mask = ffi.new("unsigned long[]", words)
        for node in nodes:
            mask[node // 64] |= 1 << (node % 64)
        rc = lib.pr_set_mempolicy(mode, mask, words * 64 + 1)
    if rc < 0:
        raise _fail("set_mempolicy")


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


def fstatfs_type(fd: int) -> int:
    """The filesystem magic number (statfs f_type) of an open file."""
    kind: int = lib.pr_fstatfs_type(fd)
    if kind == -1:
        raise _fail("fstatfs")
    return kind


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    if lib.pr_close_range(first, last, flags) < 0:
        raise _fail("close_range")


def keyctl_join_session_keyring(name: str | None) -> int:
    """Join (or create) the session keyring `name` (None: a new anonymous one); its serial."""
    rc: int = lib.pr_keyctl_join_session_keyring(_b(name))
    if rc < 0:
        raise _fail("keyctl(JOIN_SESSION_KEYRING)", name)
    return rc


def keyctl_describe(key: int) -> str:
    """KEYCTL_DESCRIBE: "type;uid;gid;perm;description"."""
    size = 256
    while True:
        buf = ffi.new("char[]", size)
        n: int = lib.pr_keyctl_describe(key, buf, size)
        if n < 0:
            raise _fail("keyctl(DESCRIBE)")
        if n <= size:
            return os.fsdecode(ffi.string(buf))
        size = n


def keyctl_setperm(key: int, perm: int) -> None:
    if lib.pr_keyctl_setperm(key, perm) < 0:
        raise _fail("keyctl(SETPERM)")


PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    rc: int = lib.pr_prctl(option, arg2, arg3, arg4, arg5)
    if rc < 0:
        raise _fail("prctl")
    return rc


def _mask(caps: set[int]) -> int:
    return sum(1 << c for c in caps)


def capset(effective: set[int], permitted: set[int], inheritable: set[int]) -> None:
    """This process's three capability sets, exactly these (every other one cleared)."""
    if lib.pr_capset(_mask(effective), _mask(permitted), _mask(inheritable)) < 0:
        raise _fail("capset")


RLIM_INFINITY = 2**64 - 1  # rlim_t's ~0


def setrlimit(resource: int, soft: int, hard: int) -> None:
    if lib.pr_setrlimit(resource, soft, hard) < 0:
        raise _fail("prlimit")


def getrlimit(resource: int) -> tuple[int, int]:
    soft, hard = ffi.new("unsigned long long *"), ffi.new("unsigned long long *")
    if lib.pr_getrlimit(resource, soft, hard) < 0:
        raise _fail("prlimit")
    return int(soft[0]), int(hard[0])


# --- seccomp: libseccomp (compiling, in the runtime) and seccomp(2) (loading, in the init) --
# seccomp.h values (libseccomp 2.5); pyrunc.linux.seccomp decides what to use.
from errno import EFAULT, EINVAL, EOPNOTSUPP  # noqa: E402

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_KILL = SCMP_ACT_KILL_THREAD
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_ERRNO_BASE = 0x00050000  # SCMP_ACT_ERRNO(x) = base | (x & 0xffff)
SCMP_ACT_TRACE_BASE = 0x7FF00000  # SCMP_ACT_TRACE(x) = base | (x & 0xffff)
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000

SCMP_CMP_NE = 1
SCMP_CMP_LT = 2
SCMP_CMP_LE = 3
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7

SCMP_FLTATR_ACT_DEFAULT = 1
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_TSYNC = 4
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_FLTATR_API_SYSRAWRC = 9

NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: unknown name

# linux/seccomp.h
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5
SECCOMP_MAX_CMPS = 6


class SeccompCtx:
    """A libseccomp filter context; `release()` (or the with-block's end) frees it."""

    __slots__ = ("_ptr",)

    def __init__(self, def_action: int) -> None:
        ptr = lib.pr_seccomp_init(def_action)
        if ptr == ffi.NULL:
            raise _fail("seccomp_init")
        self._ptr: object = ptr

    @property
    def ptr(self) -> object:
        if self._ptr is None:
            raise ValueError("seccomp filter context already released")
        return self._ptr

    def release(self) -> None:
        if self._ptr is not None:
            lib.pr_seccomp_release(self._ptr)
            self._ptr = None

    def __enter__(self) -> SeccompCtx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def seccomp_attr_set(ctx: SeccompCtx, attr: int, value: int) -> None:
    if lib.pr_seccomp_attr_set(ctx.ptr, attr, value) < 0:
        raise _fail("seccomp_attr_set")


def seccomp_arch_resolve_name(name: str) -> int:
    """libseccomp's arch token for e.g. "x86_64"; 0 when this libseccomp does not know it."""
    token: int = lib.pr_seccomp_arch_resolve_name(name.encode())
    return token


def seccomp_arch_native() -> int:
    token: int = lib.pr_seccomp_arch_native()
    return token


def seccomp_arch_add(ctx: SeccompCtx, token: int) -> None:
    if lib.pr_seccomp_arch_add(ctx.ptr, token) < 0:
        raise _fail("seccomp_arch_add")


def seccomp_syscall_resolve_name(name: str) -> int:
    """The native number (or a negative pseudo number); NR_SCMP_ERROR when unknown."""
    nr: int = lib.pr_seccomp_syscall_resolve_name(name.encode())
    return nr


def seccomp_syscall_resolve_name_arch(token: int, name: str) -> int:
    """The number of `name` on the architecture `token`; NR_SCMP_ERROR when unknown there."""
    nr: int = lib.pr_seccomp_syscall_resolve_name_arch(token, name.encode())
    return nr


def seccomp_rule_add_array(ctx: SeccompCtx, action: int, syscall_nr: int,
                           cmps: list[tuple[int, int, int, int]]) -> None:
    """Add a rule; `cmps` are (arg index, SCMP_CMP_* op, datum_a, datum_b), at most 6."""
    if cmps:
        arg = ffi.new("unsigned int[]", [c[0] for c in cmps])
        op = ffi.new("unsigned int[]", [c[1] for c in cmps])
        da = ffi.new("unsigned long long[]", [c[2] for c in cmps])
        db = ffi.new("unsigned long long[]", [c[3] for c in cmps])
        rc = lib.pr_seccomp_rule_add(ctx.ptr, action, syscall_nr, len(cmps), arg, op, da, db)
    else:
        rc = lib.pr_seccomp_rule_add(ctx.ptr, action, syscall_nr, 0, ffi.NULL, ffi.NULL, ffi.NULL,
                                     ffi.NULL)
    if rc < 0:
        raise _fail("seccomp_rule_add_array")


def seccomp_export_bpf(ctx: SeccompCtx, fd: int) -> None:
    if lib.pr_seccomp_export_bpf(ctx.ptr, fd) < 0:
        raise _fail("seccomp_export_bpf")


def seccomp_version() -> tuple[int, int, int]:
    v = ffi.new("unsigned int[3]")
    if lib.pr_seccomp_version(v, v + 1, v + 2) < 0:
        raise _fail("seccomp_version")
    return int(v[0]), int(v[1]), int(v[2])


def seccomp_set_mode_filter(flags: int, bpf: bytes) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER): `bpf` is a struct sock_filter array. Returns the
    listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0."""
    rc: int = lib.pr_seccomp_set_mode_filter(flags, bpf, len(bpf) // 8)
    if rc < 0:
        raise _fail("seccomp")
    return rc


def seccomp_probe_flags(flags: int) -> bool:
    """Whether the kernel knows these filter flags: SECCOMP_SET_MODE_FILTER with no program
    fails with EFAULT after the flags were accepted, EINVAL when they were not."""
    if lib.pr_seccomp(SECCOMP_SET_MODE_FILTER, flags, ffi.NULL) == 0:  # cannot happen
        return True
    err = ffi.errno
    if err == EFAULT:
        return True
    if err == EINVAL:
        return False
    raise OSError(err, f"seccomp: {os.strerror(err)}")


def seccomp_action_avail(action: int) -> bool:
    """seccomp(SECCOMP_GET_ACTION_AVAIL): whether the kernel knows this SECCOMP_RET_* action."""
    value = ffi.new("unsigned int *", action)
    if lib.pr_seccomp(SECCOMP_GET_ACTION_AVAIL, 0, value) == 0:
        return True
    err = ffi.errno
    if err == EOPNOTSUPP:
        return False
    raise OSError(err, f"seccomp: {os.strerror(err)}")


# --- bpf(2): cgroup device programs (pyrunc.cgroups.devicefilter builds them) ---------------
from errno import ENOSPC  # noqa: E402

# linux/bpf.h values
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6           # attach type
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2
_BPF_LOG_SIZE = 1 << 16


def bpf_prog_load(prog_type: int, insns: bytes, license: str, name: str,
                  expected_attach_type: int = 0) -> int:
    """Load a program (8-byte bpf_insn records); the verifier's log is in the error."""
    if len(insns) % 8:
        raise ValueError("bpf program length is not a multiple of 8 bytes")
    log = ffi.new("char[]", _BPF_LOG_SIZE)
    code = ffi.from_buffer(insns)
    fd: int = lib.pr_bpf_prog_load(prog_type, expected_attach_type, code, len(insns) // 8,
                                   license.encode(), name.encode(), log, _BPF_LOG_SIZE)
    if fd < 0:
        err = ffi.errno
        text = ffi.string(log).decode(errors="replace").strip()
        detail = f" (verifier: {text.splitlines()[-1]})" if text else ""
        raise OSError(err, f"bpf(BPF_PROG_LOAD): {os.strerror(err)}{detail}")
    return fd


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int,
                    replace_fd: int = -1) -> None:
    if lib.pr_bpf_prog_attach(target_fd, prog_fd, attach_type, flags, replace_fd) < 0:
        raise _fail("bpf(BPF_PROG_ATTACH)")


def bpf_prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    if lib.pr_bpf_prog_detach(target_fd, prog_fd, attach_type) < 0:
        raise _fail("bpf(BPF_PROG_DETACH)")


def bpf_prog_query(target_fd: int, attach_type: int) -> list[int]:
    """Ids of the programs attached to a cgroup directory fd for `attach_type`."""
    room = 64
    while True:
        ids = ffi.new("unsigned int[]", room)
        cnt = ffi.new("unsigned int *", room)
        flags = ffi.new("unsigned int *")
        if lib.pr_bpf_prog_query(target_fd, attach_type, flags, ids, cnt) == 0:
            return [int(ids[i]) for i in range(min(int(cnt[0]), room))]
        if ffi.errno != ENOSPC or room >= 1 << 16:
            raise _fail("bpf(BPF_PROG_QUERY)")
        room = int(cnt[0]) + 8


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    fd: int = lib.pr_bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        raise _fail("bpf(BPF_PROG_GET_FD_BY_ID)")
    return fd
# --- end bpf ---------------------------------------------------------------------------------
