"""Rootless mode: which one we are in, and where a non-root user's state lives.

As runc: `--rootless auto` (the default) means rootless when the effective uid is not 0,
or when it is 0 inside a user namespace (rootless podman runs the runtime so); `true`
forces it. Rootless, a cgroup that cannot be made is done without (cgroup_or_none). A
non-root caller keeps its state under $XDG_RUNTIME_DIR/pyrunc (private to the user, 0700)
instead of /run/pyrunc, which it cannot write; the host's root ignores $XDG_RUNTIME_DIR
(/run/user/0 is not /run/pyrunc).
"""

from __future__ import annotations

import errno
import os

from pyrunc.errors import SystemError_, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.cgroups import Manager
    from pyrunc.spec.config import Config, Resources

SYSTEM_ROOT = "/run/pyrunc"


def default_root() -> str:
    """The --root a caller gets without one. A relative XDG_RUNTIME_DIR is ignored, as the
    XDG base directory spec says (else the state would land in the cwd of the moment)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg.startswith("/") and _honors_xdg():
        return os.path.join(xdg, "pyrunc")
    return SYSTEM_ROOT


def _honors_xdg() -> bool:
    if os.geteuid() != 0:
        return True
    # root: only a root inside a user namespace (another user's "root") whose $USER is not
    # root, as runc decides; the host's root keeps /run/pyrunc.
    return in_user_ns() and os.environ.get("USER") != "root"


def in_user_ns() -> bool:
    """Whether this process is in a user namespace other than the initial one (whose uid
    map is the identity over every uid)."""
    from pyrunc.linux.procfs import id_map
    ranges = id_map("uid_map")
    return ranges is not None and ranges != [(0, 0, 4294967295)]


def is_rootless(flag: str, systemd_cgroup: bool = False) -> bool:
    """The --rootless value as a mode: true, false, or auto -- rootless when the euid is
    not 0, or when it is 0 in a user namespace (rootless podman's), where the host's
    cgroups are not ours either (as runc; with the systemd driver, the manager decides: a
    user manager's unit, as rootless podman's with cgroup_manager=systemd, is rootless, so
    no device filter, which bpf() refuses there)."""
    if flag == "true":
        return True
    if flag == "false":
        return False
    if flag == "auto":
        if os.geteuid() != 0:
            return True
        if not in_user_ns():
            return False
        if not systemd_cgroup:
            return True
        from pyrunc.cgroups.systemd import user_manager
        return user_manager()
    raise UsageError(f"invalid --rootless value {flag!r}: use true, false or auto")


def cgroup_or_none(cg: Manager, cfg: Config) -> tuple[Manager, str]:
    """The container's cgroup if this user may make and enter it (a delegated cgroup v2
    subtree), else none -- as runc's rootless managers decide: without a cgroup the
    container still runs, unlimited, unless the config names a cgroupsPath or asks for
    limits, which are then refused rather than silently not applied. Returns the manager
    and the warning to give once the container exists (a failed create says one line)."""
    from pyrunc.cgroups.null import NullManager
    from pyrunc.errors import PyruncError
    try:
        cg.create()
        _check_enterable(cg)
        return cg, ""
    except PyruncError as exc:
        why = exc.msg
        try:
            cg.destroy(kill=False)
        except PyruncError:
            pass
    if cfg.linux.cgroups_path:
        raise SystemError_(f"rootless: cannot use linux.cgroupsPath {cfg.linux.cgroups_path}: "
                           f"{why} (leave it out to run without a cgroup)", errno.EPERM)
    if needs_controllers(cfg.linux.resources):
        raise SystemError_(f"rootless: cannot apply linux.resources: {why} (a limit needs a "
                           "delegated cgroup; leave the limits out to run without one)",
                           errno.EPERM)
    return NullManager(), (f"rootless: running without a cgroup of its own ({why}): no "
                           "limits, no pause, ps and kill --all go by the pid namespace")


def _check_enterable(cg: Manager) -> None:
    """Made is not enough: the init must be able to write itself into cgroup.procs."""
    for d in cg.dirs():
        procs = os.path.join(d, "cgroup.procs")
        if not os.access(procs, os.W_OK):
            raise SystemError_(f"cannot write {procs}", errno.EACCES)


def needs_controllers(r: Resources | None) -> bool:
    """Whether the resources ask for any limit (device rules aside: runc ignores those
    rootless, an unprivileged user cannot load the eBPF program or write devices.allow)."""
    if r is None:
        return False
    return any(v not in (None, ()) for k, v in r._asdict().items() if k != "devices")


def set_resources(cg: Manager, r: Resources) -> list[str]:
    """The limits on a rootless container's (delegated) cgroup, device rules left out.

    Written as an update: only what the config gives, with no device program (the fresh
    cgroup's files hold the kernel's defaults, so that is the same as a create's write)."""
    if not needs_controllers(r):
        return []
    return list(cg.set(r._replace(devices=None), update=True))


def check_config(cfg: Config) -> None:
    """What a rootless container cannot be, refused before anything is made. (Root of a
    user namespace -- rootless podman's -- may share it: it has the caps there.)"""
    from pyrunc.errors import SpecError
    if os.geteuid() != 0 and cfg.linux.namespace("user") is None:
        raise SpecError("rootless containers need a user namespace: config.json has no "
                        "\"user\" entry in linux.namespaces (`pyrunc spec --rootless` makes one)")
    for i, m in enumerate(cfg.mounts):
        if m.idmap:
            raise SpecError(f"config.json: mounts[{i}]: rootless: idmapped mounts are not "
                            "supported (marking a mount idmapped needs root on the host)")
    if cfg.process is None:
        return
    from pyrunc.linux import syscalls as sc
    from pyrunc.spec.config import RLIMITS
    for rl in cfg.process.rlimits:
        _soft, hard = sc.getrlimit(RLIMITS[rl.type])
        if hard != sc.RLIM_INFINITY and rl.hard > hard:
            raise SpecError(f"config.json: process.rlimits: {rl.type} hard {rl.hard} is above "
                            f"this user's hard limit {hard}: an unprivileged runtime cannot "
                            "raise it")
