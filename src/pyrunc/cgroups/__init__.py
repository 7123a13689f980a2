"""Cgroups behind one small interface, with v1 (legacy/hybrid) and v2 implementations, and
the systemd driver over either (systemd.py on v2, systemd_v1.py on v1/hybrid).

The mode is chosen from what the host has mounted at /sys/fs/cgroup: a cgroup2
mount there means pure v2; v1 controller mounts (with or without a cgroup2 mount
beside them, as on hybrid hosts) mean v1.

`linux.cgroupsPath` follows runc's cgroupfs driver: an absolute path is taken as
is (below each hierarchy's root); a relative one (or none: the container id) is
cleaned so ".." cannot climb out, and put below this process's own cgroup -- on
v1 per controller, on v2 below the parent of our cgroup (ours has processes in
it, so it cannot hand controllers down to a child).
"""

from __future__ import annotations

import os
import posixpath

# Typing is for the type checker only: `state` and `kill` come through here, and typing (with
# the spec model) would cost them more than their own work. At run time the Protocols below
# are plain classes.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, Protocol

    from pyrunc.spec.config import Resources as Resources

    Event = dict[str, Any]             # one `events` line: {"type": "stats"|"oom", "id", "data"?}
    EventStream = Iterator[Event]
else:
    Protocol = object

CGROUP_ROOT = "/sys/fs/cgroup"


class OomWatcher(Protocol):
    """OOM notifications of one cgroup, from the kernel (no polling of counters)."""

    def wait(self, timeout: float) -> tuple[int, bool]:
        """Block up to `timeout` s: (OOM events since the last call, cgroup emptied or gone)."""
        ...

    def close(self) -> None: ...


class Manager(Protocol):
    """What the runtime needs of a container's cgroup, whatever the version."""

    @property
    def path(self) -> str:
        """What the state records; `load(path)` gives this manager back."""
        ...

    def create(self) -> None: ...
    def join(self, defer: bool = False) -> None:
        """Move the calling process, which must be single-threaded, into the cgroup; with
        `defer`, leave out what adopt() does better from the runtime (v1: the unified
        hierarchy, whose cgroup.procs write costs ~10-16 ms of a cold kernel lock)."""
        ...
    def adopt(self, pid: int) -> None:
        """Move `pid` where join(defer=True) did not (the runtime, meanwhile the init works)."""
        ...
    def set(self, resources: Resources, update: bool = False) -> list[str]: ...
    def sub(self, paths: dict[str, str]) -> Manager:
        """`exec --cgroup`: the manager of existing sub-cgroups, {controller or "": path}."""
        ...
    def freeze(self, frozen: bool) -> None: ...
    def is_frozen(self) -> bool: ...
    def pids(self) -> list[int]: ...
    def occupants(self) -> list[int]:
        """Every process in any of the cgroup's directories (v1: each hierarchy it uses),
        not only the one `pids` reads: a cgroup is in use if any of them holds a process."""
        ...
    def dirs(self) -> list[str]:
        """The directories a process joins to be in the cgroup (v1, and systemd on v1: one per
        hierarchy; v2 and systemd on v2: the one; none: no directory): whoever runs the init must be able to write
        each one's cgroup.procs (rootless checks that before it relies on the cgroup)."""
        ...
    def exists(self) -> bool: ...
    def oom_killed(self) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    def oom_watcher(self) -> OomWatcher: ...
    def destroy(self, kill: bool = True) -> None:
        """Remove the cgroup's directories; with `kill`, SIGKILL what is left inside first
        (without, a process still there, not the container's, fails it: EBUSY)."""
        ...


_mounts: list[tuple[str, str, list[str]]] = []


def mountinfo() -> list[tuple[str, str, list[str]]]:
    """(mount point, fs type, super options) of every cgroup mount of this process that
    its path reaches (not covered by a later mount).

    Read once per process (a create asked four times): the host's cgroup mounts do not
    change under one command, and a container's init, forked with this copy, wants the
    host's view anyway."""
    if not _mounts:
        from pyrunc.linux.procfs import mountinfo as every_mount
        every = every_mount()
        # A cgroup mount that a later mount covers (crun's workaround here: a tmpfs over
        # /sys/fs/cgroup/unified) is not reachable by its path: leave it out.
        for i, (_id, mp, fstype, opts) in enumerate(every):
            if fstype in ("cgroup", "cgroup2") and not any(
                    later == mp or (later != "/" and mp.startswith(later + "/"))
                    for _i, later, _t, _o in every[i + 1:]):
                _mounts.append((mp, fstype, opts))
    return list(_mounts)


