"""`exec`: a new process that joins a running container (namespaces, cgroup, settings).

Same two-step shape as create: the runtime forks a stage, which joins the
container's cgroup, then the init's namespaces (user first, mount
last) and forks the process, which applies the spec Process and execs. Success
is the sync socket closing on exec (it is close-on-exec); a failure arrives as
an error message with errno.
"""

from __future__ import annotations

import os

from pyrunc.errors import SystemError_
from pyrunc.linux import keyring, namespaces, terminal
from pyrunc.linux import syscalls as sc
from pyrunc.process import execute, sync
from pyrunc.process.init import close_inherited, report
from pyrunc.spec.config import Process
from pyrunc.unixsock import Socket

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from pyrunc.cgroups import Manager
    from pyrunc.spec.config import MemoryPolicy

# /proc/PID/ns names in join order.
_NS_FILES = (("user", "user"), ("ipc", "ipc"), ("uts", "uts"), ("network", "net"),
             ("pid", "pid"), ("cgroup", "cgroup"), ("time", "time"), ("mount", "mnt"))


def _differs(pid: int, name: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/{name}").st_ino != os.stat(f"/proc/self/ns/{name}").st_ino
    except FileNotFoundError:
        return False


def stage_main(sock: Socket, init_pid: int, proc: Process, cgroup: Manager, preserve_fds: int,
               console_fd: int, trampoline_fd: int, seccomp: Any = None,
               keyring_name: str = "", memory_policy: MemoryPolicy | None = None,
               personality: int | None = None) -> NoReturn:
    code = 1
    try:
        mem = execute.open_own_memory()
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        execute.set_affinity(proc.cpu_affinity_initial)
        close_inherited({sock.fileno(), console_fd, trampoline_fd, mem}, 3 + preserve_fds)
        cgroup.join()  # the initial affinity lasts until here: joining a cpuset resets it
        # Our child is visible in the container the moment it exists (while the host's
        # /proc is still ours to use for this).
        execute.forget_host_environment(mem)
        fds = []
        for ns_type, name in _NS_FILES:
            if _differs(init_pid, name):
                path = f"/proc/{init_pid}/ns/{name}"
                try:
                    fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), ns_type, path))
                except OSError as exc:
                    raise SystemError_.from_oserror(f"cannot open {path}", exc) from None
        for fd, ns_type, path in fds:
            namespaces.join(fd, ns_type, path)
            os.close(fd)
        if keyring_name:
            # The container's own, by name (the init made it searchable for this), as runc
            # does: not the caller's, and nothing new.
            keyring.join(keyring_name, False, set_perm=False)
        # The child may fail at once; its error must not reach the runtime before its pid
        # does, or the runtime could not reap it. It waits for this pipe to close.
        hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(hold_w)
            os.read(hold_r, 1)
            os.close(hold_r)
            _child(sock, proc, console_fd, trampoline_fd, seccomp, memory_policy, personality)
        os.close(hold_r)
        sync.send(sock, sync.INIT_PID, pid=pid)
        os.close(hold_w)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the runtime
        report(sock, exc)
    finally:
        os._exit(code)


def _child(sock: Socket, proc: Process, console_fd: int, trampoline_fd: int,
           seccomp: Any, memory_policy: MemoryPolicy | None,
           personality: int | None) -> NoReturn:
    try:
        if proc.terminal:
            os.setsid()
            terminal.setup(console_fd, proc.console_size, console_dev=False,
                           uid=proc.user.uid)
        execute.set_affinity(proc.cpu_affinity_final)
        env = execute.environ(proc)
        execute.set_rlimits(proc)
        execute.set_attributes(proc)
        if personality is not None:
            sc.personality(personality)
        execute.set_memory_policy(memory_policy)
        if proc.no_new_privileges:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        path = execute.lookup(proc.args[0], env)
        listener = execute.load_seccomp(seccomp, before_user=True, proc=proc)
        if listener is not None:
            sync.hand_listener(sock, listener)
        execute.become_user(proc)
        listener = execute.load_seccomp(seccomp, before_user=False, proc=proc)
        if listener is not None:
            sync.hand_listener(sock, listener)
        execute.exec_process(proc, path, env, trampoline_fd, report_fd=sock.fileno())
    except BaseException as exc:  # noqa: BLE001
        report(sock, exc)
    os._exit(127)
