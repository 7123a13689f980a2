"""Plumbing for driving real container engines (containerd+ctr, dockerd+docker, podman+conmon) through
the runtime under test. Free of pytest (apart from skips in the adapters) so it can be used from a
Python shell when debugging a failure by hand.

Isolation: every daemon, shim, conmon and podman call runs inside ONE private mount namespace with a
fresh tmpfs on /run. The fixed paths these engines use whatever the flags (/run/containerd/s for shim
sockets, /run/runc or /run/pyrunc as the runtime's default root under podman, /run/libpod, ...) and
every mount they make (rootfs, shm) stay invisible to the host and vanish with the namespace. All
other state (roots, sockets, data-root, exec-root, storage) lives under one temp directory, and the
containers' cgroups under names unique to the session, removed at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Mapping, Sequence, TypeVar

# Every engine command normally finishes in about a second; a hang must fail a test, not eat the CI
# budget (30 minutes for ALL tests). Scale with PYRUNC_CLIENTS_TIMEOUT on a slow machine.
DEFAULT_TIMEOUT = float(os.environ.get("PYRUNC_CLIENTS_TIMEOUT", "30"))
IMAGE_REPO = "docker.io/library/pyrunc-busybox"
IMAGE_TAG = "latest"
IMAGE_REF = f"{IMAGE_REPO}:{IMAGE_TAG}"
DOCKER_IMAGE_REF = "pyrunc-busybox:latest"
PODMAN_IMAGE_REF = "localhost/pyrunc-busybox:latest"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_CLI = "/usr/bin/docker"  # Debian's client; another `docker` may come first on PATH
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

T = TypeVar("T")


class DaemonDied(RuntimeError):
    """A daemon we started exited while we waited for it: no point in waiting any longer."""


class CommandFailed(AssertionError):
    """A command exited non-zero (or hung) where the test needed it to work; message has its output."""


class CommandTimeout(CommandFailed):
    """A command hung and was killed: counted per engine, so a wedged runtime cannot eat the CI budget."""


@dataclass
class Result:
    """What a finished command did, with its output decoded for assertions."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def output(self) -> str:
        """stdout and stderr together, for messages that may land on either."""
        return self.stdout + self.stderr

    def describe(self) -> str:
        """A readable account for assertion messages."""
        return (
            f"$ {shlex.join(self.argv)}\n-> exit {self.returncode} after {self.duration:.1f}s\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run a command with a hard timeout, so a hung engine or runtime fails the test instead of CI.

    The command gets its own process group; on timeout that whole group is killed (we just created
    it), which takes `script` and its pty child along.
    """
    args = [str(a) for a in argv]
    start = time.monotonic()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input.encode() if input is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        res = Result(args, -9, out.decode(errors="replace"), err.decode(errors="replace"),
                     time.monotonic() - start)
        raise CommandTimeout(f"timed out after {timeout}s (killed)\n{res.describe()}") from None
    res = Result(args, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                 time.monotonic() - start)
    if check and res.returncode != 0:
        raise CommandFailed(res.describe())
    return res


def _kill_group(pgid: int) -> None:
    """SIGKILL a process group that we created ourselves."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def in_tty(argv: Sequence[str]) -> list[str]:
    """Wrap argv so that it runs on a pty (engines' -t wants a real terminal on stdin).

    `script -e` returns the child's exit status; -q drops script's banner; /dev/null drops the typescript.
    """
    return ["script", "-qec", shlex.join([str(a) for a in argv]), "/dev/null"]


def tty_text(text: str) -> str:
    """Output read through a pty: CRLF line ends and a stray NUL (script's EOF on stdin); normalise."""
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll until predicate() is truthy and return it; fail naming `what`. Avoids fixed sleeps."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except DaemonDied:
            raise
        except Exception as exc:  # noqa: BLE001 - reported if we time out
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")
        time.sleep(interval)


def unique_name(prefix: str) -> str:
    """A container name that cannot collide with another test or an earlier run."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# The runtime under test


@dataclass
class Runtime:
    """The binary the engines are pointed at, and how its error messages are worded."""

    real_path: str  # the binary itself (tests call this one directly)
    path: str  # what the engines get: real_path, or a tracing wrapper of the same file name
    flavor: str  # "runc", "pyrunc" or "other", from --version / the file name
    version: str
    trace_log: Path | None = None

    @property
    def name(self) -> str:
        """The file name: podman decides JSON-log support from it."""
        return os.path.basename(self.path)

    def missing_binary_markers(self, missing: str) -> list[str]:
        """Substrings that the runtime's own error for a missing entrypoint must carry to the user.

        runc 1.1: `exec: "NAME": executable file not found in $PATH` for a bare name and
        `exec: "/PATH": stat /PATH: no such file or directory` for a path. pyrunc's message must name
        the missing path. Other runtimes: the name too.
        """
        if self.flavor == "runc":
            return ["no such file or directory" if "/" in missing else "executable file not found"]
        return [missing]


def detect_runtime(binary: str, workdir: Path, trace: bool) -> Runtime:
    """Resolve the runtime and, when tracing, put a logging wrapper of the same file name in front.

    The wrapper keeps the file name (podman keys JSON-log support on it) and `exec`s the binary, so
    the engines see the same pid, fds, signals and exit status as without it.
    """
    real = os.path.realpath(shutil.which(binary) or binary)
    res = run([real, "--version"], timeout=30, check=False)
    version = (res.stdout or res.stderr).strip()
    first = version.splitlines()[0].lower() if version else ""
    base = os.path.basename(real).lower()
    if first.startswith("pyrunc") or "pyrunc" in base:
        flavor = "pyrunc"
    elif first.startswith("runc") or base == "runc":
        flavor = "runc"
    else:
        flavor = "other"
    if not trace:
        return Runtime(real, real, flavor, version)
    bindir = workdir / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    log = workdir / "runtime-calls.log"
    log.touch()
    wrapper = bindir / os.path.basename(real)
    wrapper.write_text(
        "#!/bin/sh\n"
        "# Records each call (time, pid, caller, argv), then becomes the real runtime.\n"
        "{ printf '%s %s [%s]' \"$(date +%s.%N)\" \"$$\" "
        "\"$(tr '\\0' ' ' < /proc/$PPID/cmdline | cut -c1-50)\"\n"
        "  for a in \"$@\"; do printf ' %s' \"$a\"; done; printf '\\n'; }"
        f" >> {shlex.quote(str(log))}\n"
        f"exec {shlex.quote(real)} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return Runtime(real, str(wrapper), flavor, version, log)


# --------------------------------------------------------------------------------------------------
# Image: a busybox-static rootfs, as a plain tar and as an OCI image layout (+ docker manifest.json)

_EPOCH = 1_600_000_000  # fixed mtimes: the same busybox gives the same digests


def _tar_add(tf: tarfile.TarFile, name: str, *, kind: bytes = tarfile.DIRTYPE, data: bytes = b"",
             mode: int = 0o755, link: str = "") -> None:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = _EPOCH
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    if kind == tarfile.SYMTYPE:
        ti.linkname = link
        tf.addfile(ti)
    elif kind == tarfile.REGTYPE:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def build_rootfs_tar(dest: Path, busybox: str = "/bin/busybox") -> None:
    """A minimal root file system: busybox-static, one symlink per applet, /etc/passwd and group.

    busybox-static needs no shared libraries, so this is a complete image made without a registry.
    """
    data = Path(busybox).read_bytes()
    applets = run([busybox, "--list"], timeout=30).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("bin", "dev", "etc", "home", "proc", "root", "run", "sbin", "sys", "tmp",
                  "usr", "usr/bin", "usr/sbin", "var", "var/tmp"):
            _tar_add(tf, d, mode=0o1777 if d in ("tmp", "var/tmp") else 0o755)
        _tar_add(tf, "bin/busybox", kind=tarfile.REGTYPE, data=data, mode=0o755)
        for applet in sorted(set(applets) - {"busybox"}):
            if "/" not in applet:
                _tar_add(tf, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox")
        files = {
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
            "etc/hostname": b"",
            "etc/hosts": b"127.0.0.1 localhost\n",
            "etc/resolv.conf": b"",
        }
        for name, content in files.items():
            _tar_add(tf, name, kind=tarfile.REGTYPE, data=content, mode=0o644)
    dest.write_bytes(buf.getvalue())


def _blob(layout: dict[str, bytes], payload: bytes) -> str:
    digest = hashlib.sha256(payload).hexdigest()
    layout[f"blobs/sha256/{digest}"] = payload
    return digest


def build_image_archive(rootfs_tar: Path, dest: Path, *, ref: str = IMAGE_REF,
                        docker_ref: str = DOCKER_IMAGE_REF,
                        entrypoint: Sequence[str] | None = None) -> dict[str, str]:
    """Write an OCI image-layout tar (oci-layout, index.json, blobs) with rootfs_tar as its one layer.

    It also carries a docker-save style manifest.json pointing at the same blobs, so one file serves
    `ctr images import` (reads the OCI index) and `docker load` (docker 20.10 reads only manifest.json).
    `entrypoint` makes another image of the same layer (the CRI test's pause image).
    Returns the digests, for checks and debugging.
    """
    layer = rootfs_tar.read_bytes()
    layout: dict[str, bytes] = {}
    layer_digest = _blob(layout, layer)
    config = {
        "created": "2020-09-13T12:26:40Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [f"PATH={CONTAINER_PATH}"], "WorkingDir": "/",
                   **({"Entrypoint": list(entrypoint)} if entrypoint else {"Cmd": ["sh"]})},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created": "2020-09-13T12:26:40Z", "created_by": "pyrunc tests/clients: busybox-static"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = _blob(layout, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": f"sha256:{config_digest}", "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer_digest}", "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = _blob(layout, manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": f"sha256:{manifest_digest}", "size": len(manifest_bytes),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": ref,
                            "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]},
        }],
    }
    layout["oci-layout"] = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
    layout["index.json"] = json.dumps(index, sort_keys=True).encode()
    layout["manifest.json"] = json.dumps([{
        "Config": f"blobs/sha256/{config_digest}",
        "RepoTags": [docker_ref],
        "Layers": [f"blobs/sha256/{layer_digest}"],
    }]).encode()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("blobs", "blobs/sha256"):
            _tar_add(tf, d)
        for name, payload in sorted(layout.items()):
            _tar_add(tf, name, kind=tarfile.REGTYPE, data=payload, mode=0o644)
    return {"layer": layer_digest, "config": config_digest, "manifest": manifest_digest}


# --------------------------------------------------------------------------------------------------
# The private mount namespace shared by all engines


class MountNamespace:
    """A holder process in a private mount namespace with a tmpfs on /run; others join with nsenter.

    Everything started inside is identified by its mount namespace, so cleanup kills exactly what
    this suite started and nothing else.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.ns_id = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None, "namespace not started"
        return self.proc.pid

    # Host directories the engines write to whatever their flags say (podman: the blob-info cache in
    # /var/lib/containers/cache; dockerd 20.10: /etc/docker/key.json unless daemon.json says otherwise).
    # In the namespace each gets an overlay whose upper layer lives in the namespace's /run tmpfs,
    # so the host copy stays untouched and stray writes can be listed (stray_writes()).
    OVERLAID = ("/etc", "/var")
    SCRATCH = "/run/.pyrunc-clients"

    def setup_lines(self) -> list[str]:
        """Shell lines run in the new namespace: the /run tmpfs and the overlays."""
        lines = ["mount -t tmpfs -o mode=0755,size=512m pyrunc-clients-run /run",
                 "mkdir -p /run/containerd /run/lock"]
        for d in self.OVERLAID:
            up = f"{self.SCRATCH}{d}"
            lines.append(f"mkdir -p {up}/upper {up}/work")
            lines.append(f"mount -t overlay pyrunc-clients-overlay "
                         f"-o lowerdir={d},upperdir={up}/upper,workdir={up}/work {d}")
        return lines

    def start(self) -> None:
        """Create the namespace, run setup_lines() in it, and wait until it is ready."""
        lines = ["set -e", *self.setup_lines(), "echo ready; exec sleep infinity"]
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", "; ".join(lines)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            err = self.proc.stderr.read(4000) if self.proc.poll() is not None else b""
            self.stop()
            raise RuntimeError(f"could not set up the private mount namespace: {line!r} {err!r}")
        self.ns_id = os.readlink(f"/proc/{self.pid}/ns/mnt")
        if self.ns_id == os.readlink("/proc/self/ns/mnt"):
            self.stop()
            raise RuntimeError("unshare did not give a new mount namespace")

    def stray_writes(self) -> list[str]:
        """Host paths (under the overlaid dirs) that something in the namespace created or changed."""
        found = []
        for d in self.OVERLAID:
            upper = f"/proc/{self.pid}/root{self.SCRATCH}{d}/upper"
            for dirpath, dirs, files in os.walk(upper):
                for name in files + [x for x in dirs if not os.listdir(os.path.join(dirpath, x))]:
                    found.append(d + os.path.join(dirpath, name)[len(upper):])
        return sorted(found)

    def prefix(self) -> list[str]:
        """argv prefix that runs a command inside the namespace."""
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", "--"]

    def members(self) -> list[int]:
        """Pids whose mount namespace is ours (all started by this suite, directly or via an engine)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == self.ns_id:
                    pids.append(int(entry))
            except OSError:
                continue
        return pids

    def stop(self) -> list[int]:
        """Kill what is left inside (by pid), then the holder; the namespace and its mounts go too.

        Returns the pids that had to be killed (leftovers worth reporting).
        """
        killed: list[int] = []
        if self.ns_id:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = [p for p in self.members() if self.proc is None or p != self.proc.pid]
                for pid in pids:
                    try:
                        os.kill(pid, sig)
                        killed.append(pid)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 5
                while pids and time.monotonic() < deadline:
                    pids = [p for p in pids if pid_alive(p)]
                    time.sleep(0.05)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return sorted(set(killed))


# --------------------------------------------------------------------------------------------------
# Cgroups (only the trees named after this session are ever touched)


def _cgroup_mounts() -> list[str]:
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            fstype = parts[parts.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                mounts.append(parts[4])
    return mounts


def cgroup_dirs(name: str) -> list[Path]:
    """Every directory /<name> at the top of a mounted cgroup hierarchy (v1 and v2)."""
    return [p for p in (Path(m) / name.strip("/") for m in _cgroup_mounts()) if p.is_dir()]


def procs_in_cgroup_tree(name: str) -> list[int]:
    """Pids in the cgroup trees /<name> (container processes an engine failed to clean up)."""
    pids: set[int] = set()
    for top in cgroup_dirs(name):
        for dirpath, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    pids.update(int(x) for x in Path(dirpath, "cgroup.procs").read_text().split())
                except OSError:
                    continue
    return sorted(pids)


def thaw_cgroup_tree(name: str) -> None:
    """Unfreeze our trees: a frozen (paused) process cannot die of SIGKILL until thawed."""
    for top in cgroup_dirs(name):
        for dirpath, _dirs, files in os.walk(top):
            for fname, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                if fname in files:
                    try:
                        Path(dirpath, fname).write_text(value)
                    except OSError:
                        pass


def remove_cgroup_tree(name: str) -> list[str]:
    """rmdir, bottom-up, the cgroup trees /<name> that this session created; returns what stayed."""
    left = []
    for top in cgroup_dirs(name):
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                left.append(dirpath)
    return left


def cleanup_cgroup_tree(name: str) -> list[str]:
    """Kill leftover container processes in /<name> (ours by the session-unique name), then rmdir it."""
    thaw_cgroup_tree(name)
    for pid in procs_in_cgroup_tree(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if procs_in_cgroup_tree(name):
        time.sleep(0.5)
    return remove_cgroup_tree(name)


def close_namespace(ns: MountNamespace, trees: Sequence[str], expected_writes: Sequence[str] = ()) -> None:
    """Teardown backstop of a namespace the engines ran in: warn about writes outside their dirs
    (but the `expected_writes` prefixes), kill what is left inside by pid, empty and remove `trees`."""
    stray = [p for p in ns.stray_writes() if not p.startswith(tuple(expected_writes))]
    if stray:
        warnings.warn(f"engines wrote outside their configured dirs (caught by the namespace's "
                      f"overlays, the host is untouched): {stray}")
    leftovers = ns.stop()
    if leftovers:
        warnings.warn(f"killed processes left in the test mount namespace: {leftovers}")
    for tree in trees:
        left = cleanup_cgroup_tree(tree)
        if left:
            warnings.warn(f"could not remove cgroups: {left}")


def session_trees(token: str) -> tuple[str, ...]:
    """The cgroup trees a client session makes: the engines' parents, one per engine."""
    return (f"pyrunc-clients-{token}", f"pyrunc-clients-{token}-docker",
            f"pyrunc-clients-{token}-podman", f"pyrunc-clients-{token}-cri")


def process_identity(pid: int | str = "self") -> str | None:
    """"PID STARTTIME" (survives pid reuse), or None when the process is gone. (The twin of
    integration.helpers.process_identity: this suite runs without the integration package.)"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{os.getpid() if pid == 'self' else pid} {stat[stat.rindex(')') + 2:].split()[19]}"


def _session_alive(workdirs: list[Path]) -> bool:
    for d in workdirs:
        try:
            owner = (d / "owner").read_text().strip()
        except OSError:
            continue  # no owner: a session killed before this file existed, or torn down
        if process_identity(owner.split()[0]) == owner:
            return True
    return False


def reap_stale_sessions(token: str, tmp: Path = Path("/tmp")) -> list[str]:
    """Clean up after client sessions killed before their teardown: empty and remove their
    cgroup trees and delete their work dirs. A session is alive while the process named in
    its work dir's `owner` file runs; only trees and dirs named after a token are touched."""
    tokens: set[str] = set()
    for mount in _cgroup_mounts():
        try:
            names = os.listdir(mount)
        except OSError:
            continue
        tokens.update(m.group(1) for n in names
                      if (m := re.fullmatch(r"pyrunc-clients-([0-9a-f]{6})(?:-docker|-podman|-cri)?", n)))
    tokens.update(m.group(1) for d in tmp.glob("prc-*-*")
                  if (m := re.fullmatch(r"prc-([0-9a-f]{6})-\w+", d.name)))
    cleaned = []
    for other in sorted(tokens - {token}):
        workdirs = list(tmp.glob(f"prc-{other}-*"))
        if _session_alive(workdirs):
            continue
        for tree in session_trees(other):
            if cgroup_dirs(tree) and not cleanup_cgroup_tree(tree):
                cleaned.append(tree)
        with open("/proc/self/mountinfo") as f:
            mounted = [line.split()[4] for line in f]
        for d in workdirs:
            if not any(m == str(d) or m.startswith(f"{d}/") for m in mounted):
                shutil.rmtree(d, ignore_errors=True)
                cleaned.append(str(d))
    return cleaned


def memory_limit_of(pid: int) -> int:
    """The memory limit of pid's cgroup, read on the host through the cgroup file system.

    v1 memory.limit_in_bytes or v2 memory.max ("max" reads as -1), whichever holds the controller.
    """
    v1 = v2 = None
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hid, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            v1 = path
        elif hid == "0":
            v2 = path
    for mnt in _cgroup_mounts():
        if v1 is not None:
            f = Path(mnt + v1) / "memory.limit_in_bytes"
        elif v2 is not None:
            f = Path(mnt + v2) / "memory.max"
        else:
            break
        if f.exists():
            text = f.read_text().strip()
            return -1 if text == "max" else int(text)
    raise AssertionError(f"no memory cgroup file found for pid {pid}")


# Shell run inside a container to print its memory limit, whichever cgroup version is mounted.
MEMORY_LIMIT_CMD = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
                    " || cat /sys/fs/cgroup/memory.max")


def read_in_container(pid: int, path: str) -> str:
    """Read a file inside a container through /proc/PID/root: works even while it is paused."""
    return Path(f"/proc/{pid}/root/{path.lstrip('/')}").read_text()


# --------------------------------------------------------------------------------------------------
# Daemons


def clean_env(workdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small explicit environment: no user config (HOME, XDG_*, DOCKER_*) reaches the engines."""
    for d in ("home", "tmp"):
        (workdir / d).mkdir(parents=True, exist_ok=True)
    env = {"PATH": HOST_PATH, "HOME": str(workdir / "home"), "LANG": "C.UTF-8", "TERM": "xterm",
           "TMPDIR": str(workdir / "tmp")}
    env.update(extra or {})
    return env


@dataclass
class Daemon:
    """A daemon we started (inside the namespace), with its log for failure messages."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise DaemonDied(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, wait, then SIGKILL: by pid, only this daemon."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log_file.close()


def start_daemon(name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str]) -> Daemon:
    log_file = open(log_path, "ab")
    proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log_file,
                            stderr=subprocess.STDOUT, env=dict(env), start_new_session=True)
    return Daemon(name, proc, log_path, log_file)


