"""Process and container plumbing for the runtime benchmark.

Everything here exists so that bench/run.py can time runtime invocations
precisely and fairly, and so that nothing it creates outlives it:

* runtime calls are spawned with os.posix_spawn and reaped with os.wait4, so
  the wall time has little Python overhead and the CPU time (user+sys of the
  runtime and of every child it reaped) comes straight from the kernel;
* the harness makes itself a child subreaper, so container processes whose
  runtime exited are re-parented to it: it can wait for them exactly (no
  polling of `state`) and their CPU time is counted too;
* every container gets its own directory (bundle, pid file, private --root)
  and its own cgroup path under a parent named after this process, and is
  torn down (delete --force, kill what is left in *its* cgroups, rmdir) even
  when a runtime misbehaves.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
UNIFIED = "/sys/fs/cgroup/unified"

_DEVNULL = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


def become_subreaper() -> None:
    """Adopt orphaned container processes so they can be waited for and counted."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def reap_strays() -> None:
    """Reap adopted zombies; only called when no tracked spawn is outstanding."""
    while True:
        try:
            pid, _status, _ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def children_cpu() -> float:
    """User+sys seconds of all reaped descendants; deltas give a window's CPU cost."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def is_hybrid() -> bool:
    """True when cgroup2 is mounted at /sys/fs/cgroup/unified next to v1 controllers."""
    for mnt, fstype in cgroup_mounts():
        if mnt == UNIFIED and fstype == "cgroup2":
            return True
    return False


def cgroup_mounts() -> list[tuple[str, str]]:
    """Every cgroup/cgroup2 mount point of the host (our) mount namespace."""
    out: list[tuple[str, str]] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype = right.split(" ", 1)[0]
            if fstype in ("cgroup", "cgroup2"):
                mnt = left.split(" ")[4].replace("\\040", " ")
                out.append((mnt, fstype))
    return out


def wrapper_prefix(mask_unified: bool) -> list[str]:
    """The private-mount-namespace wrapper crun needs on a hybrid host.

    crun refuses hybrid hierarchies, so it runs in its own mount namespace
    where an empty tmpfs hides /sys/fs/cgroup/unified. The same wrapper can be
    put around every runtime so they all pay the same fixed cost.
    """
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    sh = shutil.which("sh") or "/bin/sh"
    script = 'exec "$0" "$@"'
    if mask_unified:
        script = f"mount -t tmpfs none {UNIFIED} && " + script
    return [unshare, "-m", "--propagation", "slave", sh, "-c", script]


# --------------------------------------------------------------------------
# Spawning
# --------------------------------------------------------------------------


@dataclass
class CallResult:
    """Outcome of one runtime invocation."""

    argv: list[str]
    rc: int
    wall: float
    cpu: float
    maxrss_kib: int
    stdout: str
    stderr: str
    timed_out: bool = False
    timeout: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def reason(self) -> str:
        """First line of stderr, or why there is none; this is what a failed figure shows."""
        first = next((ln.strip() for ln in self.stderr.splitlines() if ln.strip()), "")
        if self.timed_out:
            said = f"; stderr: {first}" if first else ""
            return f"timed out after {self.timeout:g} s ({' '.join(self.argv[-3:])}){said}"
        if first:
            return first
        if self.rc < 0:
            return f"killed by signal {-self.rc}"
        return f"exit status {self.rc}, no stderr"


class Proc:
    """A spawned process with stderr (and optionally stdout) captured in memfds.

    memfds rather than pipes: a detached container inherits the runtime's
    stdio, and a pipe would then never reach EOF.
    """

    def __init__(self, argv: list[str], capture_stdout: bool = False) -> None:
        self.argv = argv
        self.err = os.memfd_create("bench-stderr", os.MFD_CLOEXEC)
        self.out = os.memfd_create("bench-stdout", os.MFD_CLOEXEC) if capture_stdout else None
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_DUP2, _DEVNULL, 0),
            (os.POSIX_SPAWN_DUP2, self.out if self.out is not None else _DEVNULL, 1),
            (os.POSIX_SPAWN_DUP2, self.err, 2),
        ]
        self.t0 = time.perf_counter()
        self.pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        self.pidfd = os.pidfd_open(self.pid)
        self.result: CallResult | None = None

    def wait(self, timeout: float) -> CallResult:
        """Reap the process (SIGKILL it, since we started it, if it overstays).

        The deadline runs from the spawn, so a batch of hung processes costs
        one timeout, not one each.
        """
        if self.result is not None:
            return self.result
        timed_out = False
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        remaining = self.t0 + timeout - time.perf_counter()  # deadline counts from spawn
        if not poller.poll(max(0.0, remaining) * 1000):
            timed_out = True
            os.kill(self.pid, signal.SIGKILL)
        _pid, status, ru = os.wait4(self.pid, 0)
        t1 = time.perf_counter()
        os.close(self.pidfd)
        self.result = CallResult(
            argv=self.argv,
            rc=os.waitstatus_to_exitcode(status),
            wall=t1 - self.t0,
            cpu=ru.ru_utime + ru.ru_stime,
            maxrss_kib=ru.ru_maxrss,
            stdout=_drain(self.out),
            stderr=_drain(self.err),
            timed_out=timed_out,
            timeout=timeout,
        )
        return self.result


def _drain(fd: int | None) -> str:
    if fd is None:
        return ""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def call(argv: list[str], timeout: float, capture_stdout: bool = False) -> CallResult:
    """Spawn and wait: one timed invocation."""
    return Proc(argv, capture_stdout).wait(timeout)


def wait_pid_exit(pid: int, timeout: float) -> bool:
    """Wait for a (usually adopted) container process to exit; True if it did."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return False
    finally:
        os.close(pidfd)
    try:
        os.wait4(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (runtime kept it) or already reaped: it has exited either way
    return True


# --------------------------------------------------------------------------
# Runtimes and containers
# --------------------------------------------------------------------------


@dataclass
class Runtime:
    """A runc-CLI-compatible runtime binary, optionally behind the namespace wrapper."""

    name: str
    binary: str
    wrapper: list[str] = field(default_factory=list)

    def argv(self, root: Path, *args: str) -> list[str]:
        return [*self.wrapper, self.binary, "--root", str(root), *args]

    def version(self) -> str:
        """First line of `--version`, for the machine description."""
        try:
            r = call([self.binary, "--version"], timeout=10, capture_stdout=True)
        except OSError as e:
            return f"unknown ({e})"
        if not r.ok:
            return f"unknown ({r.reason()})"
        lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
        return lines[0] if lines else "unknown (empty --version)"


class BenchFailure(Exception):
    """One iteration of a figure failed; the message is shown as 'failed: ...'."""


def default_spec(args: list[str], rootfs: Path, cgroups_path: str,
                 memory_limit: int | None) -> dict[str, Any]:
    """runc's `runc spec` default, non-terminal, with our process, rootfs and cgroup.

    Embedded rather than generated so the bench does not depend on runc, and
    so every runtime gets byte-identical configs.
    """
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if memory_limit is not None:
        resources["memory"] = {"limit": memory_limit}
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources,
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


def build_rootfs(rootfs: Path, busybox: str) -> None:
    """A minimal read-only busybox rootfs shared by all containers (mount points pre-made)."""
    if (rootfs / "bin" / "busybox").exists():
        return
    tmp = rootfs.with_name(rootfs.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc", "root"):
        (tmp / d).mkdir(parents=True)
    shutil.copy2(busybox, tmp / "bin" / "busybox")
    for applet in ("true", "false", "sleep", "sh"):
        (tmp / "bin" / applet).symlink_to("busybox")
    (tmp / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tmp / "etc" / "group").write_text("root:x:0:\n")
    tmp.rename(rootfs)


class Work:
    """The bench's scratch area and the registry of everything still alive."""

    def __init__(self, base: Path, busybox: str, timeout: float) -> None:
        self.base = base
        self.rootfs = base / "rootfs"
        self.containers = base / "containers"
        self.timeout = timeout
        self.cg_parent = f"pyrunc-bench-{os.getpid()}"
        self.live: dict[str, Container] = {}
        self.leaks: dict[str, list[str]] = {}
        self._seq = 0
        base.mkdir(parents=True, exist_ok=True)
        build_rootfs(self.rootfs, busybox)
        self.containers.mkdir(exist_ok=True)

    def next_id(self, tag: str, rt: Runtime) -> str:
        self._seq += 1
        return f"pb{os.getpid()}-{tag}-{rt.name}-{self._seq:05d}"

    def note_leak(self, rt: Runtime, what: str) -> None:
        """A runtime left something behind after a successful delete: worth reporting."""
        lst = self.leaks.setdefault(rt.name, [])
        if len(lst) < 5:
            lst.append(what)

    def sweep_stale(self, runtimes: dict[str, Runtime]) -> None:
        """Tear down containers left by an earlier run that was SIGKILLed.

        Containers whose owning bench process is still alive are left alone:
        two bench runs may share bench/.work.
        """
        for d in sorted(self.containers.iterdir()) if self.containers.exists() else []:
            meta_path = d / "meta.json"
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                shutil.rmtree(d, ignore_errors=True)
                continue
            if _bench_alive(int(meta.get("owner", 0))):
                continue  # another bench run is using it right now
            rt = runtimes.get(meta["runtime"]) or Runtime(meta["runtime"], meta["binary"], meta["wrapper"])
            c = Container.__new__(Container)
            c.work, c.rt, c.id, c.dir = self, rt, meta["id"], d
            c.root, c.pidfile, c.cgroup = d / "root", d / "pid", meta["cgroup"]
            c.deleted = False
            self.live[c.id] = c
            print(f"  sweeping stale container {c.id} from an earlier run")
            c.dispose(check_leaks=False)
            remove_cgroup(meta["cgroup"].rsplit("/", 1)[0])

    def cleanup(self) -> None:
        """Destroy every container still registered, then our cgroup parent."""
        for c in list(self.live.values()):
            try:
                c.dispose(check_leaks=False)
            except Exception as e:  # keep cleaning the rest
                print(f"  cleanup of {c.id} failed: {e}")
        reap_strays()
        remove_cgroup("/" + self.cg_parent)
        kill_adopted()


def kill_adopted() -> None:
    """SIGKILL whatever is still our child at the very end.

    As a subreaper, every process left over by a runtime we spawned (e.g. the
    child of one killed on timeout, before it joined a cgroup) is re-parented
    to us, so our children are exactly the leftovers we are responsible for.
    """
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            print(f"  killing leftover child {entry}")
            _kill_and_reap(int(entry))
    reap_strays()


class Container:
    """One container: own bundle dir, own --root, own cgroupsPath."""

    def __init__(self, work: Work, rt: Runtime, tag: str, args: list[str],
                 memory_limit: int | None = None) -> None:
        self.work, self.rt = work, rt
        self.id = work.next_id(tag, rt)
        self.dir = work.containers / self.id
        self.root = self.dir / "root"
        self.pidfile = self.dir / "pid"
        self.cgroup = f"/{work.cg_parent}/{self.id}"
        self.deleted = False
        self.root.mkdir(parents=True, mode=0o700)
        spec = default_spec(args, work.rootfs, self.cgroup, memory_limit)
        (self.dir / "config.json").write_text(json.dumps(spec))
        (self.dir / "meta.json").write_text(json.dumps({
            "id": self.id, "runtime": rt.name, "binary": rt.binary,
            "wrapper": rt.wrapper, "cgroup": self.cgroup, "owner": os.getpid()}))
        work.live[self.id] = self

    # The runtime calls. Each returns the CallResult; callers decide what fails.
    def run(self, prefix: list[str] | None = None) -> CallResult:
        """`run`; `prefix` wraps the whole command (e.g. GNU time for peak RSS)."""
        argv = self.rt.argv(self.root, "run", "--bundle", str(self.dir), self.id)
        r = call([*(prefix or []), *argv], self.work.timeout)
        if r.ok:
            self.deleted = True  # `run` deletes the container when it exits
        return r

    def create_proc(self) -> Proc:
        return Proc(self.rt.argv(self.root, "create", "--bundle", str(self.dir),
                                 "--pid-file", str(self.pidfile), self.id))

    def create(self) -> CallResult:
        return self.create_proc().wait(self.work.timeout)

    def start(self) -> CallResult:
        return call(self.rt.argv(self.root, "start", self.id), self.work.timeout)

    def state(self) -> CallResult:
        return call(self.rt.argv(self.root, "state", self.id), self.work.timeout, capture_stdout=True)

    def kill(self, sig: str = "KILL") -> CallResult:
        return call(self.rt.argv(self.root, "kill", self.id, sig), self.work.timeout)

    def delete(self, force: bool = False) -> CallResult:
        args = ["delete", "--force", self.id] if force else ["delete", self.id]
        r = call(self.rt.argv(self.root, *args), self.work.timeout)
        if r.ok:
            self.deleted = True
        return r

    def pid(self) -> int:
        """Host pid of the container's init, from --pid-file."""
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError) as e:
            raise BenchFailure(f"no usable --pid-file after create ({e})") from None

    def wait_exit(self) -> None:
        """Block until the container's init has exited (it is adopted by us)."""
        if not wait_pid_exit(self.pid(), self.work.timeout):
            raise BenchFailure(f"container init did not exit within {self.work.timeout:g} s")

    def dispose(self, check_leaks: bool = True) -> None:
        """Delete (forced if needed), kill what is left in our cgroups, remove files.

        Runs after every iteration, outside the timed window, and on failure.
        """
        state_left = self.root.exists() and any(self.root.iterdir())
        if state_left and self.deleted and check_leaks:
            self.work.note_leak(self.rt, f"state left in --root after delete ({self.id})")
        if state_left:
            r = call(self.rt.argv(self.root, "delete", "--force", self.id), self.work.timeout)
            if not r.ok and not r.timed_out and check_leaks is False:
                print(f"  delete --force {self.id}: {r.reason()}")
        if self.pidfile.exists():
            try:
                pid = int(self.pidfile.read_text().strip())
            except ValueError:
                pid = 0
            if pid > 0 and _pid_in_cgroup(pid, self.cgroup):
                _kill_and_reap(pid)
        leftover = remove_cgroup(self.cgroup)
        if leftover and self.deleted and check_leaks:
            self.work.note_leak(self.rt, f"cgroup left after delete: {leftover[0]}")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.work.live.pop(self.id, None)


def _bench_alive(pid: int) -> bool:
    """Is `pid` a bench run that is still going (so its containers are not stale)?"""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"run.py" in f.read()
    except OSError:
        return False


def _pid_in_cgroup(pid: int, cgroup: str) -> bool:
    """Only ever kill a pid that sits in one of *our* cgroups (pids get reused)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            return any(line.rstrip("\n").split(":", 2)[2].startswith(cgroup) for line in f)
    except (OSError, IndexError):
        return False


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_pid_exit(pid, 5.0)


def remove_cgroup(rel: str) -> list[str]:
    """rmdir `rel` (and sub-cgroups) in every hierarchy, killing our leftover tasks first.

    Returns the directories that existed (i.e. that the runtime left behind).
    """
    existed: list[str] = []
    for mnt, _fstype in cgroup_mounts():
        top = Path(mnt + rel)
        if not top.is_dir():
            continue
        existed.append(str(top))
        dirs = sorted((Path(p) for p, _d, _f in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        for d in dirs:
            _rmdir_cgroup(d)
    return existed


def _rmdir_cgroup(d: Path) -> None:
    for attempt in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                print(f"  cannot remove cgroup {d}: {e}")
                return
        # Still populated: these tasks are in a cgroup we created, so they are ours.
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            _kill_and_reap(pid)
        reap_strays()
        time.sleep(0.02 * (attempt + 1) if attempt < 10 else 0.2)
    print(f"  giving up on cgroup {d}")
