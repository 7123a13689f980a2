"""A throwaway unprivileged user with subordinate id ranges, for driving engines rootless.

Created per test module and removed with everything of theirs (processes by pid, home, runtime
dir, subuid/subgid lines), also on failure. A session killed before its teardown is cleaned up
by the next one: each user's GECOS field names the process that made it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from clients_support import pid_alive, process_identity

PREFIX = "prlpod-"
GECOS = "pyrunc test user, owner "
SUBID_COUNT = 65536


@dataclass
class RootlessUser:
    """Who the engine runs as: name, uid/gid, first subordinate uid/gid, home and XDG_RUNTIME_DIR."""

    name: str
    uid: int
    gid: int
    subuid: int
    subgid: int
    home: Path
    runtime_dir: Path
    count: int = SUBID_COUNT

    def owns(self, uid: int) -> bool:
        """True for the user's own uid and every uid of its subordinate range."""
        return uid == self.uid or self.subuid <= uid < self.subuid + self.count

    def processes(self) -> list[int]:
        """Live pids whose real uid is the user's or in its subordinate range (zombies excluded)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                uid = os.stat(f"/proc/{entry}").st_uid
            except OSError:
                continue
            if self.owns(uid) and pid_alive(int(entry)):
                found.append(int(entry))
        return sorted(found)


def _subid_start(path: str, name: str) -> int | None:
    for line in Path(path).read_text().splitlines():
        parts = line.split(":")
        if len(parts) == 3 and parts[0] == name:
            return int(parts[1])
    return None


def _free_subid_start(count: int) -> int:
    """The first range above every range in /etc/subuid and /etc/subgid (useradd's allocator may
    be disabled by login.defs, so we pick and add it ourselves)."""
    top = 100000
    for path in ("/etc/subuid", "/etc/subgid"):
        for line in Path(path).read_text().splitlines() if os.path.exists(path) else []:
            parts = line.split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                top = max(top, int(parts[1]) + int(parts[2]))
    return top + count - top % count if top % count else top


def create_user(base: Path) -> RootlessUser:
    """useradd with a home under base, a subordinate range of 65536 ids, a 0700 runtime dir."""
    name = PREFIX + uuid.uuid4().hex[:8]
    home = base / f"{name}-home"
    runtime_dir = base / f"{name}-run"
    subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh",
                    "--comment", f"{GECOS}{process_identity()}", name],
                   check=True, capture_output=True)
    pw = pwd.getpwnam(name)
    for kind, flag in (("uid", "--add-subuids"), ("gid", "--add-subgids")):
        if _subid_start(f"/etc/sub{kind}", name) is None:
            start = _free_subid_start(SUBID_COUNT)
            subprocess.run(["usermod", flag, f"{start}-{start + SUBID_COUNT - 1}", name],
                           check=True, capture_output=True)
    runtime_dir.mkdir(mode=0o700)
    os.chown(runtime_dir, pw.pw_uid, pw.pw_gid)
    subuid = _subid_start("/etc/subuid", name)
    subgid = _subid_start("/etc/subgid", name)
    assert subuid is not None and subgid is not None
    return RootlessUser(name, pw.pw_uid, pw.pw_gid, subuid, subgid, home, runtime_dir)


def kill_processes(user: RootlessUser, timeout: float = 10) -> list[int]:
    """SIGKILL every process of the user (uid or subordinate uid), by pid, until none is left."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while (pids := user.processes()) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return sorted(set(killed))


def remove_user(user: RootlessUser) -> list[str]:
    """Kill the user's processes, delete the user, its subordinate ranges, home and runtime dir.

    Returns what could not be removed (for a warning)."""
    problems = []
    left = kill_processes(user)
    if user.processes():
        problems.append(f"processes still running: {user.processes()}")
    res = subprocess.run(["userdel", "--remove", user.name], capture_output=True, text=True)
    if res.returncode not in (0, 12):  # 12: home not removed (we remove it below)
        problems.append(f"userdel {user.name}: {res.stderr.strip()}")
    for path in ("/etc/subuid", "/etc/subgid"):
        lines = Path(path).read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if not ln.startswith(f"{user.name}:")]
        if kept != lines:
            Path(path).write_text("".join(kept))
    for d in (user.home, user.runtime_dir):
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            problems.append(f"could not remove {d}")
    for stray in strays(user):
        # podman's /dev/shm/libpod_rootless_lock_UID is expected; anything else is news
        if not stray.name.startswith("libpod_rootless_lock_"):
            problems.append(f"removed {stray}")
        if stray.is_dir() and not stray.is_symlink():
            shutil.rmtree(stray, ignore_errors=True)
        else:
            stray.unlink(missing_ok=True)
    del left
    return problems


def strays(user: RootlessUser) -> list[Path]:
    """Entries of the shared temp dirs owned by the user or its subordinate ids."""
    found = []
    for d in ("/dev/shm", "/tmp", "/var/tmp"):
        for entry in Path(d).iterdir():
            try:
                if user.owns(entry.lstat().st_uid):
                    found.append(entry)
            except OSError:
                continue
    return found


def reap_stale_users() -> list[str]:
    """Remove test users left by sessions that died before their teardown (owner process gone)."""
    reaped = []
    for pw in pwd.getpwall():
        if not pw.pw_name.startswith(PREFIX) or not pw.pw_gecos.startswith(GECOS):
            continue
        owner = pw.pw_gecos[len(GECOS):]
        if owner and process_identity(owner.split()[0]) == owner:
            continue
        home = Path(pw.pw_dir)
        user = RootlessUser(pw.pw_name, pw.pw_uid, pw.pw_gid,
                            _subid_start("/etc/subuid", pw.pw_name) or -SUBID_COUNT,
                            _subid_start("/etc/subgid", pw.pw_name) or -SUBID_COUNT,
                            home, home.with_name(home.name.replace("-home", "-run")))
        remove_user(user)
        reaped.append(pw.pw_name)
    return reaped
