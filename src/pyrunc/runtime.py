"""The library API behind the CLI: one method per command, each guarded by status."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import sys
import time

TYPE_CHECKING = False  # typing is for the type checker only (it costs hot commands ~5 ms)

import _signal as signal  # `signal` without its enums (see pyrunc/cli/signals.py)

from pyrunc import jsonio
from pyrunc.container import Container
from pyrunc.errors import (InvalidStateError, NotExistError, NotRunningError,
                           PyruncError, SpecError, SystemError_, UnsupportedError, UsageError)
from pyrunc.linux import procfs
from pyrunc.log import Logger
from pyrunc.state import Record, StateStore, atomic_write, validate_id
from pyrunc.status import Status

# Commands engines call most (state, kill, start, delete) must not pay for what only create,
# run and exec need (spec conversion, the C core, the process machinery): those are
# imported where they are used.
from pyrunc import cgroups  # noqa: E402 (the cgroup commands below use it at module level)

if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

    from pyrunc.options import CreateOptions
    from pyrunc.spec.config import Config, MemoryPolicy, Process


#: What a supervisor (`timeout`, systemd, an engine giving up) or a user sends to stop a
#: create or a run that is still setting up.
_ABORT_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGHUP: "SIGHUP"}


class Interrupted(PyruncError):
    """A signal stopped a create: raised where the runtime was (a blocking wait on the init,
    a hook), so the create's cleanup kills the init and removes its cgroup and state."""

    default_errno = errno.EINTR


def _abort_on_signals() -> dict[int, Any]:
    """Make the abort signals raise Interrupted (once: a second one during the cleanup is
    ignored, so the cleanup finishes); returns the handlers to put back. Without this a
    SIGTERM killed a create outright, leaving its init, cgroup and state behind, and a
    foreground run (whose handlers only queue signals for the container) ignored it."""
    def abort(sig: int, _frame: FrameType | None) -> None:
        for s in _ABORT_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(f"interrupted by {_ABORT_SIGNALS.get(sig, sig)} while creating the "
                          "container; what it made is removed")
    prev: dict[int, Any] = {}
    for sig in _ABORT_SIGNALS:
        prev[sig] = signal.signal(sig, abort)
    return prev


def _rfc3339_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _replace(obj: Any, **changes: Any) -> Any:
    """A copy of a config record or options with some fields changed."""
    return obj._replace(**changes)


def _socket_activation(cfg: Config) -> tuple[Config, int]:
    """systemd socket activation passes through, as with runc: fds 3.. that LISTEN_FDS counts
    (for this process, LISTEN_PID) stay open for the container, whose init is then told
    LISTEN_FDS=N and LISTEN_PID=1. --preserve-fds count on top of them."""
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
        pid = int(os.environ.get("LISTEN_PID", str(os.getpid())))
    except ValueError:
        return cfg, 0
    if count <= 0 or pid != os.getpid() or cfg.process is None:
        return cfg, 0
    env = tuple(e for e in cfg.process.env if not e.startswith(("LISTEN_FDS=", "LISTEN_PID=")))
    proc = _replace(cfg.process, env=env + (f"LISTEN_FDS={count}", "LISTEN_PID=1"))
    return _replace(cfg, process=proc), count


def _check_host_netns(cfg: Config) -> None:
    """net.* sysctls in a joined network namespace that is in fact the host's (compared by
    device and inode, whatever path names it) would change the host: refused, as runc does."""
    ns = cfg.linux.namespace("network")
    keys = [k for k, _ in cfg.linux.sysctl if k.startswith("net.")]
    if ns is None or ns.path is None or not keys:
        return
    try:
        theirs, ours = os.stat(ns.path), os.stat("/proc/self/ns/net")
    except OSError:
        return  # the namespace join reports a bad path with its own error
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        raise UsageError(f"config.json: linux.sysctl[{keys[0]!r}]: refused: {ns.path} is the "
                         f"host's network namespace")


def _holds_anothers(c: Container, status: str, cg: cgroups.Manager) -> bool:
    """Whether the container's cgroup can hold only another's processes now, never to be
    listed or signalled as its own: it is stopped and had a pid namespace of its own (the
    kernel killed all of its with its init: a later container may have the cgroupsPath), or
    its systemd unit was started again since its create (Unit.replaced; False for the
    cgroupfs driver, or where systemd cannot say)."""
    if status != Status.STOPPED:
        return False
    if c.record.new_pid_ns:
        return True
    replaced = getattr(cg, "replaced", None)
    if replaced is None:
        return False
    try:
        return bool(replaced())
    except PyruncError:
        return False