def containerd_config(workdir: Path, sock: str, disabled: Sequence[str], plugins: str = "") -> str:
    """A containerd config.toml with everything under workdir: root, state, sockets, opt dir.

    `disabled` plugins come on top of the snapshotters that need what this machine lacks (btrfs, zfs,
    devmapper, aufs) and the tracing exporter; `plugins` is more TOML for the [plugins] table.
    Debug and metrics listeners are off.
    """
    off = [*disabled, "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
           "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
           "io.containerd.tracing.processor.v1.otlp"]
    return f"""version = 2
root = "{workdir}/root"
state = "{workdir}/state"
oom_score = 0
disabled_plugins = {json.dumps(off)}

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{workdir}/opt"
{plugins}"""


@dataclass
class ContainerdBase:
    """What every containerd of these tests shares: root, state, sockets and the runtime's root
    under workdir, the daemon in the clients' namespace. Subclasses say which plugins run."""

    workdir: Path
    ns: MountNamespace
    runtime: Runtime
    daemon: Daemon | None = field(default=None, kw_only=True)
    env: dict[str, str] = field(default_factory=dict, kw_only=True)

    @property
    def sock(self) -> str:
        return str(self.workdir / "c.sock")

    @property
    def runtime_root(self) -> Path:
        """The runtime's --root, to which the shim appends /<containerd namespace> on every call
        (`ctr run --runc-root`; the CRI runtime's Root option)."""
        return self.workdir / "runtime-root"

    def _launch(self, name: str, config: str, dirs: Sequence[Path] = ()) -> Daemon:
        """Write `config`, start containerd with it in the namespace (not waiting for it)."""
        w = self.workdir
        for d in (w, self.runtime_root, *dirs):
            d.mkdir(parents=True, exist_ok=True)
        (w / "config.toml").write_text(config)
        self.env = clean_env(w)
        self.daemon = start_daemon(name, self.ns.prefix() + ["containerd", "--config", str(w / "config.toml")],
                                   w / "containerd.log", self.env)
        return self.daemon

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


