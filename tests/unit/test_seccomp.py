"""pyrunc.linux.seccomp without root: profiles compiled through libseccomp, then run on a small
classic-BPF interpreter to check what the kernel would decide for a given syscall and arguments.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pyrunc import OCI_VERSION
from pyrunc.errors import SpecError, SystemError_
from pyrunc.linux import seccomp
from pyrunc.linux import syscalls as sc

# --- a classic BPF interpreter for seccomp programs -------------------------------------

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000

RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

# x86_64 numbers used below
NR = {"read": 0, "write": 1, "open": 2, "getcwd": 79, "mkdir": 83, "personality": 135,
      "mount": 165, "reboot": 169, "getpgid": 121, "socket": 41, "clone": 56}
NR_I386 = {"getcwd": 183, "mkdir": 39, "socketcall": 102}

#: Every x86_64 syscall name in the kernel's asm/unistd_64.h (Linux 6.1), in number order.
X86_64_SYSCALLS = """
read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction
rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield
mremap msync mincore madvise shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm
setitimer getpid sendfile socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind
listen getsockname getpeername socketpair setsockopt getsockopt clone fork vfork execve exit
wait4 kill uname semget semop semctl shmdt msgget msgsnd msgrcv msgctl fcntl flock fsync
fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir rmdir creat link unlink
symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage sysinfo
times ptrace getuid syslog getgid setuid setgid geteuid getegid setpgid getppid getpgrp setsid
setreuid setregid getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid
setfsgid getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend
sigaltstack utime mknod uselib personality ustat statfs fstatfs sysfs getpriority setpriority
sched_setparam sched_getparam sched_setscheduler sched_getscheduler sched_get_priority_max
sched_get_priority_min sched_rr_get_interval mlock munlock mlockall munlockall vhangup
modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex setrlimit chroot sync acct settimeofday
mount umount2 swapon swapoff reboot sethostname setdomainname iopl ioperm create_module
init_module delete_module get_kernel_syms query_module quotactl nfsservctl getpmsg putpmsg
afs_syscall tuxcall security gettid readahead setxattr lsetxattr fsetxattr getxattr lgetxattr
fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex
sched_setaffinity sched_getaffinity set_thread_area io_setup io_destroy io_getevents io_submit
io_cancel get_thread_area lookup_dcookie epoll_create epoll_ctl_old epoll_wait_old
remap_file_pages getdents64 set_tid_address restart_syscall semtimedop fadvise64 timer_create
timer_settime timer_gettime timer_getoverrun timer_delete clock_settime clock_gettime
clock_getres clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes vserver mbind
set_mempolicy get_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify
mq_getsetattr kexec_load waitid add_key request_key keyctl ioprio_set ioprio_get inotify_init
inotify_add_watch inotify_rm_watch migrate_pages openat mkdirat mknodat fchownat futimesat
newfstatat unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll
unshare set_robust_list get_robust_list splice tee sync_file_range vmsplice move_pages utimensat
epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime timerfd_gettime accept4
signalfd4 eventfd2 epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev rt_tgsigqueueinfo
perf_event_open recvmmsg fanotify_init fanotify_mark prlimit64 name_to_handle_at
open_by_handle_at clock_adjtime syncfs sendmmsg setns getcpu process_vm_readv process_vm_writev
kcmp finit_module sched_setattr sched_getattr renameat2 seccomp getrandom memfd_create
kexec_file_load bpf execveat userfaultfd membarrier mlock2 copy_file_range preadv2 pwritev2
pkey_mprotect pkey_alloc pkey_free statx io_pgetevents rseq pidfd_send_signal io_uring_setup
io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig fsmount fspick pidfd_open
clone3 close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2 mount_setattr
quotactl_fd landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret
process_mrelease futex_waitv set_mempolicy_home_node
""".split()


def seccomp_data(nr: int, arch: int, args: Sequence[int] = (), ip: int = 0) -> bytes:
    full = list(args) + [0] * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, ip, *full)


pytestmark = pytest.mark.skipif(
    sc.seccomp_arch_native() != AUDIT_ARCH_X86_64, reason="syscall numbers here are x86_64's")


def run_bpf(bpf: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64, args: Sequence[int] = ()) -> int:
    """Run a seccomp filter on one syscall as the kernel would; returns the SECCOMP_RET_*."""
    data = seccomp_data(nr, arch, args)
    prog = [struct.unpack_from("<HBBI", bpf, off) for off in range(0, len(bpf), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    m32 = 0xFFFFFFFF
    for _ in range(len(prog) + 1):  # classic BPF only jumps forward
        code, jt, jf, k = prog[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # BPF_LD
            mode = code & 0xE0
            if mode == 0x20:  # ABS (word)
                assert code & 0x18 == 0x00 and k % 4 == 0 and k + 4 <= len(data)
                a = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:  # IMM
                a = k
            elif mode == 0x60:  # MEM
                a = mem[k]
            elif mode == 0x80:  # LEN
                a = len(data)
            else:
                raise AssertionError(f"unexpected ld {code:#x}")
        elif cls == 0x01:  # BPF_LDX
            mode = code & 0xE0
            x = {0x00: k, 0x60: mem[k % 16], 0x80: len(data)}[mode]
        elif cls == 0x02:  # BPF_ST
            mem[k] = a
        elif cls == 0x03:  # BPF_STX
            mem[k] = x
        elif cls == 0x04:  # BPF_ALU
            src = x if code & 0x08 else k
            op = code & 0xF0
            ops: dict[int, Callable[[int, int], int]] = {
                0x00: lambda p, q: p + q, 0x10: lambda p, q: p - q, 0x20: lambda p, q: p * q,
                0x30: lambda p, q: p // q, 0x40: lambda p, q: p | q, 0x50: lambda p, q: p & q,
                0x60: lambda p, q: p << q, 0x70: lambda p, q: p >> q, 0x80: lambda p, q: -p,
                0x90: lambda p, q: p % q, 0xA0: lambda p, q: p ^ q,
            }
            a = ops[op](a, src) & m32
        elif cls == 0x05:  # BPF_JMP
            src = x if code & 0x08 else k
            op = code & 0xF0
            if op == 0x00:  # JA
                pc += k
                continue
            cond = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
            pc += jt if cond else jf
        elif cls == 0x06:  # BPF_RET
            return (a if code & 0x18 == 0x10 else k) & m32
        elif cls == 0x07:  # BPF_MISC
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("filter ran past its end")


def ret(bpf: bytes, name: str, args: Sequence[int] = ()) -> int:
    return run_bpf(bpf, NR[name], AUDIT_ARCH_X86_64, args)


def compile_ok(profile: dict[str, Any]) -> seccomp.CompiledFilter:
    f = seccomp.compile_profile(profile)
    assert f.bpf and len(f.bpf) % 8 == 0
    assert 0 < f.instructions <= seccomp.BPF_MAXINSNS
    return f


# --- basic shapes -----------------------------------------------------------------------

def test_default_deny() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ERRNO"})
    assert (f.flags, f.uses_notify, f.warnings, f.listener_path) == (0, False, (), None)
    for name in NR:
        assert ret(f.bpf, name) == RET_ERRNO | errno.EPERM
    # a foreign architecture hits libseccomp's bad-arch action (kill)
    assert run_bpf(f.bpf, 39, AUDIT_ARCH_I386) == RET_KILL_THREAD


def test_default_errno_ret() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38})
    assert ret(f.bpf, "mkdir") == RET_ERRNO | errno.ENOSYS


def test_default_allow_with_denials() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]})
    assert ret(f.bpf, "read") == RET_ALLOW
    assert ret(f.bpf, "getcwd") == RET_ERRNO | errno.EPERM
    assert ret(f.bpf, "mkdir") == RET_ERRNO | errno.EACCES


DENIED = {"mount", "umount2", "reboot", "kexec_load", "kexec_file_load", "init_module",
          "finit_module", "delete_module", "ptrace", "swapon", "swapoff", "pivot_root",
          "open_by_handle_at", "bpf", "perf_event_open", "iopl", "ioperm", "acct", "quotactl",
          "lookup_dcookie", "vhangup", "settimeofday", "clock_settime", "adjtimex"}


def engine_profile() -> dict[str, Any]:
    """A container engine's default profile: deny by default, allow 300+ syscalls, some of
    them only with argument conditions (as Docker's personality and clone rules)."""
    allowed = [n for n in X86_64_SYSCALLS if n not in DENIED and n not in ("personality", "clone", "clone3")]
    assert len(allowed) > 300
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allowed, "action": "SCMP_ACT_ALLOW"},
            *({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}
              for v in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)),
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }


