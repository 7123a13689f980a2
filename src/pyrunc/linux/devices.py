"""/dev inside the container: the default device nodes, linux.devices, and the symlinks."""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from pyrunc.errors import SystemError_
from pyrunc.linux import paths
from pyrunc.linux import syscalls as sc
from pyrunc.spec.config import Device

# Every container gets these, as with runc (unless the config lists the path itself).
DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)

SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)

_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def create_device(rootfd: int, dev: Device, bind: bool) -> None:
    """mknod the device (or, in a user namespace, bind the host's node over a file)."""
    parent = paths.mkdir_all(rootfd, posixpath.dirname(dev.path))
    name = posixpath.basename(dev.path)
    try:
        if bind:
            _check_host_node(dev)
            target = bind_target(parent, name)
            try:
                sc.mount(dev.path, paths.fd_path(target), None, sc.MS_BIND)
            finally:
                os.close(target)
            return
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        mode = (dev.file_mode if dev.file_mode is not None else 0o666) & 0o7777
        os.mknod(name, mode | _TYPES[dev.type], os.makedev(dev.major, dev.minor), dir_fd=parent)
        os.chown(name, dev.uid or 0, dev.gid or 0, dir_fd=parent, follow_symlinks=False)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot create device {dev.path}", exc) from None
    finally:
        os.close(parent)


def _check_host_node(dev: Device) -> None:
    """In a user namespace the device is the host's node at the same path, bound: it must be
    the node the config describes (type, major:minor), not a regular file or another
    device that happens to sit there (c 8:0 at /dev/zero gave /dev/zero)."""
    try:
        st = os.stat(dev.path)
    except OSError as exc:
        raise SystemError_(f"cannot create device {dev.path}: in a user namespace devices are "
                           f"bound from the host, and the host's {dev.path}: {exc.strerror}",
                           exc.errno or errno.EIO) from None
    want = _TYPES[dev.type]
    have = stat.S_IFMT(st.st_mode)
    same = have == want and (want == stat.S_IFIFO or (os.major(st.st_rdev), os.minor(st.st_rdev))
                             == (dev.major, dev.minor))
    if not same:
        kind = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p"}.get(have)
        got = f"{kind} {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" if kind in ("c", "b") \
            else (kind or "not a device node")
        asked = dev.type if dev.type == "p" else f"{dev.type} {dev.major}:{dev.minor}"
        raise SystemError_(f"cannot create device {dev.path}: in a user namespace devices are "
                           f"bound from the host, and the host's {dev.path} is {got}, not "
                           f"{asked}", errno.EINVAL)


def bind_target(parent: int, name: str, mode: int = 0o644) -> int:
    """An fd of the file in `parent` to bind a node (or the console's pty) over, opened without ever
    blocking: an image's FIFO (or socket, symlink) there is replaced by an empty file (an
    open for writing would wait for a reader for ever); a regular file or a character
    device is used as it is (mounted over, not opened)."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except FileNotFoundError:
        fd = -1
    if fd >= 0:
        kind = os.fstat(fd).st_mode
        if stat.S_ISREG(kind) or stat.S_ISCHR(kind):
            return fd
        os.close(fd)
        if stat.S_ISDIR(kind):
            raise OSError(errno.EISDIR, "a directory in the image, not a device", name)
        os.unlink(name, dir_fd=parent)
    return os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                   mode, dir_fd=parent)  # a new empty file: nothing to block on


def setup_dev(rootfd: int, devices: tuple[Device, ...], in_userns: bool) -> None:
    wanted = {d.path for d in devices}
    for dev in DEFAULT_DEVICES:
        if dev.path not in wanted:
            create_device(rootfd, dev, in_userns)
    for dev in devices:
        create_device(rootfd, dev, in_userns)
    dev_fd = paths.mkdir_all(rootfd, "/dev")
    try:
        links = list(SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
        links.append(("pts/ptmx", "/dev/ptmx"))
        for target, link in links:
            name = posixpath.basename(link)
            try:
                os.symlink(target, name, dir_fd=dev_fd)
            except FileExistsError:
                if name == "ptmx":  # an existing ptmx node would bypass the container's devpts
                    os.unlink(name, dir_fd=dev_fd)
                    os.symlink(target, name, dir_fd=dev_fd)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot create /dev symlinks", exc) from None
    finally:
        os.close(dev_fd)