@dataclass
class Containerd(ContainerdBase):
    """containerd with CRI disabled, driven by ctr.

    The ctr namespace name is also the parent cgroup of its containers (/<namespace>/<id>), so it is
    session-unique and removed at the end.
    """

    namespace: str
    #: seconds to wait for its API (the emulated systemd guest needs minutes)
    start_timeout: float = 60

    @property
    def fifo_dir(self) -> Path:
        """ctr's stdio FIFOs (default /run/containerd/fifo, which the namespace hides from ctr)."""
        return self.workdir / "fifo"

    def start(self) -> None:
        """Write the config, start containerd in the namespace, wait for its API."""
        daemon = self._launch("containerd", containerd_config(self.workdir, self.sock, ["io.containerd.grpc.v1.cri"]),
                              [self.fifo_dir])

        def up() -> bool:
            daemon.check_alive()
            return run(["ctr", "-a", self.sock, "version"], timeout=10, check=False, env=self.env).returncode == 0

        wait_for(up, self.start_timeout, "containerd to answer")

    def ctr_argv(self, *args: str) -> list[str]:
        return ["ctr", "-a", self.sock, "-n", self.namespace, *args]

    def ctr(self, *args: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True,
            input: str | None = None) -> Result:
        """ctr against our containerd and namespace (ctr runs on the host: it only needs the socket)."""
        return run(self.ctr_argv(*args), timeout=timeout, check=check, env=self.env, input=input)

    def run_flags(self) -> list[str]:
        """What every `ctr run` needs to use the runtime under test with our private paths."""
        return ["--runc-binary", self.runtime.path, "--runc-root", str(self.runtime_root),
                "--fifo-dir", str(self.fifo_dir)]

    def import_image(self, archive: Path) -> str:
        self.ctr("images", "import", "--base-name", IMAGE_REPO, str(archive), timeout=120)
        return IMAGE_REF

    def tasks(self) -> dict[str, tuple[int, str]]:
        """`ctr task ls` as {id: (pid, STATUS)}."""
        out = self.ctr("tasks", "ls").stdout
        table = {}
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3:
                table[parts[0]] = (int(parts[1]), parts[2])
        return table

    def remove_all(self) -> None:
        """Kill and delete every task and container of our namespace (teardown; errors ignored)."""
        for cid in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "delete", "-f", cid, check=False)
            self.ctr("containers", "delete", cid, check=False)