def test_engine_profile_300_syscalls() -> None:
    profile = engine_profile()
    start = time.perf_counter()
    f = compile_ok(profile)
    elapsed = time.perf_counter() - start
    assert f.warnings == ()
    assert elapsed < 1.0, f"compiling took {elapsed:.3f}s"
    for name in X86_64_SYSCALLS:
        nr = sc.seccomp_syscall_resolve_name(name)
        assert nr >= 0, name
        if name in DENIED:
            expect = RET_ERRNO | errno.EPERM
        elif name == "clone3":
            expect = RET_ERRNO | errno.ENOSYS
        elif name in ("personality", "clone"):
            continue
        else:
            expect = RET_ALLOW
        assert run_bpf(f.bpf, nr, AUDIT_ARCH_X86_64) == expect, name
        assert run_bpf(f.bpf, nr | X32_SYSCALL_BIT, AUDIT_ARCH_X86_64) in (expect, RET_ERRNO | 1), name
    assert ret(f.bpf, "personality", [0xFFFFFFFF]) == RET_ALLOW
    assert ret(f.bpf, "personality", [0x20008]) == RET_ALLOW
    assert ret(f.bpf, "personality", [4]) == RET_ERRNO | errno.EPERM
    assert ret(f.bpf, "clone", [0x11]) == RET_ALLOW  # SIGCHLD|... no namespace flags
    assert ret(f.bpf, "clone", [0x10000000 | 0x11]) == RET_ERRNO | errno.EPERM  # CLONE_NEWUSER
    # the i386 half of the filter too
    assert run_bpf(f.bpf, NR_I386["getcwd"], AUDIT_ARCH_I386) == RET_ALLOW
    assert run_bpf(f.bpf, NR_I386["socketcall"], AUDIT_ARCH_I386) == RET_ERRNO | errno.EPERM


