"""The container side: the stage process that sets up namespaces, and the init.

The runtime forks the *stage*; it becomes non-dumpable, joins the container's
cgroup (itself: see cgroups.Manager.join), joins or creates the namespaces and forks
the *init* (pid 1 of a new pid namespace), then exits. The init builds the rootfs,
switches to the container's user, reports READY and blocks on the exec fifo
until `start`, then execs the container process. Every failure before READY is
sent to the runtime as an error with its errno; nothing here writes the log.
"""

from __future__ import annotations

import errno
import os

from pyrunc.records import NamedTuple
from pyrunc import rootless, unixsock
from pyrunc.errors import PyruncError, SystemError_
from pyrunc.linux import keyring, namespaces, network, procfs, rootfs, terminal
from pyrunc.linux import syscalls as sc
from pyrunc.process import execute, hooks, sync, trampoline
from pyrunc.spec.config import Config, Hooks, Mount, Process
from pyrunc.unixsock import Socket

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any, Mapping, NoReturn

    from pyrunc.cgroups import Manager


class InitOptions(NamedTuple):
    fifo_path: str
    no_pivot: bool = False
    preserve_fds: int = 0
    console_fd: int = -1  # connected console socket, when process.terminal
    seccomp: Any = None  # a seccomp.CompiledFilter, compiled by the runtime before the fork
    idmapped: Mapping[int, int] = {}  # mounts[i] -> its idmapped tree (never mutated)
    trampoline_fd: int = -1  # the sealed pyrunc-init (process/trampoline.py)
    keyring: str = ""  # the session keyring to join ("_ses.<id>"); "" keeps the caller's


def report(sock: Socket, exc: BaseException) -> None:
    if isinstance(exc, PyruncError):
        sync.send_error(sock, exc.msg, exc.errno)
    elif isinstance(exc, OSError):
        msg = str(exc.strerror or exc)
        # a bare "Permission denied" would leave one guessing; an fd (execve's) is no name
        if isinstance(exc.filename, (str, bytes)):
            msg = f"{os.fsdecode(exc.filename)}: {msg}"
        sync.send_error(sock, msg, exc.errno or errno.EIO)
    else:
        sync.send_error(sock, f"internal error: {type(exc).__name__}: {exc}", errno.EIO)


def stage_main(sock: Socket, cfg: Config, opts: InitOptions, cgroup: Manager) -> NoReturn:
    code = 1
    try:
        _stage(sock, cfg, opts, cgroup)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the runtime
        report(sock, exc)
    finally:
        os._exit(code)


def close_inherited(keep: set[int], first: int) -> None:
    """Close every fd from `first` on but those in `keep`: the runtime's own fds (its state
    lock, sockets) share open file descriptions with ours, and must not outlive it here."""
    start = first
    for fd in sorted(k for k in keep if k >= first):
        if fd > start:
            sc.close_range(start, fd - 1)
        start = fd + 1
    sc.close_range(start)


def defers_cgroup_join(cfg: Config) -> bool:
    """What the runtime may finish for the init (Manager.adopt) while the init works: all
    but where a new cgroup namespace must be rooted at the container's cgroup."""
    ns = cfg.linux.namespace("cgroup")
    pidns = cfg.linux.namespace("pid")
    if pidns is not None and pidns.path is not None:
        return False  # the stage itself builds the rootfs (binds its own cgroups): _stage
    return ns is None or ns.path is not None


def _become_root(where: str) -> None:
    """Be uid/gid 0 of the user namespace just entered, new or joined: our host ids mean
    nothing in there, and files we create (mount points, /dev) would fail with EOVERFLOW."""
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot become root in {where} (is id 0 mapped?)",
                                        exc) from None