def is_v2_host() -> bool:
    return any(mp == CGROUP_ROOT and t == "cgroup2" for mp, t, _ in mountinfo())


def own_cgroup(controller: str | None) -> str:
    """This process's cgroup in a v1 controller's hierarchy (or v2 for None)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller is None and ctrls == "":
                return path
            if controller is not None and controller in ctrls.split(","):
                return path
    return "/"


def clean_path(path: str) -> str:
    """runc's CleanPath: normalise; a relative path stays relative but cannot start with ..."""
    if not path:
        return ""
    if posixpath.isabs(path):
        return posixpath.normpath(path)
    return posixpath.normpath("/" + path).lstrip("/")


def inner_path(cgroups_path: str | None, container_id: str) -> str:
    """The spec's cgroupsPath (or the container id when there is none), cleaned."""
    return clean_path(cgroups_path or "") or clean_path(container_id)


def resolve_path(cgroups_path: str | None, container_id: str, controller: str | None) -> str:
    """Where the cgroup goes in one hierarchy (controller None: the v2 hierarchy)."""
    inner = inner_path(cgroups_path, container_id)
    if posixpath.isabs(inner):
        return inner
    base = own_cgroup(controller)
    if controller is None:
        base = posixpath.dirname(base.rstrip("/")) or "/"
    return posixpath.normpath(posixpath.join(base, inner))


def sub_path(base: str, sub: str) -> str:
    """`sub` below `base` as runc's exec --cgroup joins them (a leading / is still below
    `base`); one that climbs out is refused."""
    from pyrunc.errors import UsageError
    path = posixpath.normpath(posixpath.join(base, sub.lstrip("/")))
    if path != base and not path.startswith(base.rstrip("/") + "/"):
        raise UsageError(f"bad sub cgroup path: {sub}")
    return path


def manager(cgroups_path: str | None, container_id: str, systemd: bool = False,
            annotations: dict[str, str] | None = None) -> Manager:
    """The manager for a new container; `systemd`: the systemd driver (--systemd-cgroup)."""
    if systemd:
        from pyrunc.cgroups import systemd as sd
        user = sd.user_manager()
        unit, slice_name, path = sd.parse_path(cgroups_path, container_id, user)
        sd.annotation_properties(annotations or {})  # bad annotations fail before anything is made
        sd.check_host()
        if user:  # rootless: a unit of the caller's user manager, below its cgroup
            path = sd.user_manager_root() + path
        if not is_v2_host():
            from pyrunc.cgroups.systemd_v1 import SystemdV1Manager
            return SystemdV1Manager(path, unit, slice_name, annotations, new=True)
        return sd.SystemdManager(path, unit, slice_name, annotations, new=True)
    if is_v2_host():
        from pyrunc.cgroups.v2 import V2Manager
        return V2Manager(resolve_path(cgroups_path, container_id, None))
    from pyrunc.cgroups.v1 import V1Manager
    return V1Manager.for_spec(cgroups_path, container_id)


def load(path: str, invocation: str = "") -> Manager:
    """The manager for a cgroup path recorded in a container's state ("": none);
    `invocation`: the systemd unit's start that create recorded."""
    if not path:
        from pyrunc.cgroups.null import NullManager
        return NullManager()
    if path.startswith("systemd:"):  # the host says which: v2, or v1/hybrid (runc's legacy)
        if not is_v2_host():
            from pyrunc.cgroups.systemd_v1 import SystemdV1Manager
            return SystemdV1Manager(path[len("systemd:"):], invocation=invocation)
        from pyrunc.cgroups.systemd import SystemdManager
        return SystemdManager(path[len("systemd:"):], invocation=invocation)
    if is_v2_host():
        from pyrunc.cgroups.v2 import V2Manager
        return V2Manager(path)
    from pyrunc.cgroups.v1 import V1Manager
    return V1Manager.load(path)


def write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def procs_below(d: str) -> list[int]:
    """The processes of cgroup directory `d` and of every cgroup below it (exec --cgroup
    puts processes in sub-cgroups: they are the container's too, as with runc)."""
    pids: list[int] = []
    for dirpath, _dirs, _files in os.walk(d):
        try:
            pids += [int(x) for x in read(os.path.join(dirpath, "cgroup.procs")).split()]
        except FileNotFoundError:  # removed under us
            continue
    return pids


def dirs_below(d: str) -> list[str]:
    """The cgroup directories below `d`, deepest first (the order rmdir needs)."""
    return [dirpath for dirpath, _dirs, _files in os.walk(d, topdown=False) if dirpath != d]


def count_in(path: str, key: str) -> int:
    """The value of `key N` in a flat-keyed cgroup file (memory.events, memory.oom_control)."""
    try:
        for line in read(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