# --- every action -----------------------------------------------------------------------

ACTION_CASES = [
    ({"action": "SCMP_ACT_KILL"}, RET_KILL_THREAD),
    ({"action": "SCMP_ACT_KILL_THREAD"}, RET_KILL_THREAD),
    ({"action": "SCMP_ACT_KILL_PROCESS"}, RET_KILL_PROCESS),
    ({"action": "SCMP_ACT_TRAP"}, RET_TRAP),
    ({"action": "SCMP_ACT_ERRNO"}, RET_ERRNO | errno.EPERM),
    ({"action": "SCMP_ACT_ERRNO", "errnoRet": 42}, RET_ERRNO | 42),
    ({"action": "SCMP_ACT_ERRNO", "errnoRet": 0}, RET_ERRNO | 0),
    ({"action": "SCMP_ACT_ERRNO", "errnoRet": 4094}, RET_ERRNO | 4094),
    ({"action": "SCMP_ACT_TRACE"}, RET_TRACE | errno.EPERM),
    ({"action": "SCMP_ACT_TRACE", "errnoRet": 0xFFFF}, RET_TRACE | 0xFFFF),
    ({"action": "SCMP_ACT_LOG"}, RET_LOG),
    ({"action": "SCMP_ACT_ALLOW"}, RET_ALLOW),
]


@pytest.mark.parametrize("rule,expect", ACTION_CASES, ids=lambda v: str(v))
def test_every_action(rule: dict[str, Any], expect: int) -> None:
    default = "SCMP_ACT_ERRNO" if rule["action"] == "SCMP_ACT_ALLOW" else "SCMP_ACT_ALLOW"
    f = compile_ok({"defaultAction": default, "syscalls": [{"names": ["getcwd"], **rule}]})
    assert ret(f.bpf, "getcwd") == expect
    # mkdir (83) is above getcwd (79), the profile's highest: ENOSYS under a deny default
    assert ret(f.bpf, "mkdir") == (RET_ALLOW if default == "SCMP_ACT_ALLOW"
                                   else RET_ERRNO | errno.ENOSYS)
    assert ret(f.bpf, "read") == (RET_ALLOW if default == "SCMP_ACT_ALLOW" else RET_ERRNO | 1)
    assert f.flags == 0 and not f.uses_notify


@pytest.mark.parametrize("action,expect", [
    ("SCMP_ACT_KILL", RET_KILL_THREAD), ("SCMP_ACT_KILL_PROCESS", RET_KILL_PROCESS),
    ("SCMP_ACT_TRAP", RET_TRAP), ("SCMP_ACT_TRACE", RET_TRACE | 1), ("SCMP_ACT_LOG", RET_LOG),
])
def test_every_default_action(action: str, expect: int) -> None:
    f = compile_ok({"defaultAction": action,
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})
    assert ret(f.bpf, "mkdir") == expect
    assert ret(f.bpf, "read") == RET_ALLOW


def test_notify() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                    "listenerMetadata": "MKNOD=/dev/null",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    assert ret(f.bpf, "mkdir") == RET_USER_NOTIF
    assert ret(f.bpf, "getcwd") == RET_ALLOW
    assert f.uses_notify
    assert f.flags == sc.SECCOMP_FILTER_FLAG_NEW_LISTENER
    assert (f.listener_path, f.listener_metadata) == ("/run/agent.sock", "MKNOD=/dev/null")


def test_rule_like_default_is_dropped() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}]})
    assert ret(f.bpf, "read") == ret(f.bpf, "getcwd") == RET_ERRNO | errno.EPERM
    assert ret(f.bpf, "mkdir") == RET_ERRNO | errno.ENOENT


