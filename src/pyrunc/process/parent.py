"""The host side of starting a container's init: fork, id maps, hooks, READY.

Forks happen from the single-threaded CLI process; the container side never
re-executes the interpreter.
"""

from __future__ import annotations

import os
import sys

import _signal as signal  # `signal` without its enums (see pyrunc/cli/signals.py)

from pyrunc.cgroups import Manager
from pyrunc.errors import SystemError_
from pyrunc.process import execute, sync, trampoline
from pyrunc.process.init import InitOptions, defers_cgroup_join, stage_main
from pyrunc.records import NamedTuple
from pyrunc.spec.config import Config, MemoryPolicy, Process
from pyrunc.unixsock import Socket

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn


class InitHandle(NamedTuple):
    pid: int


def _write_maps(pid: int, cfg: Config) -> None:
    from pyrunc.linux.namespaces import write_id_maps
    try:
        write_id_maps(pid, cfg.linux.uid_mappings, cfg.linux.gid_mappings)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot write the user namespace id mappings", exc) from None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def spawn(cfg: Config, opts: InitOptions, cgroup: Manager,
          at_hooks: Callable[[int], str] | None = None,
          at_listener: Callable[[int, int], None] | None = None,
          at_pid: Callable[[int], None] | None = None) -> InitHandle:
    """Start the init and return once it is READY (blocked on the exec fifo).

    `at_pid(init_pid)` runs as soon as the init exists, before it does anything (to record
    it); `at_hooks(init_pid)` runs the runtime's hooks when the init reaches that point and
    returns the state JSON the init's own hooks get."""
    stage, psock = _fork_stage(
        lambda csock, tfd: stage_main(csock, cfg, opts._replace(trampoline_fd=tfd), cgroup))
    init_pid = 0
    try:
        userns = cfg.linux.namespace("user")
        if userns is not None and userns.path is None:
            sync.recv(psock, sync.USERNS_READY)
            _write_maps(stage, cfg)
            sync.tell(psock, sync.MAPPINGS_DONE)
        # With a joined pid namespace the stage builds the rootfs itself (init.py: _stage),
        # so the hooks come before the init exists; they get the stage's pid, which is in
        # every namespace of the container but the pid namespace (that one for its children).
        msg = sync.recv(psock, sync.INIT_PID, sync.HOOKS)
        if msg["type"] == sync.HOOKS:
            _hooks(psock, at_hooks, int(msg["pid"]))
            msg = sync.recv(psock, sync.INIT_PID)
        init_pid = int(msg["pid"])
        if at_pid is not None:
            at_pid(init_pid)
        sync.tell(psock, sync.GO)
        if defers_cgroup_join(cfg):
            # Meanwhile the init works; it waits for the word only before what needs it
            # (binding its own cgroups, hooks, READY).
            cgroup.adopt(init_pid)
            sync.tell(psock, sync.CGROUP_JOINED)
        os.waitpid(stage, 0)  # it is exiting; reaped while the init works
        stage = 0
        while True:
            msg = sync.recv(psock, sync.READY, sync.HOOKS, sync.LISTENER)
            if msg["type"] == sync.READY:
                return InitHandle(init_pid)
            if msg["type"] == sync.HOOKS:
                _hooks(psock, at_hooks, init_pid)
            elif "fd" in msg:  # the seccomp notify listener: to the agent before it goes on
                try:
                    if at_listener is not None:
                        at_listener(init_pid, msg["fd"])
                finally:
                    os.close(msg["fd"])
                sync.tell(psock, sync.LISTENER_DONE)
            else:
                raise SystemError_("sync: a listener message without its fd")
    except sync.InitDied as exc:
        _cleanup(stage, init_pid)
        if cgroup.oom_killed():
            raise SystemError_("container init was killed by the OOM killer while starting: "
                               "the memory limit is too small", exc.errno) from None
        raise
    except BaseException:
        _cleanup(stage, init_pid)
        raise
    finally:
        psock.close()


def _hooks(psock: Socket, at_hooks: Callable[[int], str] | None, pid: int) -> None:
    state = at_hooks(pid) if at_hooks is not None else "{}"
    sync.tell(psock, sync.HOOKS_DONE, state=state)


def _fork_stage(child: Callable[[Socket, int], NoReturn]) -> tuple[int, Socket]:
    """Fork the container-side stage, connected by a fresh sync socketpair; returns its pid
    and our end. The child never returns: it runs `child` on its end and on the sealed
    pyrunc-init that everything it starts must exec through (process/trampoline.py), made
    here, before the fork, so its pages are charged to us and not to the container."""
    tfd = trampoline.sealed_copy()
    try:
        psock, csock = sync.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        stage = os.fork()
        if stage == 0:
            execute.reset_signals_after_fork()
            psock.close()
            child(csock, tfd)
    finally:
        os.close(tfd)  # the stage has its own
    csock.close()
    return stage, psock


def _cleanup(stage: int, init_pid: int) -> None:
    for pid in (stage, init_pid):
        if pid:
            _kill(pid)
    if stage:
        os.waitpid(stage, 0)
    if init_pid:
        # As a subreaper (foreground run/exec) the killed child is ours to reap; a zombie
        # would keep its pid namespace, and so the container's cgroup, from going away.
        try:
            os.waitpid(init_pid, 0)
        except ChildProcessError:
            pass


def spawn_exec(init_pid: int, proc: Process, cgroup: Manager, preserve_fds: int,
               console_fd: int = -1, seccomp: Any = None,
               on_listener: Callable[[int, int], None] | None = None, keyring: str = "",
               memory_policy: MemoryPolicy | None = None, personality: int | None = None) -> int:
    """Start a process inside a running container; returns its host pid once it has exec'd.
    `keyring` names the container's session keyring, which it joins ("": keep ours);
    `memory_policy` and `personality` are the container's linux.memoryPolicy and
    linux.personality, which it gets as the init did (as with runc)."""
    from pyrunc.process import setns_init
    stage, psock = _fork_stage(lambda csock, tfd: setns_init.stage_main(
        csock, init_pid, proc, cgroup, preserve_fds, console_fd, tfd, seccomp, keyring,
        memory_policy, personality))
    pid = 0
    try:
        pid = int(sync.recv(psock, sync.INIT_PID)["pid"])
        os.waitpid(stage, 0)
        stage = 0
        sync.wait_exec(psock, proc.args[0] if proc.args else "",
                       None if on_listener is None else lambda fd: on_listener(pid, fd))
        return pid
    except BaseException:
        _cleanup(stage, pid)
        raise
    finally:
        psock.close()
