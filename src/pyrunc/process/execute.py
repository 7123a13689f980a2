"""Applying a spec Process to the calling process and exec'ing it (init and exec share this)."""

from __future__ import annotations

import errno
import os

import _signal as signal  # `signal` without its enums (see pyrunc/cli/signals.py)

from pyrunc.errors import SystemError_
from pyrunc.linux import capabilities, procfs
from pyrunc.linux import syscalls as sc
from pyrunc.process import trampoline
from pyrunc.spec.config import RLIMITS, MemoryPolicy, Process

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any, NoReturn


def reset_signals_after_fork() -> None:
    """First thing in a forked child: the runtime's signal plumbing (a wakeup fd that will be
    some other file here, no-op handlers) must not fire in the container's processes."""
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) not in (signal.SIG_DFL, None):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def open_own_memory() -> int:
    """/proc/self/mem, opened while we are still dumpable: once not, the file is the host
    root's, which a rootless runtime (its uid unprivileged) cannot open."""
    return os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)


def forget_host_environment(fd: int) -> None:
    """Last thing before forking a process the container can see: it must not carry the
    runtime's environment. /proc/PID/environ (and cmdline) read the strings the kernel put
    on the stack at the runtime's execve, whatever Python or libc did since, so those are
    overwritten in place (through /proc/self/mem) and the process environment is emptied;
    what the container's processes get is built from the spec (`environ`). `fd` is
    open_own_memory()'s, closed here."""
    import posix
    os.environ.clear()  # unsetenv(3) each: libc's environ no longer points at them either
    posix.environ.clear()
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # Fields 48-51 (1-based; fields[0] is field 3): arg_start, arg_end, env_start, env_end.
    arg_start, arg_end, env_start, env_end = (int(x) for x in fields[45:49])
    try:
        for start, end in ((arg_start, arg_end), (env_start, env_end)):
            if end > start:
                os.pwrite(fd, bytes(end - start), start)
    finally:
        os.close(fd)


def load_seccomp(compiled: Any, before_user: bool, proc: Process) -> int | None:
    """Load the filter at the one of the two points that fits (see the caller); returns the
    notify listener fd if the profile has one."""
    if compiled is None or before_user == proc.no_new_privileges:
        return None
    from pyrunc.linux import seccomp
    return seccomp.load(compiled)


# What Python's resource.setrlimit said for these (the words callers may have matched).
_RLIMIT_ERRORS = {errno.EINVAL: "current limit exceeds maximum limit",
                  errno.EPERM: "not allowed to raise maximum limit"}


def set_rlimits(proc: Process) -> None:
    for rl in proc.rlimits:  # the spec's 2**64-1 is RLIM_INFINITY as it is
        try:
            sc.setrlimit(RLIMITS[rl.type], rl.soft, rl.hard)
        except OSError as exc:
            why = _RLIMIT_ERRORS.get(exc.errno or 0, str(exc))
            raise SystemError_(f"cannot set {rl.type} to soft {rl.soft} hard {rl.hard}: {why}",
                               exc.errno or errno.EPERM) from None


def set_attributes(proc: Process) -> None:
    """oomScoreAdj, scheduler and ioPriority, set while still root (before the user switch)."""
    try:
        if proc.oom_score_adj is not None:
            procfs.write_proc_file("/proc/self/oom_score_adj", str(proc.oom_score_adj))
        if proc.scheduler is not None:
            s = proc.scheduler
            sc.sched_setattr(s.policy, s.flags, s.nice, s.priority, s.runtime, s.deadline, s.period)
        if proc.io_priority is not None:
            sc.ioprio_set(proc.io_priority)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot apply process attributes "
                                        "(oomScoreAdj, scheduler or ioPriority)", exc) from None


def set_memory_policy(policy: MemoryPolicy | None) -> None:
    """linux.memoryPolicy, for the init and (as runc) every exec'd process: which mode, flag
    and node combinations work is the kernel's call (one NUMA node here; MPOL_F_NUMA_BALANCING
    only with MPOL_BIND...): its refusal is the error."""
    if policy is None:
        return
    try:
        sc.set_mempolicy(policy.mode | policy.flags, policy.nodes)
    except OSError as exc:
        raise SystemError_.from_oserror(
            f"config.json: linux.memoryPolicy: the kernel refuses {policy.text}", exc) from None


def set_affinity(cpus: frozenset[int] | None) -> None:
    if cpus is not None:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot set CPU affinity {sorted(cpus)}", exc) from None


def exec_process(proc: Process, path: str, env: dict[str, str], trampoline_fd: int,
                 wait_fd: int = -1, report_fd: int = -1) -> NoReturn:
    """Undo what Python did to signal dispositions (ignored signals survive execve), then
    exec the process through pyrunc-init (process/trampoline.py says why), which first
    waits for a byte on `wait_fd` and reports a failed exec on `report_fd`, if given."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for fd in (wait_fd, report_fd):
        if fd >= 0:
            os.set_inheritable(fd, True)
    trampoline.execute(trampoline_fd, trampoline.argv(path, proc.args, wait_fd, report_fd), env)


def environ(proc: Process) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in proc.env:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    if "HOME" not in env:
        env["HOME"] = home_of(proc.user.uid)
    return env


def home_of(uid: int) -> str:
    """HOME from the image's /etc/passwd -- read defensively: the image is hostile, and a FIFO
    or an endless file there must not hang or bloat the init."""
    import stat
    try:
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return "/"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        data = os.read(fd, 1 << 20).decode(errors="replace")
    except OSError:
        return "/"
    finally:
        os.close(fd)
    for line in data.splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2] == str(uid):
            return fields[5] or "/"
    return "/"


def set_user(proc: Process) -> None:
    user = proc.user
    try:
        os.setgroups(list(user.additional_gids))
    except PermissionError:
        if user.additional_gids:
            raise SystemError_("cannot set additional gids (setgroups is denied here)", errno.EPERM)
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot switch to uid {user.uid} gid {user.gid}", exc) from None


def lookup(name: str, env: dict[str, str]) -> str:
    """Find the executable as execvp would, so a missing binary fails `create`, not `start`."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name)
                      for d in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")]
    for cand in candidates:
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    if "/" in name:
        if os.path.exists(name):
            raise SystemError_(f"exec: {name}: permission denied (not an executable file)", errno.EACCES)
        raise SystemError_(f"exec: {name}: no such file or directory", errno.ENOENT)
    raise SystemError_(f'exec: "{name}": executable file not found in $PATH', errno.ENOENT)


def _chdir_error(cwd: str, exc: OSError) -> SystemError_:
    reason = (exc.strerror or str(exc)).lower()  # runc's (Go's) words are lower case
    return SystemError_(f'chdir to cwd ("{cwd}") set in config.json failed: {reason}',
                        exc.errno or errno.EIO)


def become_user(proc: Process) -> None:
    """Enter the working directory while still privileged (runc's order: a cwd only root may
    enter still works for a user that cannot), then switch to the container's user and
    capabilities (keeping the configured ones across setuid). A cwd that only the user can
    enter (root squashed, in a user namespace) is tried again as that user."""
    entered = True
    try:
        os.chdir(proc.cwd)
    except PermissionError:
        entered = False
    except OSError as exc:
        raise _chdir_error(proc.cwd, exc) from None
    capabilities.drop_bounding(proc.capabilities)
    set_user(proc)
    capabilities.apply_sets(proc.capabilities)
    os.umask(proc.user.umask if proc.user.umask is not None else 0o022)
    if not entered:
        try:
            os.chdir(proc.cwd)
        except OSError as exc:
            raise _chdir_error(proc.cwd, exc) from None