# --- every operator ----------------------------------------------------------------------

BIG = 0x1_0000_0005  # differs from 5 only in the high word

OPERATOR_CASES: list[tuple[str, int, int, list[tuple[int, bool]]]] = [
    # (op, value, valueTwo, [(argument, matches)])
    ("SCMP_CMP_EQ", 5, 0, [(5, True), (4, False), (BIG, False), (0, False)]),
    ("SCMP_CMP_EQ", BIG, 0, [(BIG, True), (5, False)]),
    ("SCMP_CMP_NE", 5, 0, [(5, False), (4, True), (BIG, True)]),
    ("SCMP_CMP_LT", 5, 0, [(4, True), (5, False), (6, False), (0, True), (BIG, False)]),
    ("SCMP_CMP_LE", 5, 0, [(4, True), (5, True), (6, False), (BIG, False)]),
    ("SCMP_CMP_GT", 5, 0, [(4, False), (5, False), (6, True), (BIG, True)]),
    ("SCMP_CMP_GE", 5, 0, [(4, False), (5, True), (6, True), (BIG, True)]),
    ("SCMP_CMP_GE", BIG, 0, [(5, False), (BIG, True), (BIG + 1, True), (0xFFFFFFFF, False)]),
    ("SCMP_CMP_MASKED_EQ", 0xF0, 0x30, [(0x30, True), (0x3F, True), (0x130, True), (0x20, False),
                                        (0xF0, False)]),
    ("SCMP_CMP_MASKED_EQ", 0xFFFFFFFF_00000000, 0x1_00000000, [(BIG, True), (5, False)]),
    ("SCMP_CMP_EQ", 0xFFFFFFFF_FFFFFFFF, 0, [(0xFFFFFFFF_FFFFFFFF, True), (0xFFFFFFFF, False)]),
]


@pytest.mark.parametrize("op,value,value_two,cases", OPERATOR_CASES,
                         ids=[f"{c[0]}-{c[1]:#x}" for c in OPERATOR_CASES])
def test_every_operator(op: str, value: int, value_two: int, cases: list[tuple[int, bool]]) -> None:
    for index in (0, 5):
        f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42,
             "args": [{"index": index, "value": value, "valueTwo": value_two, "op": op}]}]})
        for arg, matches in cases:
            args = [0] * 6
            args[index] = arg
            got = ret(f.bpf, "getpgid", args)
            assert got == (RET_ERRNO | 42 if matches else RET_ALLOW), (op, index, hex(arg))


def test_conditions_on_different_arguments_are_anded() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}]})
    assert ret(f.bpf, "socket", [16, 3, 9]) == RET_ERRNO | 1
    assert ret(f.bpf, "socket", [16, 3, 0]) == RET_ALLOW
    assert ret(f.bpf, "socket", [2, 3, 9]) == RET_ALLOW


def test_conditions_on_the_same_argument_are_ored() -> None:
    """libseccomp takes one condition per argument in a rule: like runc, one rule each."""
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]}]})
    assert ret(f.bpf, "getpgid", [1]) == ret(f.bpf, "getpgid", [3]) == RET_ERRNO | 1
    assert ret(f.bpf, "getpgid", [2]) == RET_ALLOW


# --- architectures -----------------------------------------------------------------------

def test_architectures() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                      "SCMP_ARCH_X86"],
                    "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]})
    assert run_bpf(f.bpf, NR["getcwd"], AUDIT_ARCH_X86_64) == RET_ERRNO | 1
    assert run_bpf(f.bpf, NR_I386["getcwd"], AUDIT_ARCH_I386) == RET_ERRNO | 1
    assert run_bpf(f.bpf, NR["getcwd"] | X32_SYSCALL_BIT, AUDIT_ARCH_X86_64) == RET_ERRNO | 1
    assert run_bpf(f.bpf, NR_I386["mkdir"], AUDIT_ARCH_I386) == RET_ALLOW
    assert run_bpf(f.bpf, 1, 0xC00000B7) == RET_KILL_THREAD  # aarch64 was not added