def _check_cgroup_unused(cg: Any) -> None:
    """A cgroup that already holds processes (another container's, or anything else) or is
    frozen is refused: joining it would share limits, and our cleanup would kill its tasks.
    Every hierarchy counts (v1: a process in cpu:/x and memory:/x but not pids:/x too)."""
    if not cg.exists():
        return
    # runc's words first: its callers and users match them.
    pids = cg.occupants()
    if pids:
        raise InvalidStateError(f"container's cgroup is not empty: {len(pids)} process(es) found "
                                f"(cgroup {cg.path} is in use, e.g. by pid {pids[0]}): give the container "
                                f"its own linux.cgroupsPath")
    if cg.is_frozen():
        raise InvalidStateError(f"container's cgroup unexpectedly frozen (cgroup {cg.path}): "
                                f"give the container its own linux.cgroupsPath, or thaw it")


def _owner_of(path: str) -> str:
    """`list` shows who owns the state directory, by name as runc does."""
    import pwd
    uid = os.stat(path).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def write_pid_file(path: str, pid: int) -> None:
    """Digits only, no newline; temp name + rename so readers never see half a file."""
    path = os.path.abspath(path)
    try:
        atomic_write(path, str(pid).encode(), 0o644)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot write pid file {path}", exc) from None


class Runtime:
    def __init__(self, root: str, log: Logger | None = None, systemd_cgroup: bool = False,
                 rootless: bool = False) -> None:
        self.store = StateStore(root, private=rootless)
        self.log = log or Logger()
        self.systemd_cgroup = systemd_cgroup  # the driver of containers this one creates
        self.rootless = rootless  # pyrunc.rootless: an unprivileged caller (or forced)

    # -- lookups -------------------------------------------------------------------------------

    def container(self, container_id: str) -> Container:
        validate_id(container_id)
        return Container.load(self.store, container_id)

    # -- create / start / run ------------------------------------------------------------------

    def create(self, container_id: str, opts: CreateOptions, cfg: Config | None = None) -> Container:
        """Create the container from `opts.bundle`, or from `cfg` already loaded from it.
        SIGTERM, SIGINT or SIGHUP meanwhile abort it, and what it made is removed."""
        prev = _abort_on_signals()
        try:
            return self._create(container_id, opts, cfg)
        finally:
            for sig, handler in prev.items():
                signal.signal(sig, handler)

    def _create(self, container_id: str, opts: CreateOptions, cfg: Config | None) -> Container:
        from pyrunc.linux import capabilities, terminal
        from pyrunc.process import hooks, parent
        from pyrunc.process.init import InitOptions
        validate_id(container_id)
        if cfg is None:
            from pyrunc.spec.load import load_bundle
            cfg = load_bundle(opts.bundle)
        self._check_supported(cfg, opts)
        caps = cfg.process.capabilities if cfg.process else None
        for name in capabilities.unknown(caps):
            self.log.warning(f"capability {name} is unknown to this kernel or to pyrunc; skipped")
        for name in capabilities.unraisable_ambient(caps):
            # `runc spec`'s own config asks for these; runc raises what it can, silently.
            self.log.debug(f"ambient capability {name} is not both permitted and inheritable; skipped")
        cfg, listen_fds = _socket_activation(cfg)
        opts = _replace(opts, preserve_fds=opts.preserve_fds + listen_fds)
        compiled = None
        if cfg.linux.seccomp is not None:
            from pyrunc.linux import seccomp
            compiled = seccomp.compile_profile(cfg.linux.seccomp)
            # Syscalls and architectures this libseccomp does not know: profiles are written
            # for many kernels and hosts, and runc skips these at debug level too.
            for note in compiled.warnings:
                self.log.debug(note)
        if not os.path.isdir(cfg.root.path):
            raise SystemError_(f"rootfs ({cfg.root.path}) does not exist", errno.ENOENT)
        lock = self.store.claim(container_id)
        cgroup = None
        record: Record | None = None
        init_pid = 0
        moved_devices: list[Any] = []  # netdevices.Moved: sent home if the create fails
        try:
            candidate = cgroups.manager(cfg.linux.cgroups_path, container_id,
                                        self.systemd_cgroup, dict(cfg.annotations))
            _check_cgroup_unused(candidate)
            cgroup = candidate  # from here on it is ours to clean up
            record = Record(
                id=container_id, pid=0, start_time=0, bundle=cfg.bundle, rootfs=cfg.root.path,
                created=_rfc3339_now(),
                # A systemd unit only once systemd gave it (on_started): a create killed
                # before would have its delete stop a unit of that name that is another's.
                cgroup_path="" if hasattr(cgroup, "on_started") else cgroup.path,
                annotations=dict(cfg.annotations), oci_version=cfg.oci_version,
                new_pid_ns=any(ns.type == "pid" and ns.path is None for ns in cfg.linux.namespaces),
                has_process=cfg.process is not None,
                keyring="" if opts.no_new_keyring else f"_ses.{container_id}",
                hooks={"poststart": hooks.to_records(cfg.hooks.poststart),
                       "poststop": hooks.to_records(cfg.hooks.poststop)},
            )
            # Saved before anything is made, so a killed create can still be deleted.
            self.store.save(record)
            if hasattr(cgroup, "on_started"):
                def unit_started() -> None:
                    assert record is not None and cgroup is not None
                    record.cgroup_path = cgroup.path
                    self.store.save(record)
                cgroup.on_started = unit_started
            self.store.save_exec_config(container_id, _exec_config(cfg))

            def at_listener(pid: int, fd: int) -> None:
                assert compiled is not None and compiled.listener_path
                st = jsonio.dumps({**Container(self.store, record).state(), "pid": pid,
                                 "status": "creating"}).encode()
                seccomp.send_listener(compiled.listener_path, fd, st, compiled.listener_metadata)

            def at_hooks(pid: int) -> str:
                if cfg.linux.net_devices:  # before the hooks: they may want to see them
                    from pyrunc.linux import netdevices
                    moved_devices.append(netdevices.move(cfg.linux.net_devices, pid))
                st = hooks.state_json({**Container(self.store, record).state(), "pid": pid}, "creating")
                # prestart (deprecated) is from the time when hooks ran after create: it is
                # given "created", as crun does and the runtime-tools suite checks.
                hooks.run("prestart", cfg.hooks.prestart, st.replace('"creating"', '"created"', 1))
                hooks.run("createRuntime", cfg.hooks.create_runtime, st)
                return st

            def at_pid(pid: int) -> None:
                start = procfs.start_time(pid)
                if start is not None:
                    record.pid, record.start_time, record.ready = pid, start, False
                    self.store.save(record)

            fifo = self.store.fifo(container_id)
            # Root's alone (0600): whoever can write it can start the container. The stage
            # opens it before it joins any namespace, so the init needs no access of its own.
            os.mkfifo(fifo, 0o600)
            no_cgroup = ""
            if self.rootless:
                from pyrunc import rootless
                cgroup, no_cgroup = rootless.cgroup_or_none(cgroup, cfg)
                if cgroup.path != record.cgroup_path:
                    record.cgroup_path = cgroup.path
                    self.store.save(record)
                warnings = rootless.set_resources(cgroup, cfg.linux.resources) \
                    if cfg.linux.resources is not None else []
            else:
                cgroup.create()
                warnings = cgroup.set(cfg.linux.resources) \
                    if cfg.linux.resources is not None else []
            # (saved with the init's pid: a create killed before has none, and is not checked)
            record.unit_invocation = getattr(cgroup, "invocation", "")
            for warning in warnings:
                self.log.warning(warning)
            console = terminal.connect(opts.console_socket) if opts.console_socket else None
            console_fd = console.fileno() if console else opts.console_fd
            idmapped: dict[int, int] = {}
            try:
                # Rootless, the binds are made inside, by the container's user namespace
                # (which can reach what the user can); open_tree here would need root.
                in_userns = cfg.linux.namespace("user") is not None and not self.rootless
                if any(m.idmap or (in_userns and m.is_bind) for m in cfg.mounts):
                    from pyrunc.linux import idmap
                    idmapped = idmap.prepare(cfg.mounts, every_bind=in_userns)
                init_opts = InitOptions(fifo, opts.no_pivot, opts.preserve_fds, console_fd,
                                        compiled, idmapped,
                                        keyring=record.keyring)
                handle = parent.spawn(cfg, init_opts, cgroup, at_hooks, at_listener, at_pid)
            finally:
                for fd in idmapped.values():
                    os.close(fd)
                if console is not None:
                    console.close()
            init_pid = handle.pid
            start = procfs.start_time(init_pid)
            if start is None:
                raise SystemError_("container init exited during create")
            if cfg.linux.intel_rdt is not None:  # the init waits for start: nothing ran yet
                from pyrunc.linux import intelrdt
                record.rdt_dirs = intelrdt.apply(cfg.linux.intel_rdt, container_id, init_pid)
            record.pid = init_pid
            record.start_time = start
            record.ready = True
            self.store.save(record)
            if opts.pid_file:
                write_pid_file(opts.pid_file, init_pid)
            if no_cgroup:
                self.log.warning(no_cgroup)
            self.log.debug(f"container {container_id} created: init pid {init_pid}, "
                           f"cgroup {cgroup.path}")
            return Container(self.store, record)
        except BaseException:
            for devices in moved_devices:
                devices.undo()
            if init_pid:
                try:
                    os.kill(init_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if record is not None and record.rdt_dirs:
                from pyrunc.linux import intelrdt
                intelrdt.remove(record.rdt_dirs, in_use_check=False)
            if cgroup is not None:
                try:
                    cgroup.destroy()
                except Exception as exc:  # whatever it was, the state dir must still go
                    self.log.warning(f"cleanup after failed create: {exc}")
            self.store.remove(container_id)
            raise
        finally:
            for devices in moved_devices:
                devices.close()
            lock.release()

    def _check_supported(self, cfg: Config, opts: CreateOptions) -> None:
        if self.rootless:
            from pyrunc import rootless
            rootless.check_config(cfg)
        _check_host_netns(cfg)
        if cfg.linux.intel_rdt is not None:
            from pyrunc.linux import intelrdt
            intelrdt.check_host()
        for dev in cfg.linux.net_devices:  # before anything is made (no pyroute2 import)
            # by the kernel's name lookup, as netlink's: altnames too (/sys/class/net has
            # only primary names, and an altname was "no such device")
            import socket
            try:
                socket.if_nametoindex(dev.host)
            except OSError:
                raise SpecError(f"config.json: linux.netDevices: network device {dev.host!r}: "
                                "no such device on the host") from None
        if cfg.process is None:
            return
        if cfg.process.terminal and not opts.console_socket and opts.console_fd < 0:
            raise UsageError("cannot allocate a terminal for a detached container without "
                             "--console-socket (process.terminal is true)")
        if cfg.process.apparmor_profile:
            if not os.path.isdir("/sys/kernel/security/apparmor"):
                raise UnsupportedError("config.json: process.apparmorProfile: AppArmor is not "
                                       "enabled on this host")
            raise UnsupportedError("config.json: process.apparmorProfile: applying AppArmor "
                                   "profiles is not supported by pyrunc yet")
        if cfg.process.selinux_label or cfg.linux.mount_label:
            if os.path.isdir("/sys/fs/selinux"):
                raise UnsupportedError("config.json: process.selinuxLabel: SELinux labels are not "
                                       "supported by pyrunc yet")
            # Labels mean nothing without SELinux: runc and crun go on silently; we say so
            # at debug level (there is nothing for the user to do about it).
            self.log.debug("SELinux is not enabled on this host: process.selinuxLabel and "
                             "linux.mountLabel are ignored")
        if opts.console_socket and not cfg.process.terminal:
            raise UsageError("--console-socket needs process.terminal set to true in config.json")

    def start(self, container_id: str) -> None:
        with self.store.lock(container_id):
            c = self.container(container_id)
            status = c.status()
            if status == Status.STOPPED:
                raise InvalidStateError("cannot start a container that has stopped")
            if status != Status.CREATED:
                raise InvalidStateError(f"cannot start an already {status} container")
            if not c.record.has_process:
                # Nothing will ever run: the init goes, so the container is stopped, not stuck.
                self._signal_init(c, signal.SIGKILL)
                raise InvalidStateError("cannot start a container without a process "
                                        "(config.json has no process)")
            self._release(c)
        self.log.debug(f"container {container_id} started: init pid {c.pid}")
        self._run_poststart(c)

    def _run_poststart(self, c: Container) -> None:
        """runtime-spec 1.3: a failing poststart hook is an error; the container is stopped
        (every process killed) and the lifecycle goes on: `delete` removes it and runs the
        poststop hooks. The hooks after the failed one do not run (as runc)."""
        if not c.record.hooks.get("poststart"):
            return
        from pyrunc.process import hooks
        st = hooks.state_json({**c.state(), "pid": c.record.pid}, "running")
        try:
            hooks.run("poststart", hooks.from_records(c.record.hooks["poststart"]), st)
        except PyruncError:
            self._stop_now(c)
            raise

    def _stop_now(self, c: Container) -> None:
        """SIGKILL all of the container and wait (bounded) until its init is gone."""
        try:
            if c.record.cgroup_path:
                self._signal_all(c.cgroup(), signal.SIGKILL, c.status())
            self._signal_init(c, signal.SIGKILL)
        except NotRunningError:
            return
        deadline = time.monotonic() + 10
        while c.alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run_warn(self, phase: str, c: Container, status: str) -> None:
        """poststart/poststop: a failure is a warning, and the lifecycle goes on."""
        if not c.record.hooks.get(phase):
            return
        from pyrunc.process import hooks
        recorded = hooks.from_records(c.record.hooks[phase])
        # The init's pid even if it already exited: the hook is about that process.
        st = hooks.state_json({**c.state(), "pid": c.record.pid}, status)
        for i, hook in enumerate(recorded):
            try:
                hooks.run(phase, [hook], st, first_index=i)
            except PyruncError as exc:
                self.log.warning(str(exc))  # and the remaining hooks still run

    def _release(self, c: Container) -> None:
        """Write the byte the init is blocked reading from the exec fifo, then wait until it
        has taken it (or died: a pidfd makes a dead init an error, never a hang)."""
        fifo = self.store.fifo(c.id)
        try:
            pidfd = os.pidfd_open(c.pid)
        except ProcessLookupError:
            raise NotRunningError("cannot start container: its init process is gone") from None
        try:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                raise InvalidStateError("cannot start an already running container") from None
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # nobody holds the read end: the init is gone
                    raise NotRunningError("cannot start container: its init process exited") from None
                raise
            try:
                os.write(fd, b"0")
                while _unread(fd):
                    # A short-lived process may take the byte and exit between two looks:
                    # only a byte still unread when the init is gone means it never started.
                    if select.select([pidfd], [], [], 0.001)[0] and _unread(fd):
                        raise NotRunningError("cannot start container: its init process exited")
            finally:
                os.close(fd)
        finally:
            os.close(pidfd)
        os.unlink(fifo)

    def run(self, container_id: str, opts: CreateOptions, detach: bool, keep: bool) -> int:
        from pyrunc.linux import syscalls as sc
        from pyrunc.process.foreground import Foreground
        from pyrunc.spec.load import load_bundle
        validate_id(container_id)
        cfg = load_bundle(opts.bundle)
        fg: Foreground | None = None
        ours = None
        if not detach:
            # The init is forked by an intermediate process; as subreaper we get to wait for it.
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
            fg = Foreground()
        try:
            # A foreground run of a terminal process with no console socket: we are the console.
            if fg is not None and cfg.process is not None and cfg.process.terminal \
                    and not opts.console_socket:
                ours, theirs = fg.console_pair()
                try:
                    c = self.create(container_id, _replace(opts, console_fd=theirs.fileno()), cfg)
                finally:
                    theirs.close()
                fg.take_master(ours)
            else:
                c = self.create(container_id, opts, cfg)
            try:
                self.start(container_id)
            except BaseException:
                self._destroy(c)
                raise
            if fg is None:
                return 0
            code = fg.wait_for(c.pid)
        finally:
            if ours is not None:
                ours.close()
            if fg is not None:
                fg.restore()
        if not keep:
            self._destroy(c)
        return code

    # -- exec ----------------------------------------------------------------------------------

    def exec(self, container_id: str, proc: Process, detach: bool = False,
             pid_file: str | None = None, preserve_fds: int = 0,
             console_socket: str | None = None, sub_cgroups: dict[str, str] | None = None,
             ignore_paused: bool = False) -> int:
        """Run `proc` inside a running container; in the foreground, return its exit status.

        `sub_cgroups`: existing sub-cgroups of the container's to start it in (runc's
        --cgroup); `ignore_paused`: a paused container is entered too (the process waits,
        frozen, until resume)."""
        from pyrunc.linux import syscalls as sc
        from pyrunc.linux import terminal
        from pyrunc.process import parent
        from pyrunc.process.foreground import Foreground
        c = self.container(container_id)
        status = c.status()
        # runc's words, which callers match.
        if status in (Status.STOPPED, Status.CREATING):
            raise NotRunningError("cannot exec in a stopped container")
        if status == Status.PAUSED and not ignore_paused:
            raise InvalidStateError("cannot exec in a paused container (use --ignore-paused "
                                    "to override)")
        if proc.terminal and not console_socket and detach:
            raise UsageError("cannot allocate a terminal for a detached exec without --console-socket")
        if console_socket and not proc.terminal:
            raise UsageError("--console-socket needs a terminal (--tty or terminal: true)")
        cgroup = c.cgroup()
        if sub_cgroups:
            cgroup = cgroup.sub(sub_cgroups)
        fg = None
        ours = None
        if not detach:
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
            fg = Foreground()
        try:
            if console_socket:
                console = terminal.connect(console_socket)
            elif proc.terminal and fg is not None:
                ours, console = fg.console_pair()
                if proc.console_size is None:  # set before the process runs, not after
                    proc = _replace(proc, console_size=fg.caller_size())
            else:
                console = None
            seccomp_raw, memory_policy, personality = self._exec_linux(c)
            compiled, on_listener = self._exec_seccomp(c, seccomp_raw)
            try:
                pid = parent.spawn_exec(c.pid, proc, cgroup, preserve_fds,
                                        console.fileno() if console else -1,
                                        compiled, on_listener, c.record.keyring,
                                        memory_policy, personality)
            finally:
                if console is not None:
                    console.close()
            if pid_file:
                write_pid_file(pid_file, pid)
            self.log.debug(f"exec in container {container_id}: pid {pid} runs "
                           f"{' '.join(proc.args)!r}")
            if fg is None:
                return 0
            if ours is not None:
                fg.take_master(ours)
            return fg.wait_for(pid)
        finally:
            if ours is not None:
                ours.close()
            if fg is not None:
                fg.restore()

    def _exec_linux(self, c: Container) -> tuple[Any, MemoryPolicy | None, int | None]:
        """The seccomp profile, memory policy and personality an exec'd process gets: the
        container's as created (as runc's, from its saved config), not config.json's now,
        which may have been edited since (by the container itself when it can reach it)."""
        kept = self.store.load_exec_config(c.id)
        if kept is None:  # made by a pyrunc that kept none: the bundle is all there is
            from pyrunc.spec.load import load_bundle
            linux = load_bundle(c.record.bundle).linux
            return linux.seccomp, linux.memory_policy, linux.personality
        from pyrunc.spec.config import MemoryPolicy
        policy = kept["memoryPolicy"]
        return (kept["seccomp"], None if policy is None else MemoryPolicy(
            policy[0], policy[1], tuple(policy[2]), policy[3]), kept["personality"])

    def _exec_seccomp(self, c: Container, raw: Any) -> tuple[Any, Any]:
        """exec'd processes get the container's seccomp profile, as with runc."""
        if raw is None:
            return None, None
        from pyrunc.linux import seccomp
        compiled = seccomp.compile_profile(raw)
        path = compiled.listener_path
        if not path:
            return compiled, None

        def on_listener(pid: int, fd: int) -> None:
            st = jsonio.dumps({**c.state(), "pid": pid}).encode()
            seccomp.send_listener(path, fd, st, compiled.listener_metadata)
        return compiled, on_listener

    def base_process(self, container_id: str) -> Process:
        """The container's own process settings, which `exec ID CMD...` starts from: as
        created, like the seccomp profile (_exec_linux). runc rereads config.json here; a
        container that can write its bundle would then pick its next exec's capabilities."""
        c = self.container(container_id)
        kept = self.store.load_exec_config(c.id)
        proc: Process | None
        if kept is not None and "process" in kept:
            from pyrunc.spec.config import process_from_json
            raw = kept["process"]
            proc = None if raw is None else process_from_json(raw, "the container's process")
        else:  # made by a pyrunc that kept none: the bundle is all there is
            from pyrunc.spec.load import load_bundle
            proc = load_bundle(c.record.bundle).process
        if proc is None:
            raise UnsupportedError("config.json has no process to start from; use --process")
        return proc

    # -- queries -------------------------------------------------------------------------------

    def state(self, container_id: str) -> dict[str, Any]:
        return self.container(container_id).state()

    def list_all(self) -> list[dict[str, Any]]:
        out = []
        for cid in self.store.ids():
            try:
                st = self.container(cid).state()
            except NotExistError:
                continue
            st["owner"] = _owner_of(self.store.dir(cid))
            out.append(st)
        return out

    def pids(self, container_id: str) -> list[int]:
        c = self.container(container_id)
        if not c.record.cgroup_path:
            return _pids_without_cgroup(c)
        cg = c.cgroup()
        return [] if _holds_anothers(c, c.status(), cg) else cg.pids()

    # -- pause / resume ------------------------------------------------------------------------

    def pause(self, container_id: str) -> None:
        with self.store.lock(container_id):
            c = self.container(container_id)
            status = c.status()
            if status not in (Status.RUNNING, Status.CREATED):  # runc pauses a created one too
                raise InvalidStateError(f"cannot pause a container that is {status}, not running")
            c.cgroup().freeze(True)

    def resume(self, container_id: str) -> None:
        with self.store.lock(container_id):
            c = self.container(container_id)
            status = c.status()
            if status != Status.PAUSED:
                raise InvalidStateError(f"cannot resume a container that is {status}, not paused")
            c.cgroup().freeze(False)

    # -- kill / delete -------------------------------------------------------------------------

    def kill(self, container_id: str, sig: int, all_procs: bool = False) -> None:
        c = self.container(container_id)
        status = c.status()
        if all_procs and status != Status.CREATING:
            # Also once the init is gone: in a shared pid namespace (docker --pid host,
            # Kubernetes' shareProcessNamespace) its children outlive it in the cgroup, and
            # containerd's shim kills them with this (runc does the same; no cgroup, nothing
            # to do). Not once what the cgroup holds is another's (_holds_anothers).
            if c.record.cgroup_path:
                cg = c.cgroup()
                if not _holds_anothers(c, status, cg):
                    self._signal_all(cg, sig, status)
                elif not c.record.new_pid_ns:
                    self.log.warning(f"systemd unit of {container_id} was started again since "
                                     "its create: its processes are another's, not signalled")
            else:
                for pid in _pids_without_cgroup(c):  # rootless without a cgroup
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            return
        if status in (Status.STOPPED, Status.CREATING):
            raise NotRunningError("container not running")
        self._signal_init(c, sig)

    def _signal_all(self, cg: cgroups.Manager, sig: int, status: str) -> None:
        """Signal every process in the container's cgroup, frozen meanwhile (as runc does) so
        none can fork a child we would miss; a paused container stays paused, except that
        SIGKILL thaws it so the kill takes effect."""
        if not cg.exists():
            return
        frozen = False
        if status != Status.PAUSED:
            try:
                cg.freeze(True)
                frozen = True
            except PyruncError as exc:  # no freezer here: signal them as they are
                self.log.debug(f"kill --all: cannot freeze the cgroup: {exc}")
                try:  # a freeze that did not finish must not leave them FREEZING
                    cg.freeze(False)
                except PyruncError:
                    pass
        try:
            for pid in cg.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen or (status == Status.PAUSED and sig == signal.SIGKILL):
                cg.freeze(False)

    def _signal_init(self, c: Container, sig: int) -> None:
        try:
            pidfd = os.pidfd_open(c.pid)
        except ProcessLookupError:
            raise NotRunningError("container not running") from None
        try:
            # The pidfd pins the process: check it is still our init, then signal exactly it.
            if not c.alive():
                raise NotRunningError("container not running")
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise NotRunningError("container not running") from None
        finally:
            os.close(pidfd)

    def delete(self, container_id: str, force: bool = False) -> None:
        validate_id(container_id)
        if not self.store.exists(container_id):
            if force:
                return
            raise NotExistError(f"container {container_id} does not exist")
        try:
            lock = self.store.lock(container_id)
        except NotExistError:
            if force:  # another delete got there first
                return
            raise
        with lock:
            try:
                c = self.container(container_id)
            except NotExistError:
                # A directory without state: a create that died before writing anything.
                self.store.remove(container_id)
                if force:
                    return
                raise
            status = c.status()
            # runc: a created container's init only waits for `start`, and `delete` kills it
            # without --force; a running or paused one needs --force.
            if status in (Status.RUNNING, Status.PAUSED) and not force:
                raise InvalidStateError(
                    f"cannot delete container {container_id} that is not stopped: {status}")
            self._destroy(c)

    def _destroy(self, c: Container) -> None:
        """Kill the init if it lives, empty and remove the cgroup, forget the container."""
        if c.alive():
            cg = c.cgroup()
            if cg.is_frozen():
                cg.freeze(False)
            try:
                pidfd = os.pidfd_open(c.pid)
            except ProcessLookupError:
                pidfd = -1
            if pidfd >= 0:
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    select.select([pidfd], [], [], 10)
                except ProcessLookupError:
                    pass
                finally:
                    os.close(pidfd)
        if c.record.cgroup_path:
            from pyrunc.cgroups.systemd import UnitReplacedError
            if c.record.new_pid_ns:
                # Its init gone, so is all of the pid namespace: a process still in the
                # cgroup is another's (runc 1.1.5 kills the cgroup only without a pid
                # namespace of its own); it keeps the cgroup, the container still goes.
                try:
                    c.cgroup().destroy(kill=False)
                except UnitReplacedError as exc:
                    self.log.warning(str(exc))
                except PyruncError as exc:
                    self.log.warning(f"{exc}: left in place (a process that is not the "
                                     "container's is in it)")
            else:
                try:
                    c.cgroup().destroy()
                except UnitReplacedError as exc:  # runc kills the next owner's processes
                    self.log.warning(str(exc))
        if c.record.rdt_dirs:
            from pyrunc.linux import intelrdt
            intelrdt.remove(c.record.rdt_dirs)
        self._run_warn("poststop", c, "stopped")
        self.store.remove(c.id)

    # -- cgroups: update / events / stats --------------------------------------------------
    # (owned with pyrunc.cgroups; everything cgroup-specific is behind cgroups.Manager)

    def _live_cgroup(self, container_id: str, what: str) -> tuple[Container, cgroups.Manager]:
        """A container that still has processes, and its cgroup (runc's wording)."""
        c = self.container(container_id)
        if c.status() in (Status.STOPPED, Status.CREATING):
            raise NotRunningError(f"container with id {container_id} is not running"
                                  if what == "events" else "container not running")
        if not c.record.cgroup_path:
            raise SystemError_(f"container {container_id} has no cgroup", errno.ENOENT)
        return c, c.cgroup()

    def update(self, container_id: str, resources: cgroups.Resources) -> None:
        """Change a live container's limits; only what `resources` gives is touched."""
        with self.store.lock(container_id):
            _c, cg = self._live_cgroup(container_id, "update")
            for warning in cg.set(resources, update=True):
                self.log.warning(warning)

    def stats(self, container_id: str) -> dict[str, Any]:
        """The container's cgroup statistics in runc's `events --stats` data shape."""
        _c, cg = self._live_cgroup(container_id, "events")
        return cg.stats()

    def events(self, container_id: str, interval: float, stats_only: bool) -> cgroups.EventStream:
        """runc's `events`: a stats event every `interval` seconds and an oom event as each
        OOM happens, until the container stops; with `stats_only`, one stats event.
        Checks happen now; the stream is lazy."""
        if interval <= 0:
            raise UsageError("duration interval must be greater than 0")
        c, cg = self._live_cgroup(container_id, "events")
        if stats_only:
            return iter([{"type": "stats", "id": c.id, "data": cg.stats()}])
        return self._event_stream(c, cg, interval)

    def _event_stream(self, c: Container, cg: cgroups.Manager,
                      interval: float) -> cgroups.EventStream:
        watcher = cg.oom_watcher()
        try:
            due = time.monotonic() + interval
            while True:
                # The kernel wakes us on an OOM; liveness is looked at once a second.
                ooms, gone = watcher.wait(min(max(0.0, due - time.monotonic()), 1.0))
                for _ in range(ooms):
                    yield {"type": "oom", "id": c.id}
                if gone or not c.alive():
                    ooms, _gone = watcher.wait(0.05)  # an OOM that killed the init comes late
                    for _ in range(ooms):
                        yield {"type": "oom", "id": c.id}
                    return
                if time.monotonic() >= due:
                    due += interval
                    try:
                        data = cg.stats()
                    except (PyruncError, OSError) as exc:
                        self.log.error(f"cannot read the container's stats: {exc}")
                        continue
                    yield {"type": "stats", "id": c.id, "data": data}
        finally:
            watcher.close()
    # -- end cgroups -------------------------------------------------------------------------


def _pids_without_cgroup(c: Container) -> list[int]:
    """A container without a cgroup (rootless, none delegated): the processes of its own
    pid namespace, found in /proc; sharing another's, only its init."""
    if not c.alive():
        return []
    return procfs.pid_ns_members(c.pid) if c.record.new_pid_ns else [c.pid]


def _exec_config(cfg: Config) -> dict[str, Any]:
    """What of the config an exec applies, for Runtime._exec_linux and base_process."""
    policy = cfg.linux.memory_policy
    return {"process": cfg.process_raw,
            "seccomp": cfg.linux.seccomp, "personality": cfg.linux.personality,
            "memoryPolicy": None if policy is None else
            [policy.mode, policy.flags, list(policy.nodes), policy.text]}


_FIONREAD = 0x541B  # <asm-generic/ioctls.h> (x86_64, aarch64); `termios` costs start ~0.6 ms


def _unread(fifo_fd: int) -> int:
    """Bytes written to the exec fifo that no reader has taken yet."""
    return int.from_bytes(fcntl.ioctl(fifo_fd, _FIONREAD, b"\0" * 4), sys.byteorder,
                          signed=True)
