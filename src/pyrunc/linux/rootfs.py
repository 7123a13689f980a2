"""The container's filesystem view, built inside its new mount namespace.

Order follows runc: "/" made a slave (no mount leaks back to the host), the
rootfs bound onto itself, config mounts in config order, /dev, pivot_root (or
MS_MOVE + chroot), then the paths that are set after the pivot (readonly,
masked, root read-only) once the rest is done.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from pyrunc.errors import SystemError_
from pyrunc.linux import devices, paths, procfs
from pyrunc.linux import syscalls as sc
from pyrunc.linux.procfs import PROC_ROOT_INO, PROC_SUPER_MAGIC
from pyrunc.spec.config import Config, Mount

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Callable, Mapping

# Flags that a bind remount must keep or the kernel refuses it when they are locked.
_LOCKABLE = {
    os.ST_RDONLY: sc.MS_RDONLY, os.ST_NOSUID: sc.MS_NOSUID, os.ST_NODEV: sc.MS_NODEV,
    os.ST_NOEXEC: sc.MS_NOEXEC, os.ST_NOATIME: sc.MS_NOATIME, os.ST_NODIRATIME: sc.MS_NODIRATIME,
    os.ST_RELATIME: sc.MS_RELATIME,
}
_SETTABLE = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME
             | sc.MS_NODIRATIME | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_SYNCHRONOUS
             | sc.MS_DIRSYNC | sc.MS_MANDLOCK | sc.MS_NOSYMFOLLOW | sc.MS_LAZYTIME)


def _mount_flags_of(target: str) -> int:
    st = os.statvfs(target)
    flags = 0
    for st_flag, ms_flag in _LOCKABLE.items():
        if st.f_flag & st_flag:
            flags |= ms_flag
    return flags


def remount_bind(target: str, flags: int, clear: int = 0) -> None:
    """Change a bind mount's flags, keeping those already set that were not asked to be cleared."""
    keep = _mount_flags_of(target) & ~clear
    sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | (flags & _SETTABLE) | keep)


def _fail(m: Mount, exc: OSError) -> SystemError_:
    what = m.type or "bind"
    src = f" {m.source}" if m.source else ""
    why = _unmapped_devpts_id(m) if m.type == "devpts" and exc.errno == errno.EINVAL else ""
    return SystemError_(f"cannot mount {what}{src} on {m.destination}: {why or exc.strerror}",
                        exc.errno or errno.EIO)


def _unmapped_devpts_id(m: Mount) -> str:
    """devpts refuses (EINVAL, nothing more) a uid= or gid= that its user namespace -- the
    container's, or without one the runtime's own, as root of `unshare -r` -- does not map:
    name it, and the way out."""
    for opt in m.data.split(","):
        key, _, value = opt.partition("=")
        if key not in ("uid", "gid") or not (value.isascii() and value.isdigit()):  # not "²"
            continue
        ranges = procfs.id_map(f"{key}_map")
        if ranges is not None and procfs.map_id(ranges, int(value)) is None:
            have = ", ".join(f"{i}-{i + n - 1}" if n > 1 else str(i) for i, _o, n in ranges)
            return (f"the devpts {key} ({opt} in the mount options) is not mapped in the user "
                    f"namespace (its {key}s: {have or 'none'}); map it, or drop {opt} from "
                    "the options (`pyrunc spec --rootless` does)")
    return ""


# Where runc lets a config mount inside /proc (files lxcfs emulates), relative to /proc.
_ALLOWED_IN_PROC = frozenset({"cpuinfo", "diskstats", "meminfo", "stat", "swaps", "uptime",
                              "loadavg", "slabinfo", "net/dev", "sys/kernel/ns_last_pid"})