def test_foreign_architectures_compile() -> None:
    """Every architecture this libseccomp knows is accepted: those of this host's byte order
    are added, the others skipped with a warning (libseccomp cannot mix byte orders)."""
    known = seccomp.features()["archs"]
    assert "SCMP_ARCH_X86_64" in known and "SCMP_ARCH_AARCH64" in known
    f = compile_ok({"defaultAction": "SCMP_ACT_ERRNO", "architectures": known,
                    "syscalls": [{"names": ["read", "write", "socketcall"], "action": "SCMP_ACT_ALLOW"}]})
    skipped = {w.split(": ")[2].split()[0] for w in f.warnings}
    assert {"SCMP_ARCH_MIPS", "SCMP_ARCH_S390X", "SCMP_ARCH_PPC64"} <= skipped
    assert not skipped & {"SCMP_ARCH_X86", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_PPC64LE",
                          "SCMP_ARCH_RISCV64", "SCMP_ARCH_MIPSEL"}
    i = known.index("SCMP_ARCH_MIPS")
    assert (f"config.json: linux.seccomp.architectures[{i}]: SCMP_ARCH_MIPS has another byte "
            "order than this host's, skipped") in f.warnings
    assert ret(f.bpf, "read") == RET_ALLOW
    assert run_bpf(f.bpf, NR_I386["socketcall"], AUDIT_ARCH_I386) == RET_ALLOW
    assert run_bpf(f.bpf, 63, 0xC00000B7) == RET_ALLOW  # aarch64 read
    assert run_bpf(f.bpf, 64, 0xC00000B7) == RET_ALLOW  # aarch64 write
    assert run_bpf(f.bpf, 34, 0xC00000B7) == RET_ERRNO | 1  # aarch64 mkdirat


def test_architecture_unknown_to_libseccomp_is_a_warning() -> None:
    unknown = [a for a in seccomp.ARCHITECTURES if a not in seccomp.features()["archs"]]
    if not unknown:
        pytest.skip("this libseccomp knows every architecture of the spec")
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", unknown[0]]})
    assert f.warnings == (f"config.json: linux.seccomp.architectures[1]: {unknown[0]} is not known "
                          f"to libseccomp {seccomp.libseccomp_version()}, skipped",)


# --- names, flags, warnings ----------------------------------------------------------------

def test_unknown_syscalls_are_skipped_with_warnings() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "no_such_call", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["also_unknown"], "action": "SCMP_ACT_NOTIFY"}]})
    assert f.warnings == (
        "config.json: linux.seccomp.syscalls[0].names[1]: unknown syscall 'no_such_call' skipped",
        "config.json: linux.seccomp.syscalls[1].names[0]: unknown syscall 'also_unknown' skipped",
    )
    assert ret(f.bpf, "read") == ret(f.bpf, "write") == RET_ALLOW
    assert not f.uses_notify and f.flags == 0  # the only NOTIFY rule was skipped


def test_syscall_of_another_architecture_only() -> None:
    """socketcall is i386-only: on an x86_64-only filter it is accepted and matches nothing."""
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["socketcall"], "action": "SCMP_ACT_ERRNO"}]})
    assert f.warnings == ()
    assert ret(f.bpf, "socket") == RET_ALLOW


@pytest.mark.parametrize("flags,notify,expect", [
    (["SECCOMP_FILTER_FLAG_LOG"], False, sc.SECCOMP_FILTER_FLAG_LOG),
    (["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], False, sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW),
    (["SECCOMP_FILTER_FLAG_TSYNC"], False, sc.SECCOMP_FILTER_FLAG_TSYNC),
    (["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"], False,
     sc.SECCOMP_FILTER_FLAG_LOG | sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW),
    ([], True, sc.SECCOMP_FILTER_FLAG_NEW_LISTENER),
    (["SECCOMP_FILTER_FLAG_TSYNC"], True, sc.SECCOMP_FILTER_FLAG_TSYNC
     | sc.SECCOMP_FILTER_FLAG_NEW_LISTENER | sc.SECCOMP_FILTER_FLAG_TSYNC_ESRCH),
    (["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], True,
     sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | sc.SECCOMP_FILTER_FLAG_NEW_LISTENER),
])
def test_flags(flags: list[str], notify: bool, expect: int) -> None:
    if not all(f in seccomp.features()["supportedFlags"] for f in flags):
        pytest.skip(f"kernel lacks one of {flags}")
    profile: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW", "flags": flags}
    if notify:
        profile.update(listenerPath="/run/agent.sock",
                       syscalls=[{"names": ["mknod"], "action": "SCMP_ACT_NOTIFY"}])
    f = compile_ok(profile)
    assert f.flags == expect
    assert f.uses_notify == notify
    assert f.warnings == ()


def test_wait_killable_recv_without_notify_is_a_warning() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})
    assert f.flags == 0
    assert f.warnings == ("config.json: linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV "
                          "has no effect without SCMP_ACT_NOTIFY, ignored",)


def test_listener_ignored_without_notify() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock"})
    assert not f.uses_notify and f.flags == 0


def test_compiled_filter_is_frozen() -> None:
    f = compile_ok({"defaultAction": "SCMP_ACT_ALLOW"})
    with pytest.raises(AttributeError):
        f.flags = 1  # type: ignore[misc]


# --- bad input: exact messages ------------------------------------------------------------

BASE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_TRAP"},
    ],
}