@dataclass
class Dockerd:
    """dockerd on our containerd: every path under workdir, no bridge/iptables, the runtime added."""

    workdir: Path
    ns: MountNamespace
    runtime: Runtime
    containerd: Containerd
    cgroup_parent: str
    runtime_name: str = "pyrunc"
    daemon: Daemon | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: "cgroupfs" (with cgroup_parent), or None: dockerd's default (systemd on a systemd v2 host)
    cgroup_driver: str | None = "cgroupfs"
    start_timeout: float = 60

    @property
    def sock(self) -> str:
        return str(self.workdir / "d.sock")

    @property
    def exec_root(self) -> Path:
        return self.workdir / "exec"

    @property
    def runtime_root(self) -> Path:
        """The --root the shim gets for docker's containers. dockerd 20.10 builds it from the DEFAULT
        runtime name (runtime-runc) for every --add-runtime runtime, then the shim adds the namespace."""
        return self.exec_root / "runtime-runc" / "moby"

    def start(self) -> None:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        # Our own daemon.json, so /etc/docker/daemon.json is never read. deprecated-key-path: dockerd
        # 20.10 otherwise writes /etc/docker/key.json (a daemon.json-only key; no such CLI flag).
        (w / "daemon.json").write_text(json.dumps({"deprecated-key-path": str(w / "key.json")}) + "\n")
        self.env = clean_env(w, {"DOCKER_CONFIG": str(w / "cli"), "DOCKER_HOST": f"unix://{self.sock}"})
        argv = self.ns.prefix() + [
            "dockerd",
            "--config-file", str(w / "daemon.json"),
            "--containerd", self.containerd.sock,
            "--add-runtime", f"{self.runtime_name}={self.runtime.path}",
            "--default-runtime", self.runtime_name,
            "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--userland-proxy=false",
            "--data-root", str(w / "data"),
            "--exec-root", str(self.exec_root),
            "-H", f"unix://{self.sock}",
            "--pidfile", str(w / "dockerd.pid"),
            "--storage-driver", "vfs",
            *(["--exec-opt", f"native.cgroupdriver={self.cgroup_driver}",
               "--cgroup-parent", self.cgroup_parent] if self.cgroup_driver else []),
            "--log-level", "info",
        ]
        self.daemon = start_daemon("dockerd", argv, w / "dockerd.log", self.env)

        def up() -> bool:
            assert self.daemon is not None
            self.daemon.check_alive()
            return self.docker("version", check=False, timeout=10).returncode == 0

        wait_for(up, self.start_timeout, "dockerd to answer")

    def docker_argv(self, *args: str) -> list[str]:
        return [DOCKER_CLI, "-H", f"unix://{self.sock}", *args]

    def docker(self, *args: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True,
               input: str | None = None) -> Result:
        return run(self.docker_argv(*args), timeout=timeout, check=check, env=self.env, input=input)

    def import_image(self, archive: Path, rootfs_tar: Path) -> str:
        """`docker load` the image archive; fall back to `docker import` of the bare rootfs."""
        if self.docker("load", "-i", str(archive), timeout=120, check=False).returncode != 0:
            self.docker("import", "--change", 'CMD ["sh"]', "--change", f"ENV PATH={CONTAINER_PATH}",
                        str(rootfs_tar), DOCKER_IMAGE_REF, timeout=120)
        return DOCKER_IMAGE_REF

    def remove_all(self) -> None:
        ids = self.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            self.docker("rm", "-f", *ids, check=False, timeout=120)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(timeout=30)