def _stage(sock: Socket, cfg: Config, opts: InitOptions, cgroup: Manager) -> None:
    # Before anything of the container can see us: /proc/self/exe is the host's python.
    mem = execute.open_own_memory()
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    close_inherited({sock.fileno(), opts.console_fd, opts.trampoline_fd, mem,
                     *opts.idmapped.values()},
                    3 + opts.preserve_fds)
    global _wait_fd
    _wait_fd = _start_relay(opts.fifo_path, opts.trampoline_fd)  # before: not in the cgroup
    # Before the namespaces: a new cgroup namespace is rooted where we are.
    cgroup.join(defer=defers_cgroup_join(cfg))
    # While the host's /proc is ours: the init (and a created init that waits in Python for
    # startContainer hooks) may be seen from the container.
    execute.forget_host_environment(mem)
    linux = cfg.linux
    to_join = {ns.type: (namespaces.open_checked(ns), ns.path) for ns in linux.namespaces if ns.path}
    new_flags = 0
    for ns in linux.namespaces:
        if ns.path is None and ns.type != "user":
            new_flags |= namespaces.FLAGS[ns.type]
    userns = linux.namespace("user")
    for ns_type in namespaces.JOIN_ORDER:
        if ns_type == "user" and userns is not None and userns.path is None:
            sc.unshare(sc.CLONE_NEWUSER)
            # A non-dumpable process's /proc files are the host root's: an unprivileged
            # runtime could not open our uid_map. Dumpable only meanwhile (as runc's
            # nsexec); nothing of the container exists yet, and the user owns us anyway.
            rootless = os.geteuid() != 0
            if rootless:
                sc.prctl(sc.PR_SET_DUMPABLE, 1)
            sync.send(sock, sync.USERNS_READY)
            sync.recv(sock, sync.MAPPINGS_DONE)
            if rootless:
                sc.prctl(sc.PR_SET_DUMPABLE, 0)
            _become_root("the new user namespace")
        elif ns_type in to_join:
            fd, path = to_join.pop(ns_type)
            namespaces.join(fd, ns_type, str(path))
            os.close(fd)
            if ns_type == "user":
                _become_root(f"the user namespace {path}")
    try:
        sc.unshare(new_flags)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot create namespaces", exc) from None
    if opts.keyring:
        # Here, as the container's root in its user namespace, so that the keyring is
        # the container's; the init and all it starts inherit it (an exec joins none).
        keyring.join(opts.keyring, userns is not None)
    if linux.time_offsets:
        # Only writable before the first process enters the new time namespace: our child.
        try:
            with open("/proc/self/timens_offsets", "w") as f:
                f.write("".join(f"{clock} {secs} {nsecs}\n" for clock, secs, nsecs in linux.time_offsets))
        except OSError as exc:
            raise SystemError_.from_oserror("cannot write linux.timeOffsets", exc) from None
    pidns = linux.namespace("pid")
    deferred: list[tuple[Mount, int]] | None = None
    if pidns is not None and pidns.path is not None:
        # A joined pid namespace is shared with others (a pod's, another container's): our
        # child becomes visible there the moment it exists, so it must not be born with the
        # host's root, cwd or environment (/proc/PID/root, cwd, environ, fd of a process
        # there are open to whoever may ptrace it). The filesystem is made, and pivoted
        # into, here, where nobody of the container sees us; what needs the container's
        # pid namespace (procfs) the init mounts afterwards.
        deferred = _prepare_fs(sock, cfg, opts, _process(cfg), defer_proc=True)
    pid = os.fork()
    if pid == 0:
        init_main(sock, cfg, opts, deferred)
    sync.send(sock, sync.INIT_PID, pid=pid)


def _start_relay(fifo_path: str, trampoline_fd: int) -> int:
    """The exec fifo's reader, and the end of a socket the init waits on for `start`.

    The fifo is opened here, while we are host root in the host's namespaces, for reading
    AND writing (so this neither blocks nor ever sees EOF), but held only by a relay, a
    child that stays in the host's pid namespace and cgroup as pyrunc-init in relay mode
    (csrc/freestanding/trampoline.c): it moves `start`'s byte from the fifo to the socket.
    The init holds only the socket: a process that may open /proc/<init>/fd/N (one with
    CAP_SYS_PTRACE in a pid namespace shared with the container) could reopen a fifo for
    writing and start the container early, but cannot reopen a socket, and what it writes
    into a dup of the init's end goes to the relay, which never reads it. The relay exits
    when the init is gone (its end hangs up), so a dead init leaves no fifo reader, and
    `state`/`start` see that as before (container.py: _init_waits_on)."""
    try:
        fifo = os.open(fifo_path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot open the exec fifo", exc) from None
    ours, theirs = unixsock.pair(unixsock.SOCK_STREAM)
    keep = {fifo, theirs.fileno()}
    null = -1
    try:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        for fd in keep:  # closed here right after: only the relay keeps them
            os.set_inheritable(fd, True)
        # Spawned (vfork and exec), not forked: no copy of this interpreter's page tables,
        # nor of its pages written afterwards. Stdio is /dev/null; whatever else would
        # survive the exec is closed. pyrunc-init is exec'd by its /proc/self/fd path
        # (posix_spawn takes no fd): the host's /proc, we are in no namespace of the
        # container yet. (glibc's spawn leaves its two internal signals, 32 and 33,
        # ignored in the child; the relay, libc-free, has no use for them.)
        actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds() if fd not in keep]
        os.posix_spawn(f"/proc/self/fd/{trampoline_fd}",
                       [trampoline.NAME, "relay", str(fifo), str(theirs.fileno())], {},
                       file_actions=actions)
    except OSError as exc:
        ours.close()
        raise SystemError_.from_oserror("cannot start the exec fifo's relay", exc) from None
    finally:
        if null >= 0:
            os.close(null)
        os.close(fifo)
        theirs.close()
    return ours.detach()