P = "config.json: linux.seccomp"
BAD: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("default-missing", lambda c: c.pop("defaultAction"), f"{P}.defaultAction: is required"),
    ("default-unknown", lambda c: c.update(defaultAction="SCMP_ACT_DENY"),
     f"{P}.defaultAction: unknown action 'SCMP_ACT_DENY'"),
    ("default-notify", lambda c: c.update(defaultAction="SCMP_ACT_NOTIFY"),
     f"{P}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    ("default-errno-with-allow", lambda c: c.update(defaultAction="SCMP_ACT_ALLOW", defaultErrnoRet=1),
     f"{P}.defaultErrnoRet: defaultErrnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, "
     "not SCMP_ACT_ALLOW"),
    ("default-errno-negative", lambda c: c.update(defaultErrnoRet=-1),
     f"{P}.defaultErrnoRet: -1 is not an integer from 0 to 4094"),
    ("default-errno-too-big", lambda c: c.update(defaultErrnoRet=4095),
     f"{P}.defaultErrnoRet: 4095 is not an integer from 0 to 4094"),
    ("default-errno-string", lambda c: c.update(defaultErrnoRet="1"),
     f"{P}.defaultErrnoRet: '1' is not an integer from 0 to 4094"),
    ("action-unknown", lambda c: c["syscalls"][3].update(action="SCMP_ACT_FOO"),
     f"{P}.syscalls[3].action: unknown action 'SCMP_ACT_FOO'"),
    ("action-missing", lambda c: c["syscalls"][1].pop("action"), f"{P}.syscalls[1].action: is required"),
    ("action-lowercase", lambda c: c["syscalls"][0].update(action="allow"),
     f"{P}.syscalls[0].action: unknown action 'allow'"),
    ("errno-with-trap", lambda c: c["syscalls"][3].update(errnoRet=1),
     f"{P}.syscalls[3].errnoRet: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, "
     "not SCMP_ACT_TRAP"),
    ("errno-with-kill", lambda c: c["syscalls"][3].update(action="SCMP_ACT_KILL_PROCESS", errnoRet=0),
     f"{P}.syscalls[3].errnoRet: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, "
     "not SCMP_ACT_KILL_PROCESS"),
    ("errno-too-big", lambda c: c["syscalls"][1].update(errnoRet=70000),
     f"{P}.syscalls[1].errnoRet: 70000 is not an integer from 0 to 4094"),
    ("trace-too-big", lambda c: c["syscalls"][1].update(action="SCMP_ACT_TRACE", errnoRet=0x10000),
     f"{P}.syscalls[1].errnoRet: 65536 is not an integer from 0 to 65535"),
    ("arch-unknown", lambda c: c["architectures"].append("x86_64"),
     f"{P}.architectures[1]: unknown architecture 'x86_64'"),
    ("arch-not-a-list", lambda c: c.update(architectures="SCMP_ARCH_X86"),
     f"{P}.architectures: 'SCMP_ARCH_X86' is not an array"),
    ("op-unknown", lambda c: c["syscalls"][2]["args"][0].update(op="=="),
     f"{P}.syscalls[2].args[0].op: unknown operator '=='"),
    ("op-missing", lambda c: c["syscalls"][2]["args"][0].pop("op"), f"{P}.syscalls[2].args[0].op: is required"),
    ("index-too-big", lambda c: c["syscalls"][2]["args"][0].update(index=6),
     f"{P}.syscalls[2].args[0].index: 6 is not an integer from 0 to 5"),
    ("value-negative", lambda c: c["syscalls"][2]["args"][0].update(value=-1),
     f"{P}.syscalls[2].args[0].value: -1 is not an integer from 0 to 18446744073709551615"),
    ("value-too-big", lambda c: c["syscalls"][2]["args"][0].update(value=1 << 64),
     f"{P}.syscalls[2].args[0].value: 18446744073709551616 is not an integer from 0 to "
     "18446744073709551615"),
    ("value-two-float", lambda c: c["syscalls"][2]["args"][0].update(valueTwo=1.5),
     f"{P}.syscalls[2].args[0].valueTwo: 1.5 is not an integer from 0 to 18446744073709551615"),
    ("value-bool", lambda c: c["syscalls"][2]["args"][0].update(value=True),
     f"{P}.syscalls[2].args[0].value: True is not an integer from 0 to 18446744073709551615"),
    ("names-empty", lambda c: c["syscalls"][0].update(names=[]),
     f"{P}.syscalls[0].names: at least one syscall name is needed"),
    ("names-missing", lambda c: c["syscalls"][0].pop("names"),
     f"{P}.syscalls[0].names: None is not an array of syscall names"),
    ("name-not-string", lambda c: c["syscalls"][0]["names"].append(3),
     f"{P}.syscalls[0].names[2]: 3 is not a syscall name"),
    ("flag-unknown", lambda c: c.update(flags=["TSYNC"]), f"{P}.flags[0]: unknown flag 'TSYNC'"),
    ("notify-without-listener", lambda c: c["syscalls"][3].update(action="SCMP_ACT_NOTIFY"),
     f"{P}.listenerPath: SCMP_ACT_NOTIFY is used (linux.seccomp.syscalls[3]) but listenerPath is not set"),
    ("notify-write", lambda c: (c.update(listenerPath="/a"),
                                c["syscalls"][0].update(action="SCMP_ACT_NOTIFY")),
     f"{P}.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for 'write': the runtime needs it "
     "after the filter is loaded"),
    ("metadata-without-listener", lambda c: c.update(listenerMetadata="x"),
     f"{P}.listenerMetadata: listenerMetadata needs listenerPath"),
    ("syscall-not-object", lambda c: c["syscalls"].append("read"),
     f"{P}.syscalls[4]: 'read' is not an object"),
]


