"""Helpers for the integration suite: the busybox rootfs, bundles, the runtime CLI, leak checks.

Everything here talks to the runtime only through its command line, the way containerd,
podman or a shell user would, and inspects results from the host (/proc, /sys/fs/cgroup)
or from inside a container (by running busybox in it).
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, IO

#: Default timeout for one runtime invocation: generous, but a hung runtime must not hang CI.
CMD_TIMEOUT = 20.0

#: Environment variable put into every runtime invocation and every container process, so
#: leftovers can be found in /proc/*/environ whatever namespace they live in.
SANDBOX_ENV = "PYRUNC_TEST_SANDBOX"

#: Parent of every test container's cgroup (`linux.cgroupsPath = /pyrunc-test/<uuid>`).
CGROUP_PARENT = "pyrunc-test"

#: PYRUNC_TEST_CGROUP_DRIVER=systemd (tests/vm/run-systemd-host.sh): every runtime call gets
#: --systemd-cgroup and every bundle a systemd cgroupsPath, `system.slice:pyrunc-test:<uuid>`,
#: as docker and podman pass; Bundle.cgroups_path is then the scope's cgroup
#: (`/system.slice/pyrunc-test-<uuid>.scope`), so the tests' cgroup-file checks read the
#: scope. Default: the cgroupfs driver.
CGROUP_DRIVER = os.environ.get("PYRUNC_TEST_CGROUP_DRIVER", "") or "cgroupfs"
SYSTEMD_DRIVER = CGROUP_DRIVER == "systemd"
SYSTEMD_SLICE = "system.slice"
#: where systemd keeps a transient unit's file while the unit is loaded
TRANSIENT_UNITS = Path("/run/systemd/transient")


def new_cgroups_path() -> tuple[str, str]:
    """(linux.cgroupsPath, the cgroup's path below /sys/fs/cgroup) for a new bundle."""
    name = uuid.uuid4().hex
    if SYSTEMD_DRIVER:
        return (f"{SYSTEMD_SLICE}:{CGROUP_PARENT}:{name}",
                f"/{SYSTEMD_SLICE}/{CGROUP_PARENT}-{name}.scope")
    return f"/{CGROUP_PARENT}/{name}", f"/{CGROUP_PARENT}/{name}"


def fs_cgroup_path(cgroups_path: str) -> str:
    """A test's linux.cgroupsPath as a path below the cgroup root (systemd form or not)."""
    parts = cgroups_path.split(":")
    if len(parts) == 3 and parts[0] == SYSTEMD_SLICE and parts[1] == CGROUP_PARENT:
        return f"/{SYSTEMD_SLICE}/{CGROUP_PARENT}-{parts[2]}.scope"
    return cgroups_path


def unit_of(fs_path: str) -> str | None:
    """The transient scope the systemd driver made for a test cgroup, if it is one."""
    name = fs_path.rstrip("/").rsplit("/", 1)[-1]
    return name if name.startswith(f"{CGROUP_PARENT}-") and name.endswith(".scope") else None


def leaked_units(fs_paths: Iterable[str]) -> list[str]:
    """Test scopes systemd still has loaded (a transient unit's file is there until then)."""
    return [f"unit {u}" for u in map(unit_of, fs_paths) if u and (TRANSIENT_UNITS / u).exists()]


def stop_units(fs_paths: Iterable[str]) -> None:
    """Stop and forget test scopes systemd still has (force cleanup)."""
    for u in map(unit_of, fs_paths):
        if u and (TRANSIENT_UNITS / u).exists():
            subprocess.run(["systemctl", "stop", u], capture_output=True, timeout=120)
            subprocess.run(["systemctl", "reset-failed", u], capture_output=True, timeout=120)

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

#: Bump when the rootfs layout changes so stale caches are not reused.
ROOTFS_LAYOUT_VERSION = "4"

BUSYBOX = "/usr/bin/busybox"

PASSWD = """root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:Test User:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""

GROUP = """root:x:0:
tty:x:5:
user:x:1000:
extra:x:2000:user
nogroup:x:65534:
"""

RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)


# --------------------------------------------------------------------------------------
# rootfs


def build_rootfs_cache(cache_dir: Path) -> Path:
    """Build (once) a busybox rootfs under `cache_dir` and return its path.

    The directory name hashes busybox itself plus the layout version, so a new busybox or
    a layout change gets a fresh tree. Built in a temp dir and renamed into place, so an
    interrupted build never leaves a half tree that later runs would trust.
    """
    digest = hashlib.sha256()
    digest.update(ROOTFS_LAYOUT_VERSION.encode())
    with open(BUSYBOX, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    target = cache_dir / f"rootfs-{digest.hexdigest()[:16]}"
    if (target / ".complete").exists():
        src, cached = os.stat(BUSYBOX), os.stat(target / "bin" / "busybox")
        if (src.st_size, src.st_mtime_ns) == (cached.st_size, cached.st_mtime_ns):
            return target
        shutil.rmtree(target)  # the hard-linked busybox was written to: rebuild
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rootfs-build-", dir=cache_dir))
    try:
        _populate_rootfs(tmp)
        (tmp / ".complete").write_text("ok\n")
        try:
            tmp.rename(target)
        except OSError as exc:  # another session won the race
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for stale in cache_dir.glob("rootfs-*"):  # older layouts / busybox versions
        if stale != target and (stale / ".complete").exists():
            shutil.rmtree(stale, ignore_errors=True)
    return target


def _populate_rootfs(root: Path) -> None:
    """Lay out a minimal busybox system: /bin/busybox + applet symlinks, /etc, empty dirs."""
    os.chmod(root, 0o755)  # mkdtemp made it 0700: uid 1000 could not even reach /bin
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "root", "home/user", "mnt", "data",
              "run", "var/tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    os.chmod(root / "bin" / "busybox", 0o755)
    listing = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True)
    for applet in listing.stdout.split():
        if applet == "busybox" or "/" in applet:
            continue
        link = root / "bin" / applet
        if not link.exists() and not link.is_symlink():
            os.symlink("/bin/busybox", link)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc" / "rootfs-marker").write_text("pyrunc-test-rootfs\n")
    # Content the masked/read-only path tests hide or protect.
    (root / "etc" / "secret.txt").write_text("top secret\n")
    (root / "etc" / "secretdir").mkdir()
    (root / "etc" / "secretdir" / "inner.txt").write_text("hidden\n")
    (root / "data" / "existing.txt").write_text("data\n")
    os.chown(root / "home" / "user", 1000, 1000)


def copy_rootfs(cache: Path, dest: Path) -> None:
    """Give a bundle its own rootfs: every directory, symlink and small file is copied, so a
    writable container cannot modify the shared cache. Only the 2 MB busybox binary is
    hard-linked when cache and bundle share a filesystem (no test writes to it, and
    `build_rootfs_cache` rebuilds the cache if its busybox ever changes)."""
    for dirpath, dirnames, filenames in os.walk(cache):
        src_dir = Path(dirpath)
        rel = src_dir.relative_to(cache)
        dst_dir = dest / rel
        st = src_dir.stat()
        dst_dir.mkdir(mode=0o755)
        os.chmod(dst_dir, st.st_mode & 0o7777)
        os.chown(dst_dir, st.st_uid, st.st_gid)
        for name in dirnames[:]:
            if (src_dir / name).is_symlink():  # os.walk lists dir symlinks as dirs
                dirnames.remove(name)
                os.symlink(os.readlink(src_dir / name), dst_dir / name)
        for name in filenames:
            src, dst = src_dir / name, dst_dir / name
            if rel == Path(".") and name == ".complete":
                continue
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            elif rel == Path("bin") and name == "busybox":
                try:
                    os.link(src, dst)
                except OSError as exc:  # the sandbox lives on another fs (tmpfs)
                    if exc.errno != errno.EXDEV:
                        raise
                    shutil.copy2(src, dst)
            else:
                shutil.copy2(src, dst)
                fst = src.stat()
                os.chown(dst, fst.st_uid, fst.st_gid)


def work_base() -> Path:
    """Where sandboxes live: $PYRUNC_TEST_TMPDIR, else /dev/shm when it is a writable tmpfs,
    else the system temp dir. (On this VM's ext4 creating a rootfs' ~300 symlinks under /tmp
    takes 0.1-0.7 s, on tmpfs 2 ms: that alone decides whether the suite takes 15 s or 40 s.)"""
    env = os.environ.get("PYRUNC_TEST_TMPDIR")
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and any(
        m.mount_point == str(shm) and m.fstype == "tmpfs" for m in host_mounts()
    ):
        return shm
    return Path(tempfile.gettempdir())


# --------------------------------------------------------------------------------------
# config.json


def default_config(args: Sequence[str], cgroups_path: str, sandbox_id: str) -> dict[str, Any]:
    """The Python equivalent of `runc spec` (non-terminal) plus a cgroup namespace, a private
    cgroupsPath and the sandbox marker in env."""
    caps = list(DEFAULT_CAPS)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": [PATH_ENV, "TERM=xterm", f"{SANDBOX_ENV}={sandbox_id}"],
            "cwd": "/",
            "capabilities": {
                "bounding": list(caps),
                "effective": list(caps),
                "permitted": list(caps),
                "ambient": list(caps),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrunc-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                            "gid=5"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "cgroup"},
            ],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


def deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `patch` into `base` in place: dicts recurse, anything else (lists too) replaces;
    a value of None deletes the key."""
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


@dataclass
class Bundle:
    """An OCI bundle on disk: `path/config.json` + `path/rootfs`. Edit `config`, then `write()`."""

    path: Path
    config: dict[str, Any]
    cgroups_path: str

    @property
    def rootfs(self) -> Path:
        """The rootfs directory (honours a relative or absolute root.path)."""
        return self.path / str(self.config.get("root", {}).get("path", "rootfs"))

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def write(self) -> None:
        """(Re)write config.json from `config`."""
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def add_mount(self, mount: dict[str, Any]) -> None:
        """Append a mount and rewrite config.json."""
        self.config.setdefault("mounts", []).append(mount)
        self.write()


# --------------------------------------------------------------------------------------
# the runtime CLI


class Runtime:
    """Runs the runtime under test with a private `--root` and a JSON `--log`.

    Every invocation carries the sandbox marker in its environment; every Popen it hands out
    is tracked, so teardown can reap or kill it.
    """

    def __init__(self, binary: str, root: Path, log: Path, sandbox_id: str) -> None:
        self.binary = binary
        self.root = root
        self.log = log
        self.sandbox_id = sandbox_id
        self.procs: list[subprocess.Popen[Any]] = []

    def argv(self, *args: str) -> list[str]:
        """Full argv for a runtime subcommand (with --systemd-cgroup under that driver)."""
        driver = ["--systemd-cgroup"] if SYSTEMD_DRIVER else []
        return [self.binary, *driver, "--root", str(self.root), "--log", str(self.log),
                "--log-format", "json", *args]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[SANDBOX_ENV] = self.sandbox_id
        return env

    def run_cmd(
        self,
        *args: str,
        check: bool = False,
        input: str | None = None,
        timeout: float = CMD_TIMEOUT,
        stdin: int | IO[Any] | None = None,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = subprocess.PIPE,
        cwd: Path | str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one runtime command to completion and return its CompletedProcess (text).

        stdin defaults to /dev/null (the container inherits it under `run`). On timeout the
        whole process group is killed and TimeoutExpired propagates, failing the test.
        """
        if input is not None:
            stdin = subprocess.PIPE
        elif stdin is None:
            stdin = subprocess.DEVNULL
        proc = subprocess.Popen(
            self.argv(*args),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=True,
            errors="replace",
            cwd=cwd,
            env=self._env(),
            start_new_session=True,
        )
        self.procs.append(proc)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc)
            try:  # collect what it said; a survivor holding the pipes must not hang us
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            raise
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}"
            )
        return result

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start a runtime command in the background (own session); tracked for teardown."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc: subprocess.Popen[str] = subprocess.Popen(
            self.argv(*args), text=True, errors="replace", env=self._env(),
            start_new_session=True, **kwargs,
        )
        self.procs.append(proc)
        return proc

    # convenience wrappers ---------------------------------------------------------------

    def run(self, bundle: Bundle, cid: str | None = None, *extra: str,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """`run --bundle B [extra] ID` in the foreground, capturing the container's output."""
        cid = cid or new_id()
        return self.run_cmd("run", "--bundle", str(bundle.path), *extra, cid, **kwargs)

    def create(self, bundle: Bundle, cid: str, *extra: str, out_dir: Path,
               check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """`create` with the container's stdio sent to files in out_dir (a pipe would keep
        communicate() waiting until the container exits). Returns with .stdout/.stderr set to
        what the runtime (and, by then, the container) wrote."""
        out_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^\w.-]", "_", cid)
        out_path, err_path = out_dir / f"{safe}.out", out_dir / f"{safe}.err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            res = self.run_cmd("create", "--bundle", str(bundle.path), *extra, cid,
                               stdout=out, stderr=err, **kwargs)
        res.stdout, res.stderr = out_path.read_text(), err_path.read_text()
        if check and res.returncode != 0:
            raise AssertionError(f"create {cid} exited {res.returncode}: {res.stderr!r}")
        return res

    def state(self, cid: str) -> dict[str, Any]:
        """Parsed `state ID`; fails the test if the command fails or prints non-JSON."""
        res = self.run_cmd("state", cid)
        assert res.returncode == 0, f"state {cid} failed: {res.stderr!r}"
        data = json.loads(res.stdout)
        assert isinstance(data, dict)
        return data

    def wait_status(self, cid: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll `state` until it reports `status`."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.state(cid)
            if last.get("status") == status:
                return last
            time.sleep(0.02)
        raise AssertionError(f"{cid} never became {status!r}; last state {last}")

    def list_ids(self) -> list[str]:
        """Container ids the runtime knows about (`list -q`)."""
        res = self.run_cmd("list", "-q", check=True)
        return res.stdout.split()

    def log_entries(self) -> list[dict[str, Any]]:
        """Every line of the --log file parsed as JSON (fails on a non-JSON line)."""
        if not self.log.exists():
            return []
        entries = []
        for n, line in enumerate(self.log.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:  # pragma: no cover - a failure message
                raise AssertionError(f"log line {n} is not JSON: {line!r}") from exc
        return entries

    def reset_log(self) -> None:
        """Truncate the log so a test can look at one command's lines only."""
        self.log.write_text("")


def readline(stream: IO[str] | None, timeout: float = 10.0) -> str:
    """One line from a child's pipe, failing the test instead of hanging if none comes."""
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout}s"
    return stream.readline()


def _killpg(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def new_id(prefix: str = "pt") -> str:
    """A fresh, valid container id."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_for(pred: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll pred() until it is true or timeout passes; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# host inspection (leak checks)


def _unescape_mount(field_: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


@dataclass(frozen=True)
class MountInfo:
    mount_point: str
    fstype: str
    source: str
    options: frozenset[str]


def host_mounts(pid: str = "self") -> list[MountInfo]:
    """Mounts of a process's mount namespace, from /proc/PID/mountinfo."""
    mounts = []
    with open(f"/proc/{pid}/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            lf, rf = left.split(), right.split()
            opts = set(lf[5].split(",")) | set(rf[2].split(",") if len(rf) > 2 else [])
            mounts.append(MountInfo(_unescape_mount(lf[4]), rf[0], _unescape_mount(rf[1]),
                                    frozenset(opts)))
    return mounts


def mounts_under(prefix: Path) -> list[str]:
    """Host mount points at or under `prefix`."""
    p = str(prefix).rstrip("/")
    return [m.mount_point for m in host_mounts()
            if m.mount_point == p or m.mount_point.startswith(p + "/")]


def cgroup_hierarchies() -> list[Path]:
    """Mount points of every cgroup v1 hierarchy and cgroup2 mount on the host."""
    seen: list[Path] = []
    for m in host_mounts():
        if m.fstype in ("cgroup", "cgroup2") and Path(m.mount_point) not in seen:
            seen.append(Path(m.mount_point))
    return seen


def cgroup_dirs(cgroups_path: str) -> list[Path]:
    """Existing directories for `cgroups_path` in any hierarchy."""
    rel = cgroups_path.strip("/")
    return [h / rel for h in cgroup_hierarchies() if (h / rel).is_dir()]


def sandbox_pids(sandbox_id: str, prefix: Path) -> list[int]:
    """Live processes belonging to a test: the sandbox marker in their environ, or their
    root/cwd under `prefix` (the test's tmp dir)."""
    marker = f"{SANDBOX_ENV}={sandbox_id}".encode()
    me = os.getpid()
    pfx = str(prefix).rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            state = stat[stat.rindex(b")") + 2:][:1]
            if state in (b"Z", b"X"):
                continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
            hit = marker in env
            if not hit:
                for link in ("root", "cwd"):
                    target = os.readlink(f"/proc/{entry}/{link}") + "/"
                    if target.startswith(pfx):
                        hit = True
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
        if hit:
            found.append(int(entry))
    return found


def describe_pid(pid: int) -> str:
    """A short description of a process for a failure message."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        cmd = "?"
    return f"{pid} ({cmd})"


def reap_children() -> None:
    """Reap every exited child (orphaned container inits land on us: we are a subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def set_child_subreaper() -> None:
    """Make this process adopt orphaned descendants (like containerd-shim does), so detached
    containers' inits can be reaped here instead of lingering as zombies under PID 1."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def force_rmdir_cgroup(path: Path) -> None:
    """Kill whatever is in a (test-owned) cgroup dir and remove it, children first."""
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        force_rmdir_cgroup(child)
    for attempt in range(50):
        try:
            procs = (path / "cgroup.procs").read_text().split()
        except OSError:
            procs = []
        for pid in procs:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        # a frozen v1 freezer cgroup keeps SIGKILLed tasks alive: thaw it
        freezer = path / "freezer.state"
        if freezer.exists():
            try:
                freezer.write_text("THAWED")
            except OSError:
                pass
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            reap_children()
            time.sleep(0.02)


def iter_state_dirs(root: Path) -> Iterator[Path]:
    """Entries in the runtime's --root dir (one per container for runc/pyrunc)."""
    if root.is_dir():
        yield from (p for p in root.iterdir())


def lazy_umount(path: str) -> None:
    """Detach a (test-owned) mount; ignores a mount that is already gone."""
    subprocess.run(["umount", "-l", path], capture_output=True)


def walk_unmount(paths: Iterable[str]) -> None:
    """Unmount deepest first."""
    for p in sorted(set(paths), key=len, reverse=True):
        lazy_umount(p)


def process_identity(pid: int | str = "self") -> str | None:
    """"PID STARTTIME" (survives pid reuse), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    real_pid = pid if pid != "self" else os.getpid()
    return f"{real_pid} {fields[19]}"


def _live_sandboxes(base: Path) -> list[Path]:
    """Sandbox dirs whose owning pytest still runs (or that are being made right now)."""
    live = []
    for d in base.glob("pyrunc-test-*"):
        try:
            owner = (d / "owner").read_text().strip()
        except OSError:
            # The owner is written right after the dir is made: without one, the dir is
            # being made now -- or was made by a session older than owner files, long dead.
            try:
                if time.time() - d.stat().st_mtime < 60:
                    live.append(d)
            except OSError:
                pass
            continue
        if process_identity(owner.split()[0]) == owner:
            live.append(d)
    return live


def reap_stale_sandboxes(base: Path) -> list[str]:
    """Clean up sandboxes whose pytest died before teardown (killed by a timeout, say):
    kill their processes, remove their cgroups and mounts, delete the dir. A sandbox is
    stale when the process named in its `owner` file is gone. Returns the dirs removed."""
    removed = []
    live = _live_sandboxes(base)
    for d in base.glob("pyrunc-test-*"):
        if d in live:
            continue
        sid = d.name[len("pyrunc-test-"):]
        for p in sandbox_pids(sid, d):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for cfg in d.glob("bundles/*/config.json"):
            try:
                cg = json.loads(cfg.read_text())["linux"]["cgroupsPath"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if isinstance(cg, str) and fs_cgroup_path(cg) != cg:
                stop_units([fs_cgroup_path(cg)])
            elif isinstance(cg, str) and cg.startswith(f"/{CGROUP_PARENT}/"):
                for cdir in cgroup_dirs(cg):
                    force_rmdir_cgroup(cdir)
        walk_unmount(mounts_under(d))
        if not mounts_under(d):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


def reap_stale_netns(base: Path) -> list[str]:
    """`ip netns delete` the test namespaces (`pyrunc-test-<sandbox id>-N`) of sandboxes that
    are gone or whose session died: teardown deletes them, a killed session cannot."""
    live = {d.name[len("pyrunc-test-"):] for d in _live_sandboxes(base)}
    removed: list[str] = []
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return removed
    for name in names:
        m = re.fullmatch(r"pyrunc-test-([0-9a-f]{16})-\d+", name)
        if m and m.group(1) not in live:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
            removed.append(name)
    return removed


def reap_orphan_cgroups(base: Path) -> list[str]:
    """Remove `/pyrunc-test/<id>` cgroups that no live sandbox's bundle names (a session
    killed after its sandbox dir was gone, or before `delete` ran). A live sandbox writes
    its bundle's config.json before any runtime makes that cgroup, so this cannot race."""
    wanted = set()
    for d in _live_sandboxes(base):
        for cfg in d.glob("bundles/*/config.json"):
            try:
                cg = json.loads(cfg.read_text())["linux"]["cgroupsPath"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if isinstance(cg, str):
                wanted.add(cg.strip("/"))
    removed = []
    for h in cgroup_hierarchies():
        parent = h / CGROUP_PARENT
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.is_dir() and f"{CGROUP_PARENT}/{child.name}" not in wanted:
                force_rmdir_cgroup(child)
                removed.append(str(child))
    return removed


@dataclass
class Leaks:
    """What a test left behind after `delete --force` of all its containers."""

    state_dirs: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.state_dirs or self.mounts or self.cgroups or self.processes)

    def report(self) -> str:
        parts = []
        for name in ("state_dirs", "mounts", "cgroups", "processes"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}: {items}")
        return "; ".join(parts)