def _inheritable_fds() -> list[int]:
    """Our fds above stdio that an exec would keep."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if int(name) > 2 and os.get_inheritable(int(name)):
                fds.append(int(name))
        except OSError:  # the listing's own fd, closed by now
            pass
    return fds


def init_main(sock: Socket, cfg: Config, opts: InitOptions,
              deferred: list[tuple[Mount, int]] | None = None) -> NoReturn:
    try:
        proc, path, env = _init(sock, cfg, opts, deferred)
    except BaseException as exc:  # noqa: BLE001
        report(sock, exc)
        os._exit(1)
    _wait_start_and_exec(opts, proc, path, env, cfg.hooks)


_wait_fd = -1  # our end of the relay's socket (see _start_relay)
_hook_state = ""


def _process(cfg: Config) -> Process:
    # Without a process the container can still be created (the spec requires one only at
    # start, which the runtime then refuses): an empty Process applies nothing.
    return cfg.process or Process(args=(), cwd="/")


def _prepare_fs(sock: Socket, cfg: Config, opts: InitOptions, proc: Process,
                defer_proc: bool = False) -> list[tuple[Mount, int]]:
    """The container's filesystem up to the pivot (and the hooks on the way); with
    `defer_proc`, what rootfs.prepare leaves for after it (see there)."""
    os.umask(0)
    linux = cfg.linux
    netns = linux.namespace("network")
    if netns is not None and netns.path is None:
        network.loopback_up()
    # In a user namespace, new or the runtime's own (rootless podman's): no mknod there.
    in_userns = linux.namespace("user") is not None or rootless.in_user_ns()
    pending = [defers_cgroup_join(cfg)]

    def cgroup_joined() -> None:
        """The runtime finishes our cgroup join meanwhile (Manager.adopt): wait for it."""
        if pending[0]:
            sync.recv(sock, sync.CGROUP_JOINED)
            pending[0] = False

    h = cfg.hooks
    if h.start_container:
        # startContainer runs after the pivot, where the host's Python library is out of
        # reach: what running a hook imports must be loaded now.
        import subprocess  # noqa: F401

    def hook_point() -> None:
        """Let the runtime run prestart/createRuntime, then run createContainer here."""
        global _hook_state
        cgroup_joined()  # hooks' processes belong in the container's cgroups
        # netDevices move at this point too (the runtime does it, before its hooks).
        if (h.prestart or h.create_runtime or h.create_container or h.start_container
                or linux.net_devices):
            sync.send(sock, sync.HOOKS, pid=os.getpid())
            _hook_state = str(sync.recv(sock, sync.HOOKS_DONE)["state"])
            # The spec (and runc): createContainer runs with the rootfs as its cwd.
            hooks.run("createContainer", h.create_container, _hook_state,
                      trampoline_fd=opts.trampoline_fd, cwd=cfg.root.path)

    if linux.namespace("mount") is not None:
        return rootfs.prepare(cfg, in_userns, opts.no_pivot, proc.cwd, hook_point, opts.idmapped,
                              cgroup_joined, defer_proc)
    hook_point()
    os.chroot(cfg.root.path)
    os.chdir("/")
    return []


def _init(sock: Socket, cfg: Config, opts: InitOptions,
          deferred: list[tuple[Mount, int]] | None) -> tuple[Process, str, dict[str, str]]:
    # Speak only after the stage has told the runtime our pid: the runtime says go.
    sync.recv(sock, sync.GO)
    proc = _process(cfg)
    os.setsid()
    linux = cfg.linux
    if deferred is None:
        _prepare_fs(sock, cfg, opts, proc)
    else:  # the stage made the rest (a joined pid namespace)
        rootfs.mount_deferred(deferred, linux.namespace("cgroup") is not None)
    if cfg.hostname is not None:
        sc.sethostname(cfg.hostname)
    if cfg.domainname is not None:
        sc.setdomainname(cfg.domainname)
    if linux.sysctl:
        _write_sysctls(linux.sysctl)
    rootfs.release_proc()
    if proc.terminal:
        terminal.setup(opts.console_fd, proc.console_size, console_dev=True, uid=proc.user.uid)
    rootfs.finalize(cfg)
    env = execute.environ(proc)
    execute.set_rlimits(proc)
    execute.set_attributes(proc)
    if linux.personality is not None:
        sc.personality(linux.personality)
    execute.set_memory_policy(linux.memory_policy)  # exec keeps it (runtime-spec 1.3)
    if proc.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    path = execute.lookup(proc.args[0], env) if proc.args else ""
    # Anything inherited beyond stdio and --preserve-fds must not reach the container.
    sc.close_range(3 + opts.preserve_fds, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
    # runc's order: seccomp before dropping privileges unless no_new_privs lets an
    # unprivileged process load it, in which case as late as possible, after.
    # The listener fd goes to the agent at once (sync.hand_listener says why).
    listener = execute.load_seccomp(opts.seccomp, before_user=True, proc=proc)
    if listener is not None:
        sync.hand_listener(sock, listener)
    execute.become_user(proc)
    listener = execute.load_seccomp(opts.seccomp, before_user=False, proc=proc)
    if listener is not None:
        sync.hand_listener(sock, listener)
    sync.send(sock, sync.READY)
    sock.close()
    return proc, path, env


def _write_sysctls(sysctl: tuple[tuple[str, str], ...]) -> None:
    """Through the procfs this init mounted on /proc (its fd, kept since), else through
    whatever is at /proc if that is a procfs root (no mount namespace; a bound procfs)."""
    proc_root = rootfs.own_proc()
    opened = proc_root < 0
    if opened:
        try:
            proc_root = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise SystemError_.from_oserror("cannot set sysctls: no /proc", exc) from None
    try:
        for key, value in sysctl:
            try:
                procfs.write_sysctl(proc_root, key, value)
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot set sysctl {key}={value}", exc) from None
    finally:
        if opened:
            os.close(proc_root)


def _wait_start_and_exec(opts: InitOptions, proc: Process, path: str, env: dict[str, str],
                         cfg_hooks: Hooks) -> NoReturn:
    """Become pyrunc-init, which waits for `start`'s byte (from the exec fifo's relay) and
    then execs the process: until `start` the container sees no Python. startContainer
    hooks must run between the two, so with them we wait here and pyrunc-init only execs."""
    wait_fd = _wait_fd
    try:
        if cfg_hooks.start_container:
            try:
                if not os.read(_wait_fd, 1):  # blocks until start
                    raise OSError(errno.EPIPE, "the exec fifo's relay exited")
                os.close(_wait_fd)
                wait_fd = -1
            except OSError as exc:
                raise SystemError_.from_oserror("waiting on the exec fifo", exc) from None
            hooks.run("startContainer", cfg_hooks.start_container,
                      _hook_state.replace('"creating"', '"created"', 1),
                      trampoline_fd=opts.trampoline_fd)
        execute.exec_process(proc, path, env, opts.trampoline_fd, wait_fd)
    except PyruncError as exc:
        os.write(2, f"pyrunc: {exc.msg}\n".encode())
    except OSError as exc:
        os.write(2, f"pyrunc: cannot exec {trampoline.NAME}: {exc.strerror}\n".encode())
    except BaseException as exc:  # noqa: BLE001 - never unwind into the stage's code
        os.write(2, f"pyrunc: internal error: {type(exc).__name__}: {exc}\n".encode())
    os._exit(127)