@pytest.mark.parametrize("change,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(change: Callable[[dict[str, Any]], object], message: str) -> None:
    profile = copy.deepcopy(BASE)
    change(profile)
    with pytest.raises(SpecError) as info:
        seccomp.compile_profile(profile)
    assert str(info.value) == message
    assert info.value.errno == errno.EINVAL


def test_base_profile_is_fine() -> None:
    f = compile_ok(copy.deepcopy(BASE))
    assert ret(f.bpf, "getcwd") == RET_ERRNO | 42
    assert ret(f.bpf, "mkdir") == RET_TRAP
    assert ret(f.bpf, "personality", [0xFFFFFFFF]) == RET_ALLOW
    assert ret(f.bpf, "personality", [0]) == RET_ERRNO | errno.EPERM


def test_too_many_instructions() -> None:
    rules = [{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": i % 4000 + 1,
              "args": [{"index": 0, "value": i, "op": "SCMP_CMP_EQ"}]} for i in range(1500)]
    with pytest.raises(SpecError) as info:
        seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
    assert str(info.value).startswith(f"{P}: the profile compiles to ")
    assert str(info.value).endswith(" BPF instructions, more than the kernel's limit of 4096")


# --- the container process state and the listener socket -----------------------------------

STATE = {"ociVersion": OCI_VERSION, "id": "c1", "status": "creating", "pid": 4422,
         "bundle": "/containers/redis", "annotations": {"myKey": "myValue"}}


def test_process_state() -> None:
    doc = json.loads(seccomp.process_state(json.dumps(STATE).encode(), "MKNOD=/dev/null"))
    assert doc == {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": 4422,
                   "metadata": "MKNOD=/dev/null", "state": STATE}
    doc = json.loads(seccomp.process_state(json.dumps(STATE).encode(), "", pid=7))
    assert doc == {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": 7, "state": STATE}


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, list[tuple[bytes, list[int]]]]]:
    """A seccomp agent's listening socket; collects (payload, fds) per connection."""
    path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got: list[tuple[bytes, list[int]]] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
            while chunk := conn.recv(1 << 16):
                data += chunk
            got.append((data, fds))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path, got
    t.join(5)
    srv.close()
    for _, fds in got:
        for fd in fds:
            os.close(fd)


def test_send_listener(agent: tuple[str, list[tuple[bytes, list[int]]]]) -> None:
    path, got = agent
    r, w = os.pipe()
    try:
        seccomp.send_listener(path, w, json.dumps(STATE).encode(), "meta")
    finally:
        os.close(w)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    (payload, fds), = got
    assert json.loads(payload) == {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": 4422,
                                   "metadata": "meta", "state": STATE}
    assert len(fds) == 1
    os.write(fds[0], b"same pipe")
    assert os.read(r, 100) == b"same pipe"
    os.close(r)


def test_send_listener_nobody_listening(tmp_path: Path) -> None:
    r, w = os.pipe()
    path = str(tmp_path / "none.sock")
    try:
        with pytest.raises(SystemError_) as info:
            seccomp.send_listener(path, w, json.dumps(STATE).encode())
    finally:
        os.close(r)
        os.close(w)
    assert str(info.value) == ("failed to connect with seccomp agent specified in the seccomp "
                               f"profile: {path}: No such file or directory")
    assert info.value.errno == errno.ENOENT


# --- features and constants ----------------------------------------------------------------

def test_features() -> None:
    feat = seccomp.features()
    assert feat["enabled"] is True
    assert feat["actions"] == sorted(seccomp.ACTIONS)
    assert feat["operators"] == sorted(seccomp.OPERATORS)
    assert "SCMP_ARCH_X86_64" in feat["archs"]
    assert set(feat["archs"]) <= set(seccomp.ARCHITECTURES)
    assert feat["knownFlags"] == sorted(seccomp.FLAGS)
    assert set(feat["supportedFlags"]) <= set(feat["knownFlags"])
    assert "SECCOMP_FILTER_FLAG_LOG" in feat["supportedFlags"]