def _check_destination(m: Mount, where: str) -> None:
    """No mount on the rootfs root, and none inside /proc but the few runc allows: a bind
    on /proc/1 redirected every masked path, one on a /proc/sys file took the sysctl's write.
    `where` is the destination inside the rootfs (as the config says it, then as resolved)."""
    what = m.type or "bind"
    if where == "/":
        raise SystemError_(f"cannot mount {what} on {m.destination}: the destination is the "
                           "root of the rootfs", errno.EINVAL)
    if where == "/proc":
        if m.type == "proc" or (m.is_bind and m.source is not None and _is_procfs(m.source)):
            return
        raise SystemError_(f'cannot mount {what} on {m.destination}: "{where}" cannot be '
                           "mounted because it is not of type proc", errno.EINVAL)
    if where.startswith("/proc/") and where[len("/proc/"):] not in _ALLOWED_IN_PROC:
        raise SystemError_(f'cannot mount {what} on {m.destination}: "{where}" cannot be '
                           "mounted because it is inside /proc", errno.EPERM)


def _is_procfs(path: str) -> bool:
    """The root of a procfs (runc takes any file on one: a host /proc/PID bound on /proc
    would leave the masked paths nothing to mask and its root link to walk)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return sc.fstatfs_type(fd) == PROC_SUPER_MAGIC and os.fstat(fd).st_ino == PROC_ROOT_INO
    finally:
        os.close(fd)


def _norm(path: str) -> str:
    return posixpath.normpath("/" + path.lstrip("/"))  # normpath keeps a leading "//"


def _resolved(rootfd: int, fd: int) -> str:
    """Where the opened `fd` is inside the rootfs, as the kernel names it now."""
    rel = posixpath.relpath(os.readlink(paths.fd_path(fd)), os.readlink(paths.fd_path(rootfd)))
    return "/" if rel == "." else "/" + rel


def _open_destination(rootfd: int, m: Mount, is_dir: bool) -> int:
    """The mount point, opened once (created if missing) and checked where it really is."""
    _check_destination(m, _norm(m.destination))
    dest = paths.ensure(rootfd, m.destination, is_dir)
    try:
        st, root = os.fstat(dest), os.fstat(rootfd)
        if (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino):
            _check_destination(m, "/")  # through a symlink to "/" (or ".." clamped there)
        _check_destination(m, _resolved(rootfd, dest))
    except BaseException:
        os.close(dest)
        raise
    return dest


def _mount_bind(rootfd: int, m: Mount) -> None:
    """Clone the source (open_tree), attach the clone on the opened mount point, then set
    its options through the clone's own fd: no path is looked up again after the mount,
    which a container sharing the rootfs directory could swap for a symlink to "/"."""
    assert m.source is not None
    try:
        src_st = os.stat(m.source)
    except OSError as exc:
        raise SystemError_(f"mount source {m.source} for {m.destination}: {exc.strerror}",
                           exc.errno or errno.EIO) from None
    dest = _open_destination(rootfd, m, stat.S_ISDIR(src_st.st_mode))
    try:
        rec = sc.AT_RECURSIVE if m.flags & sc.MS_REC else 0
        tree = sc.open_tree(_AT_FDCWD, m.source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | rec)
        try:
            sc.move_mount(tree, "", dest, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
            _bind_options(tree, m)
            _recursive_attrs(tree, m)
        finally:
            os.close(tree)
    finally:
        os.close(dest)


_AT_FDCWD = -100


def _bind_options(top: int, m: Mount) -> None:
    """A bind's flags (ro, nosuid, ...) need a remount; then its propagation. `top` is an
    fd of the mount itself (its clone's fd, attached), never a path looked up again."""
    extra = m.flags & _SETTABLE
    if extra:
        remount_bind(paths.fd_path(top), extra, m.clear_flags)
    for prop in m.propagation:
        sc.mount(None, paths.fd_path(top), None, prop)


def _recursive_attrs(top: int, m: Mount) -> None:
    """rro, rnosuid, ...: set on the whole tree at once (mount_setattr AT_RECURSIVE)."""
    if m.rec_set or m.rec_clear:
        sc.mount_setattr(top, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, m.rec_set, m.rec_clear)


def _mount_ids() -> set[int]:
    return {m[0] for m in procfs.mountinfo()}


def _mnt_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.EINVAL, "no mnt_id in fdinfo", f"/proc/self/fdinfo/{fd}")


