"""cgroup v1: one directory per mounted controller hierarchy."""

from __future__ import annotations

import errno
import os
import time

from pyrunc.cgroups import CGROUP_ROOT, count_in, mountinfo, read, write
from pyrunc.errors import SystemError_
from pyrunc.spec.config import DeviceRule, Resources

# Devices every container gets on top of its rules, as runc does.
DEFAULT_ALLOWED = (
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"),   # null
    DeviceRule(True, "c", 1, 8, "rwm"),   # random
    DeviceRule(True, "c", 1, 7, "rwm"),   # full
    DeviceRule(True, "c", 5, 0, "rwm"),   # tty
    DeviceRule(True, "c", 1, 5, "rwm"),   # zero
    DeviceRule(True, "c", 1, 9, "rwm"),   # urandom
    DeviceRule(True, "c", 136, None, "rwm"),  # pts
    DeviceRule(True, "c", 5, 2, "rwm"),   # ptmx
    DeviceRule(True, "c", 5, 1, "rwm"),   # console
    DeviceRule(True, "c", 10, 200, "rwm"),  # tun
)


def rule_text(rule: DeviceRule) -> str:
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access}"


def hierarchies() -> dict[str, str]:
    """Controller name (or name=...) -> its mount point, for each v1 hierarchy."""
    out: dict[str, str] = {}
    for mp, fstype, opts in mountinfo():
        if fstype != "cgroup" or not mp.startswith(CGROUP_ROOT + "/"):
            continue
        for opt in opts:
            if opt in ("rw", "ro") or opt.startswith("release_agent") or opt in ("noprefix", "xattr", "clone_children"):
                continue
            out.setdefault(opt, mp)
    return out


class V1Manager:
    def __init__(self, path: str) -> None:
        self.path = path
        self._mounts = hierarchies()

    def _dirs(self) -> list[str]:
        seen: list[str] = []
        for mp in self._mounts.values():
            d = mp + self.path
            if d not in seen:
                seen.append(d)
        return seen

    def _dir(self, controller: str) -> str | None:
        mp = self._mounts.get(controller)
        return None if mp is None else mp + self.path

    def create(self) -> None:
        for ctrl, mp in self._mounts.items():
            d = mp + self.path
            try:
                if ctrl == "cpuset":
                    self._make_cpuset(mp)
                else:
                    os.makedirs(d, exist_ok=True)
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot create cgroup {d}", exc) from None

    def _make_cpuset(self, mp: str) -> None:
        """cpuset dirs start empty and refuse tasks: copy cpus and mems down from the parent."""
        cur = mp
        for part in [p for p in self.path.split("/") if p]:
            nxt = os.path.join(cur, part)
            if not os.path.isdir(nxt):
                os.mkdir(nxt)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not read(os.path.join(nxt, name)).strip():
                    write(os.path.join(nxt, name), read(os.path.join(cur, name)).strip())
            cur = nxt

    def apply(self, pid: int) -> None:
        for d in self._dirs():
            try:
                write(os.path.join(d, "cgroup.procs"), str(pid))
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot add pid {pid} to cgroup {d}", exc) from None

    def set(self, resources: Resources) -> list[str]:
        """Write the limits; returns warnings for what could not be enforced."""
        r = resources
        writes: list[tuple[str | None, str, object]] = [
            (self._dir("memory"), "memory.limit_in_bytes", r.memory_limit),
            (self._dir("memory"), "memory.soft_limit_in_bytes", r.memory_reservation),
            (self._dir("memory"), "memory.memsw.limit_in_bytes", r.memory_swap),
            (self._dir("cpu"), "cpu.shares", r.cpu_shares),
            (self._dir("cpu"), "cpu.cfs_period_us", r.cpu_period),
            (self._dir("cpu"), "cpu.cfs_quota_us", r.cpu_quota),
            (self._dir("cpuset"), "cpuset.cpus", r.cpu_cpus),
            (self._dir("cpuset"), "cpuset.mems", r.cpu_mems),
            (self._dir("pids"), "pids.max", None if r.pids_limit is None
             else ("max" if r.pids_limit <= 0 else r.pids_limit)),
        ]
        for d, name, value in writes:
            if value is None or d is None:
                continue
            try:
                write(os.path.join(d, name), str(value))
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot set {name} to {value}", exc) from None
        self._set_devices(r.devices)
        return []

    def _set_devices(self, rules: tuple[DeviceRule, ...]) -> None:
        d = self._dir("devices")
        if d is None or not rules:
            return
        for rule in rules + DEFAULT_ALLOWED:
            name = "devices.allow" if rule.allow else "devices.deny"
            try:
                write(os.path.join(d, name), rule_text(rule))
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot write {name} {rule_text(rule)!r}", exc) from None

    def freeze(self, frozen: bool) -> None:
        d = self._dir("freezer")
        if d is None:
            raise SystemError_("the freezer cgroup controller is not mounted")
        want = "FROZEN" if frozen else "THAWED"
        write(os.path.join(d, "freezer.state"), want)
        for _ in range(1000):
            if read(os.path.join(d, "freezer.state")).strip() == want:
                return
            time.sleep(0.001)
            write(os.path.join(d, "freezer.state"), want)
        raise SystemError_(f"cgroup {d} did not reach {want}", errno.EBUSY)

    def is_frozen(self) -> bool:
        d = self._dir("freezer")
        if d is None:
            return False
        try:
            return read(os.path.join(d, "freezer.state")).strip() in ("FROZEN", "FREEZING")
        except OSError:
            return False

    def pids(self) -> list[int]:
        dirs = self._dirs()
        d = self._dir("pids") or self._dir("memory") or (dirs[0] if dirs else None)
        if d is None:
            return []
        try:
            return [int(x) for x in read(os.path.join(d, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def oom_killed(self) -> bool:
        d = self._dir("memory")
        return d is not None and count_in(os.path.join(d, "memory.oom_control"), "oom_kill") > 0

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs())

    def destroy(self) -> None:
        """Kill what is left inside, then remove every directory (retrying while busy)."""
        from pyrunc.cgroups.common import kill_all_and_rmdir
        kill_all_and_rmdir(self, self._dirs())