def test_constants_match_the_headers(tmp_path: Path) -> None:
    """syscalls.py spells out seccomp.h and linux/seccomp.h values: check them with a compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/seccomp.h").exists():
        pytest.skip("no C compiler or no libseccomp headers")
    names = {
        "SCMP_ACT_KILL_PROCESS": "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD": "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL": "SCMP_ACT_KILL", "SCMP_ACT_TRAP": "SCMP_ACT_TRAP",
        "SCMP_ACT_NOTIFY": "SCMP_ACT_NOTIFY", "SCMP_ACT_ERRNO_BASE": "SCMP_ACT_ERRNO(0)",
        "SCMP_ACT_TRACE_BASE": "SCMP_ACT_TRACE(0)", "SCMP_ACT_LOG": "SCMP_ACT_LOG",
        "SCMP_ACT_ALLOW": "SCMP_ACT_ALLOW",
        **{n: n for n in ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
                          "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", "SCMP_FLTATR_ACT_DEFAULT",
                          "SCMP_FLTATR_ACT_BADARCH", "SCMP_FLTATR_CTL_NNP", "SCMP_FLTATR_CTL_TSYNC",
                          "SCMP_FLTATR_CTL_LOG", "SCMP_FLTATR_CTL_SSB", "SCMP_FLTATR_CTL_OPTIMIZE",
                          "SCMP_FLTATR_API_SYSRAWRC", "SECCOMP_SET_MODE_FILTER",
                          "SECCOMP_GET_ACTION_AVAIL", "SECCOMP_FILTER_FLAG_TSYNC",
                          "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                          "SECCOMP_FILTER_FLAG_NEW_LISTENER", "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
                          "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")},
        "NR_SCMP_ERROR": "__NR_SCMP_ERROR",
    }
    src = tmp_path / "c.c"
    src.write_text("#include <stdio.h>\n#include <seccomp.h>\n#include <linux/seccomp.h>\nint main(void){\n"
                   + "".join(f'printf("{py} %lld\\n", (long long)({c}));\n' for py, c in names.items())
                   + "return 0;}\n")
    exe = tmp_path / "c"
    subprocess.run([cc, str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        py, value = line.split()
        assert getattr(sc, py) == int(value), py


def test_enosys_above_the_profiles_syscalls() -> None:
    """runc's patchbpf: per architecture (x86_64, its x32 mode, i386 each on its own), a
    syscall above the profile's highest there is ENOSYS; at or below it, the filter decides."""
    f = compile_ok({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EACCES,
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    "syscalls": [{"names": ["getcwd", "mkdir"], "action": "SCMP_ACT_ALLOW"}]})
    eacces, enosys = RET_ERRNO | errno.EACCES, RET_ERRNO | errno.ENOSYS
    assert ret(f.bpf, "mkdir") == RET_ALLOW
    assert ret(f.bpf, "read") == eacces  # known, below mkdir (83): the default
    assert run_bpf(f.bpf, 84) == enosys and run_bpf(f.bpf, 1000) == enosys
    x32 = 0x40000000
    assert run_bpf(f.bpf, x32 | 83) == RET_ALLOW  # x32's mkdir
    assert run_bpf(f.bpf, x32 | 0) == eacces
    assert run_bpf(f.bpf, x32 | 1000) == enosys
    # i386: getcwd 183 is the highest; mkdir 39 allowed, 184 above
    assert run_bpf(f.bpf, 39, AUDIT_ARCH_I386) == RET_ALLOW
    assert run_bpf(f.bpf, 3, AUDIT_ARCH_I386) == eacces
    assert run_bpf(f.bpf, 184, AUDIT_ARCH_I386) == enosys
    # an architecture outside the profile still meets libseccomp's bad-arch action
    assert run_bpf(f.bpf, 1000, 0x40000028) == RET_KILL_THREAD  # AUDIT_ARCH_ARM
    # without x32 in the profile its calls are not the stub's to answer
    g = compile_ok({"defaultAction": "SCMP_ACT_KILL_PROCESS",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]})
    assert run_bpf(g.bpf, 1000) == RET_ERRNO | errno.ENOSYS
    assert run_bpf(g.bpf, x32 | 1000) != RET_ERRNO | errno.ENOSYS
    # permissive defaults get no stub
    for default in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        h = compile_ok({"defaultAction": default,
                        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]})
        assert run_bpf(h.bpf, 1000) != RET_ERRNO | errno.ENOSYS