def _mount_new(rootfd: int, path: str, dest: int, source: str | None, fstype: str | None,
               flags: int, data: str | None) -> int:
    """Mount a new filesystem on the opened `dest` and return an O_PATH fd of that very
    mount: the destination is looked up once more (a new filesystem has no fd to clone),
    and that lookup must give a mount that did not exist before, or it was raced."""
    before = _mount_ids()
    sc.mount(source, paths.fd_path(dest), fstype, flags, data)
    top = paths.open_in_root(rootfd, path, os.O_PATH | os.O_DIRECTORY)
    try:
        if _mnt_id(top) in before:
            raise SystemError_(f"cannot mount {fstype} on {path}: the destination "
                               "changed while it was mounted (raced)", errno.EXDEV)
    except BaseException:
        os.close(top)
        raise
    return top


_own_proc = -1  # O_PATH fd of the procfs this init mounted on /proc (for the sysctls)
_ro_dev = -1  # O_PATH fd of a read-only /dev mount, made read-only only in finalize()


def own_proc() -> int:
    """The container's own procfs, as mounted by `prepare` (-1 if it mounted none)."""
    return _own_proc


def release_proc() -> None:
    global _own_proc
    if _own_proc >= 0:
        os.close(_own_proc)
        _own_proc = -1


def _attach_tree(rootfd: int, m: Mount, tree: int) -> None:
    """Put a detached mount tree (an idmapped bind made by the runtime) at its destination,
    then apply the mount's other options as for any bind."""
    try:
        dest = _open_destination(rootfd, m, stat.S_ISDIR(os.fstat(tree).st_mode))
        try:
            sc.move_mount(tree, "", dest, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
        finally:
            os.close(dest)
        _bind_options(tree, m)  # the tree's fd is the attached mount now
        _recursive_attrs(tree, m)
        os.close(tree)
    except OSError as exc:
        raise _fail(m, exc) from None


def _cgroup_hierarchies() -> list[tuple[str, str, str]]:
    """(name under the mount, fs type, fs options) for each host cgroup hierarchy. A hybrid
    host's cgroup2 mount (/sys/fs/cgroup/unified) is left out, as runc does: the container
    joins its cgroup there, but sees only the v1 hierarchies."""
    from pyrunc.cgroups import CGROUP_ROOT, mountinfo
    out = []
    for mp, fstype, opts in mountinfo():
        if not mp.startswith(CGROUP_ROOT):
            continue
        if mp == CGROUP_ROOT and fstype == "cgroup2":
            return [("", "cgroup2", "")]
        if fstype == "cgroup":
            data = ",".join(o for o in opts if o not in ("rw", "ro"))
            out.append((posixpath.relpath(mp, CGROUP_ROOT), "cgroup", data))
    return out


def _own_cgroups() -> dict[str, str]:
    """/proc/self/cgroup as {controller or name=...: path} ("" for the v2 hierarchy)."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            for ctrl in ctrls.split(",") if ctrls else [""]:
                own[ctrl] = path
    return own


def _cgroup_source(fstype: str, data: str, own: dict[str, str]) -> str:
    """This process's own cgroup directory in one host hierarchy (for a bind mount)."""
    if fstype == "cgroup2":
        return own.get("", "/")
    return next((own[o] for o in data.split(",") if o in own), "/")


def _mount_cgroup(rootfd: int, m: Mount, cgroupns: bool) -> None:
    """A cgroup mount shows the container's own cgroups: in its own cgroup namespace, a fresh
    cgroup filesystem does; without one, the container's directories are bound from the
    host's hierarchies (as runc does), so limits read inside are the container's."""
    from pyrunc.cgroups import CGROUP_ROOT
    hier = _cgroup_hierarchies()
    flags = m.flags & ~sc.MS_BIND
    own = {} if cgroupns else _own_cgroups()

    def attach(path: str, name: str, fstype: str, data: str) -> None:
        target = paths.mkdir_all(rootfd, path)
        try:
            _check_destination(m, _resolved(rootfd, target))
        except BaseException:
            os.close(target)
            raise
        try:
            if cgroupns:  # a new filesystem: its flags are the mount's own
                try:
                    sc.mount("cgroup", paths.fd_path(target), fstype, flags, data or None)
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    # The destination is the host's cgroup2 mount itself (an rbind of /sys,
                    # as `spec --rootless` has): the kernel refuses the same superblock on
                    # its own root. A small tmpfs between them, then ours on top of it.
                    sc.mount("tmpfs", paths.fd_path(target), "tmpfs",
                             sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "size=4k,mode=755")
                    sc.mount("cgroup", paths.fd_path(target), fstype, flags, data or None)
                return
            src = posixpath.join(CGROUP_ROOT, name) + _cgroup_source(fstype, data, own)
            tree = sc.open_tree(_AT_FDCWD, src.rstrip("/") or "/", sc.OPEN_TREE_CLONE
                                | sc.OPEN_TREE_CLOEXEC | sc.AT_RECURSIVE)
            try:  # as for any bind: flags set through the clone's fd, no second lookup
                sc.move_mount(tree, "", target, "",
                              sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
                if flags & _SETTABLE:
                    remount_bind(paths.fd_path(tree), flags & _SETTABLE)
            finally:
                os.close(tree)
        finally:
            os.close(target)

    if hier == [("", "cgroup2", "")]:
        attach(m.destination, "", "cgroup2", m.data)
        return
    dest = _open_destination(rootfd, m, True)
    try:
        top = _mount_new(rootfd, m.destination, dest, "tmpfs", "tmpfs", flags & ~sc.MS_RDONLY,
                         "mode=755")
    finally:
        os.close(dest)
    try:
        for name, fstype, data in hier:
            attach(posixpath.join(m.destination, name), name, fstype, data)
            # co-mounted controllers (systemd's cpu,cpuacct) get a link per name, as runc's
            # and the host's: tools read /sys/fs/cgroup/cpu/
            for part in name.split(",") if "," in name and "/" not in name else ():
                try:
                    os.symlink(name, part, dir_fd=top)
                except FileExistsError:
                    pass
        if flags & sc.MS_RDONLY:
            sc.mount(None, paths.fd_path(top), None, sc.MS_REMOUNT | flags, "mode=755")
    finally:
        os.close(top)


def _check_ordinary_dir(rootfd: int, m: Mount) -> None:
    """proc and sysfs only on a real directory, never through a symlink (or on a file) the
    image put there: the old attacks swapped /proc for a link to a host path. runc's rule."""
    try:
        fd = paths.open_in_root(rootfd, m.destination, os.O_PATH | os.O_NOFOLLOW)
    except FileNotFoundError:
        return  # made as a directory below
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            return
    finally:
        os.close(fd)
    raise SystemError_(f'cannot mount {m.type} on {m.destination}: filesystem "{m.type}" must '
                       "be mounted on ordinary directory", errno.EINVAL)


def _is_readonly_dev(m: Mount) -> bool:
    return not m.is_bind and bool(m.flags & sc.MS_RDONLY) and posixpath.normpath(m.destination) == "/dev"


def _mount_other(rootfd: int, m: Mount) -> None:
    """proc, tmpfs, devpts, ...: mounted on the opened destination; what follows (propagation,
    rro, the sysctls' procfs) goes through an fd checked to be the new mount."""
    global _own_proc, _ro_dev
    dest = _open_destination(rootfd, m, True)
    copyup = m.type == "tmpfs" and "tmpcopyup" in m.options
    # A read-only /dev must still get its devices, links and submounts: ro comes in
    # finalize(), after them, as with runc. A tmpfs to copy into is made read-only once
    # it is filled.
    ro_dev = _is_readonly_dev(m)
    flags = m.flags & ~sc.MS_RDONLY if ro_dev or copyup else m.flags
    where = _resolved(rootfd, dest)
    if m.type in ("proc", "sysfs") and where != _norm(m.destination):
        os.close(dest)  # swapped for a symlink since _check_ordinary_dir looked
        raise SystemError_(f'cannot mount {m.type} on {m.destination}: filesystem "{m.type}" '
                           "must be mounted on ordinary directory", errno.EINVAL)
    own_proc = m.type == "proc" and where == "/proc"
    below = -1
    try:
        if not (own_proc or ro_dev or copyup or m.propagation or m.rec_set or m.rec_clear):
            sc.mount(m.source or m.type, paths.fd_path(dest), m.type, flags, m.data or None)
            return
        if copyup:  # the directory as the image has it, before the tmpfs covers it
            below = os.open(paths.fd_path(dest), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        top = _mount_new(rootfd, m.destination, dest, m.source or m.type, m.type, flags,
                         m.data or None)
    except BaseException:
        if below >= 0:
            os.close(below)
        raise
    finally:
        os.close(dest)
    try:
        if copyup:
            try:
                _copy_up(m, below, top, ro=not ro_dev)
            finally:
                os.close(below)
        for prop in m.propagation:
            sc.mount(None, paths.fd_path(top), None, prop)
        _recursive_attrs(top, m)
    except BaseException:
        os.close(top)
        raise
    if own_proc:
        release_proc()  # a second proc on /proc: the later one is what the container sees
        _own_proc = top
    elif ro_dev:  # made read-only in finalize(), through this fd
        if _ro_dev >= 0:
            os.close(_ro_dev)
        _ro_dev = top
    else:
        os.close(top)


def mount_entry(rootfd: int, m: Mount, cgroupns: bool = True) -> None:
    try:
        if m.type in ("proc", "sysfs"):
            _check_ordinary_dir(rootfd, m)
        if m.is_bind:
            _mount_bind(rootfd, m)
        elif m.type in ("cgroup", "cgroup2"):
            _mount_cgroup(rootfd, m, cgroupns)
            if m.rec_set or m.rec_clear:
                top = paths.open_in_root(rootfd, m.destination)
                try:
                    _recursive_attrs(top, m)
                finally:
                    os.close(top)
        else:
            try:
                _mount_other(rootfd, m)
            except PermissionError:
                if m.type != "sysfs":
                    raise
                # A user namespace may mount sysfs only with a network namespace of its own
                # (rootless, or userns without netns): bind the host's /sys, with its
                # submounts, under the same flags, as `spec --rootless` asks outright.
                _mount_bind(rootfd, m._replace(source="/sys", data="",
                                               flags=m.flags | sc.MS_BIND | sc.MS_REC))
    except SystemError_:
        raise
    except OSError as exc:
        raise _fail(m, exc) from None


def _copy_up(m: Mount, below: int, top: int, ro: bool) -> None:
    """tmpcopyup: fill the tmpfs `top` (O_PATH, checked to be the new mount) with what
    `below` (the directory it covers) holds, give it that directory's mode unless the
    options name one (runc's order), then make it read-only if asked and `ro` (a read-only
    /dev is made so in finalize(), after its devices and submounts)."""
    from pyrunc.linux import copyup
    st = os.fstat(below)
    fill = os.open(paths.fd_path(top), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        copyup.copy_tree(below, fill, m.destination)
        if not any(o.startswith("mode=") for o in m.data.split(",")):
            os.fchmod(fill, stat.S_IMODE(st.st_mode))
    finally:
        os.close(fill)
    if ro and m.flags & sc.MS_RDONLY:
        remount_bind(paths.fd_path(top), m.flags)


def _needs_dev(cfg: Config) -> bool:
    return not any(m.destination == "/dev" and m.is_bind for m in cfg.mounts)


_AT_FDCWD = -100


def _under(path: str, tops: list[str]) -> bool:
    path = posixpath.normpath("/" + path)
    return any(path == top or path.startswith(top.rstrip("/") + "/") for top in tops)


def _detach_bind(m: Mount) -> int:
    """A detached clone of a bind mount's source, to attach after the pivot (deferred)."""
    assert m.source is not None
    flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | (sc.AT_RECURSIVE if m.flags & sc.MS_REC else 0)
    try:
        return sc.open_tree(_AT_FDCWD, m.source, flags)  # a host path: before the pivot
    except OSError as exc:
        raise _fail(m, exc) from None


def prepare(cfg: Config, in_userns: bool, no_pivot: bool, cwd: str | None,
            before_pivot: Callable[[], None] = lambda: None,
            idmapped: Mapping[int, int] | None = None,
            before_cgroup: Callable[[], None] = lambda: None,
            defer_proc: bool = False) -> list[tuple[Mount, int]]:
    """Everything up to and including the pivot; the process ends up chrooted in the rootfs.

    `before_cgroup` runs before the first cgroup mount (which binds our own cgroups).
    `before_pivot` runs once the mounts exist and paths still resolve on the host (hooks).
    `idmapped` gives, by index in cfg.mounts, the detached trees the runtime idmapped.
    With `defer_proc`, procfs mounts (whose pid namespace is the mounting process's) and
    what is mounted inside them are left out and returned, with a detached tree for each
    bind (-1 for the others), for `mount_deferred` once in the right pid namespace."""
    rootfs = cfg.root.path
    try:
        sc.mount(None, "/", None, sc.MS_SLAVE | sc.MS_REC)
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot prepare rootfs {rootfs}", exc) from None
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    deferred: list[tuple[Mount, int]] = []
    deferred_tops: list[str] = []
    try:
        cgroupns = cfg.linux.namespace("cgroup") is not None
        for i, m in enumerate(cfg.mounts):
            tree = (idmapped or {}).get(i)
            if defer_proc and (m.type == "proc" or _under(m.destination, deferred_tops)):
                if m.type == "proc":
                    deferred_tops.append(posixpath.normpath("/" + m.destination))
                if tree is None and m.is_bind:
                    tree = _detach_bind(m)
                deferred.append((m, -1 if tree is None else tree))
            elif tree is not None:
                _attach_tree(rootfd, m, tree)
            else:
                if m.type in ("cgroup", "cgroup2"):
                    before_cgroup()
                mount_entry(rootfd, m, cgroupns)
        if _needs_dev(cfg):
            devices.setup_dev(rootfd, cfg.linux.devices, in_userns)
        else:
            for dev in cfg.linux.devices:
                devices.create_device(rootfd, dev, in_userns)
        if cwd is not None:
            try:
                os.close(paths.mkdir_all(rootfd, cwd))
            except OSError as exc:
                raise SystemError_(f"config.json: process.cwd: cannot make {cwd} a directory in "
                                   f"the rootfs: {exc.strerror}", exc.errno or errno.EIO) from None
    finally:
        os.close(rootfd)
    before_pivot()
    if no_pivot:
        _move_root(rootfs)
    else:
        _pivot(rootfs)
    return deferred


def mount_deferred(deferred: list[tuple[Mount, int]], cgroupns: bool) -> None:
    """The mounts `prepare` left out, made after the pivot, in config order (see there)."""
    if not deferred:
        return
    rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _bootstrap_proc(rootfd)
        for m, tree in deferred:
            if tree >= 0:
                _attach_tree(rootfd, m, tree)
            else:
                mount_entry(rootfd, m, cgroupns)
    finally:
        os.close(rootfd)


def _bootstrap_proc(rootfd: int) -> None:
    """Mounting goes through /proc/self/fd/N names, and after the pivot there is no procfs
    yet: a first one (of our pid namespace) is mounted on /proc by changing into it and
    mounting on "."; the config's proc mount then goes on top of it, with every check."""
    try:
        dest = paths.mkdir_all(rootfd, "/proc")
        try:
            os.fchdir(dest)
        finally:
            os.close(dest)
        try:
            sc.mount("proc", ".", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, None)
        finally:
            os.chdir("/")
    except OSError as exc:
        raise SystemError_.from_oserror("cannot mount proc on /proc", exc) from None


def _pivot(rootfs: str) -> None:
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")
        # The old root is now stacked under ".": detach it without propagating to the host.
        os.fchdir(old)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    except OSError as exc:
        raise SystemError_.from_oserror(f"pivot_root into {rootfs}", exc) from None
    finally:
        os.close(old)
        os.close(new)


def _hide_bare_proc_sys(rootfs: str) -> None:
    """Without pivot_root the host's /proc and /sys stay in our mount namespace, unmasked:
    the kernel then lets a nested user namespace mount a fresh procfs or sysfs (a fully
    visible one exists), past the container's masked and read-only paths. Detach them (or,
    where we may not, cover them with a tmpfs), as runc's --no-pivot does. A path names its
    top mount: one mounted over a procfs (which leaves it as visible to the kernel's check)
    goes first, and the procfs on the next pass."""
    left: set[int] = set()  # could not be detached (covered), or not found by its path
    own = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # outlives /proc
    try:
        for _pass in range(64):
            if not _hide_pass(rootfs, own, left):
                return
    finally:
        os.close(own)
    raise SystemError_("cannot detach the host's /proc and /sys (--no-pivot): more than 64 "
                       "mounts over them", errno.EBUSY)


def _hide_pass(rootfs: str, own: int, left: set[int]) -> bool:
    """Detach (or cover) the top mount at each procfs or sysfs path outside the rootfs;
    False when there was none."""
    todo = [(mnt_id, mp) for mnt_id, mp, fstype, _opts in procfs.mountinfo(proc_dir=own)
            if fstype in ("proc", "sysfs") and mnt_id not in left
            and mp != rootfs and not mp.startswith(rootfs.rstrip("/") + "/")]
    for mnt_id, mp in todo:
        try:
            sc.mount(None, mp, None, sc.MS_SLAVE | sc.MS_REC)
        except FileNotFoundError:
            left.add(mnt_id)  # went with a parent detached before it
            continue
        try:
            sc.umount2(mp, sc.MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM):
                raise
            sc.mount("tmpfs", mp, "tmpfs", 0, None)
            left.add(mnt_id)
    return bool(todo)


def _move_root(rootfs: str) -> None:
    try:
        _hide_bare_proc_sys(os.path.realpath(rootfs))
        os.chdir(rootfs)
        sc.mount(rootfs, "/", None, sc.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
    except OSError as exc:
        raise SystemError_.from_oserror(f"moving {rootfs} to / (--no-pivot)", exc) from None


def _is_proc_or_sys(path: str) -> bool:
    return path == "/proc" or path.startswith("/proc/") or path == "/sys" or path.startswith("/sys/")


def readonly_path(path: str) -> None:
    rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = paths.open_in_root(rootfd, path)
        except FileNotFoundError:
            return
        try:
            # The clone is attached where fd is and made read-only through its own fd: the
            # path is never looked up a second time (a shared rootfs dir can be swapped).
            tree = sc.open_tree(fd, "", sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
                                | sc.AT_EMPTY_PATH | sc.AT_RECURSIVE)
            try:
                sc.move_mount(tree, "", fd, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
                remount_bind(paths.fd_path(tree), sc.MS_RDONLY)
            finally:
                os.close(tree)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot make {path} read-only", exc) from None
    finally:
        os.close(rootfd)


def mask_path(path: str) -> None:
    """Hide a file behind /dev/null, or a directory behind an empty read-only tmpfs."""
    rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = paths.open_in_root(rootfd, path)
        except FileNotFoundError:
            return
        try:
            target = paths.fd_path(fd)
            if stat.S_ISDIR(os.stat(target).st_mode):
                sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY, None)
            else:
                null = os.open("/dev/null", os.O_PATH | os.O_CLOEXEC)
                try:
                    st = os.stat(null)
                    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
                        raise SystemError_(f"cannot mask {path}: /dev/null is not the null device")
                    sc.mount(paths.fd_path(null), target, None, sc.MS_BIND)
                finally:
                    os.close(null)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot mask {path}", exc) from None
    finally:
        os.close(rootfd)


def finalize(cfg: Config) -> None:
    """After the pivot: propagation of "/", readonly and masked paths, read-only root."""
    if cfg.linux.rootfs_propagation is not None:
        try:
            sc.mount(None, "/", None, cfg.linux.rootfs_propagation)
        except OSError as exc:
            raise SystemError_.from_oserror("cannot set rootfsPropagation", exc) from None
    for path in cfg.linux.readonly_paths:
        readonly_path(path)
    for path in cfg.linux.masked_paths:
        mask_path(path)
    dev = next((m for m in cfg.mounts if posixpath.normpath(m.destination) == "/dev"), None)
    global _ro_dev
    if dev is not None and _is_readonly_dev(dev) and _ro_dev >= 0:
        try:
            remount_bind(paths.fd_path(_ro_dev), dev.flags & _SETTABLE)  # the mount, not a path
        except OSError as exc:
            raise SystemError_.from_oserror("cannot make /dev read-only", exc) from None
        finally:
            os.close(_ro_dev)
            _ro_dev = -1
    if cfg.root.readonly:
        try:
            remount_bind("/", sc.MS_RDONLY)
        except OSError as exc:
            raise SystemError_.from_oserror("cannot make the root filesystem read-only", exc) from None
