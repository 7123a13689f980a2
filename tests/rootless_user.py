"""A throwaway unprivileged user for rootless tests (integration and clients suites).

`RootlessUser.create()` makes `pyrunc-rl-<random>` with useradd, which also gives it
ranges in /etc/subuid and /etc/subgid (SUB_UID_COUNT ids, allocated by shadow under its
lock, so they never clash with another user's), a home, and an XDG_RUNTIME_DIR (0700) in
/dev/shm. `remove()` kills whatever still runs as its ids, removes the user (userdel
also drops its subuid/subgid lines), its home and runtime dir; it is safe to call twice
and after a failed create. A session killed before its teardown leaves the user behind:
the next `create()` removes it (`reap_stale`: /dev/shm/<name>.owner names the session). The pytest fixtures (`rootless_user`, `other_rootless_user`)
are session-scoped; import them into a conftest.py:

    from rootless_user import rootless_user, other_rootless_user  # noqa: F401

(tests/ is on sys.path: tests/conftest.py is the rootdir conftest; tests/clients inserts
its own dir, so there add tests/ too.)

Run a command as the user: `user.run(["pyrunc", "run", "x"], cwd=bundle)` (setpriv with
the user's ids and groups, a clean environment with HOME, USER, LOGNAME, PATH and
XDG_RUNTIME_DIR; `env=` adds to it), `user.popen(...)`, or `user.argv(cmd)` for a prefix.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _subid_range(file: str, name: str) -> tuple[int, int]:
    for line in Path(file).read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 3 and fields[0] == name:
            return int(fields[1]), int(fields[2])
    raise RuntimeError(f"useradd gave {name} no range in {file}")


class RootlessUser:
    """One test user: its name, ids, subordinate ranges and runtime dir."""

    def __init__(self, name: str) -> None:
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.home = Path(pw.pw_dir)
        #: (first host id, count) of the user's /etc/subuid and /etc/subgid range
        self.subuid = _subid_range("/etc/subuid", name)
        self.subgid = _subid_range("/etc/subgid", name)
        self.runtime_dir = Path("/dev/shm") / f"{name}-xdg"

    @classmethod
    def create(cls, prefix: str = "pyrunc-rl") -> "RootlessUser":
        reap_stale(prefix)
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        try:
            # Claimed first, so that a session killed from here on is reaped by the next.
            _owner_file(name).write_text(_identity(os.getpid()) + "\n")
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name],
                           check=True, capture_output=True, text=True)
            user = cls(name)
            user.runtime_dir.mkdir(mode=0o700)
            os.chown(user.runtime_dir, user.uid, user.gid)
        except BaseException:
            _remove(name, Path("/dev/shm") / f"{name}-xdg")
            raise
        return user

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name, "PATH": PATH,
               "XDG_RUNTIME_DIR": str(self.runtime_dir), "LANG": "C.UTF-8"}
        env.update(extra or {})
        return env

    def argv(self, cmd: Sequence[str]) -> list[str]:
        """`cmd` run as the user (its uid, gid and groups; no capabilities)."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--", *cmd]

    def run(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
            timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.argv(cmd), env=self.env(env), timeout=timeout, **kw)

    def popen(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
              **kw: Any) -> subprocess.Popen[str]:
        kw.setdefault("text", True)
        return subprocess.Popen(self.argv(cmd), env=self.env(env), **kw)

    def chown(self, path: Path) -> None:
        """Give the user `path` and everything below it (a bundle it owns). Files with
        other hard links (a rootfs' busybox linked from the shared cache) are left alone:
        their owner is the other name's too."""
        for dirpath, dirnames, filenames in os.walk(path):
            os.lchown(dirpath, self.uid, self.gid)
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    continue
                os.lchown(p, self.uid, self.gid)

    def host_ids(self) -> set[int]:
        """Every host uid the user's containers can run as: its own and its subuid range."""
        return {self.uid, *range(self.subuid[0], self.subuid[0] + self.subuid[1])}

    def pids(self) -> list[int]:
        """Host processes running as the user or one of its subordinate uids."""
        return _pids_of(self.host_ids())

    def kill_all(self) -> list[int]:
        """SIGKILL every process of the user's ids, by pid, until none is left (the user
        stays). Returns the pids that were running."""
        killed: set[int] = set()
        pids: list[int] = []
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for pid in pids:  # zombies of ours (a Popen the test did not wait for)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        return sorted(killed)

    def remove(self) -> None:
        _remove(self.name, self.runtime_dir)


def _pids_of(uids: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                        break  # a zombie (reparented to a subreaper): nothing runs
                    if line.startswith("Uid:"):
                        if any(int(u) in uids for u in line.split()[1:]):
                            found.append(int(entry))
                        break
        except OSError:
            continue
    return found


def _owner_file(name: str) -> Path:
    """Which test session made the user: "pid:start time" of its pytest process."""
    return Path("/dev/shm") / f"{name}.owner"


def _identity(pid: int) -> str:
    try:
        stat_ = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{pid}:{stat_.rsplit(')', 1)[1].split()[19]}"


def reap_stale(prefix: str = "pyrunc-rl") -> list[str]:
    """Remove the users a killed session left (its owner file names a process that is gone);
    a live session's users, and users without an owner file, are left alone."""
    reaped = []
    for entry in pwd.getpwall():
        if not entry.pw_name.startswith(prefix + "-"):
            continue
        owner = _owner_file(entry.pw_name)
        try:
            ident = owner.read_text().strip()
        except OSError:
            continue
        pid = ident.partition(":")[0]
        if pid.isdigit() and _identity(int(pid)) == ident:
            continue
        _remove(entry.pw_name, Path("/dev/shm") / f"{entry.pw_name}-xdg")
        reaped.append(entry.pw_name)
    return reaped


def _remove(name: str, runtime_dir: Path) -> None:
    """Kill the user's processes (and its subordinate ids'), then remove it all."""
    try:
        user: RootlessUser | None = RootlessUser(name)
    except (KeyError, RuntimeError):
        user = None
    if user is not None:
        user.kill_all()
    subprocess.run(["userdel", "--remove", name], capture_output=True)
    if user is not None:
        shutil.rmtree(user.home, ignore_errors=True)
    shutil.rmtree(runtime_dir, ignore_errors=True)
    _owner_file(name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def rootless_user() -> Iterator[RootlessUser]:
    """An unprivileged user with subuid/subgid ranges, removed at the end of the session."""
    if os.geteuid() != 0:
        pytest.skip("making a test user needs root")
    if not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("useradd and setpriv (passwd, util-linux) are needed")
    user = RootlessUser.create()
    try:
        yield user
    finally:
        user.remove()


@pytest.fixture(scope="session")
def other_rootless_user(rootless_user: RootlessUser) -> Iterator[RootlessUser]:
    """A second unprivileged user (one must not reach the other's containers)."""
    user = RootlessUser.create()
    try:
        yield user
    finally:
        user.remove()