@dataclass
class Podman:
    """podman (+conmon), configured only by files under workdir, every call inside the namespace."""

    workdir: Path
    ns: MountNamespace
    runtime: Runtime
    cgroup_parent: str
    env: dict[str, str] = field(default_factory=dict)

    def setup(self) -> None:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        # podman passes --log-format=json --log to a runtime only if its FILE NAME is listed here.
        known = sorted({"crun", "runc", "kata", "runsc", "youki", "krun", "pyrunc", self.runtime.name})
        (w / "containers.conf").write_text(f"""[containers]
netns = "none"
log_driver = "k8s-file"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{w}/events.log"
tmp_dir = "{w}/libpod-tmp"
static_dir = "{w}/storage/libpod"
volume_path = "{w}/volumes"
conmon_path = ["/usr/bin/conmon"]
runtime_supports_json = {json.dumps(known)}

[network]
network_config_dir = "{w}/net"
""")
        (w / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{w}/storage"\nrunroot = "{w}/runroot"\n')
        (w / "registries.conf").write_text("unqualified-search-registries = []\n")
        self.env = clean_env(w, {
            "CONTAINERS_CONF": str(w / "containers.conf"),  # replaces every other containers.conf
            "CONTAINERS_STORAGE_CONF": str(w / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(w / "registries.conf"),
        })

    def podman_argv(self, *args: str) -> list[str]:
        return self.ns.prefix() + ["podman", "--runtime", self.runtime.path, "--cgroup-manager", "cgroupfs",
                                   "--events-backend", "file", *args]

    def podman(self, *args: str, timeout: float = DEFAULT_TIMEOUT, check: bool = True,
               input: str | None = None) -> Result:
        return run(self.podman_argv(*args), timeout=timeout, check=check, env=self.env, input=input)

    def import_image(self, rootfs_tar: Path) -> str:
        self.podman("import", "--change", "CMD=sh", "--change", f"ENV=PATH={CONTAINER_PATH}",
                    str(rootfs_tar), PODMAN_IMAGE_REF, timeout=120)
        return PODMAN_IMAGE_REF

    def remove_all(self) -> None:
        self.podman("rm", "-af", "-t", "0", check=False, timeout=120)


def runtime_state(ns: MountNamespace, runtime: Runtime, root: Path | None, cid: str) -> tuple[dict | None, Result]:  # type: ignore[type-arg]
    """Ask the runtime itself (`state ID`) with the root the engine uses (None: its default root,
    as podman calls it), inside the namespace where that default root lives."""
    argv = ns.prefix() + [runtime.real_path, *(["--root", str(root)] if root else []), "state", cid]
    res = run(argv, check=False, timeout=20)
    if res.returncode != 0:
        return None, res
    return json.loads(res.stdout), res


def parse_table_column(text: str, column: str) -> list[str]:
    """Values of one column of a whitespace table with a header line (docker top, ctr task ps, ...)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = lines[0].split()
    idx = header.index(column)
    return [ln.split()[idx] for ln in lines[1:] if len(ln.split()) > idx]


def exit_code_from_ctr_delete(res: Result) -> int:
    """ctr 1.6 `task delete` exits 0 and only WARNs "task X exit with non-zero exit code N"."""
    m = re.search(r"exit with non-zero exit code (\d+)", res.output)
    return int(m.group(1)) if m else 0
