"""Paths inside a hostile rootfs, resolved by the kernel so that nothing escapes it.

Every lookup is openat2(RESOLVE_IN_ROOT): symlinks and ".." are followed as if
the rootfs were "/", so `rootfs/evil -> /etc` lands on rootfs/etc, never the
host's. Callers get O_PATH fds and act on "/proc/self/fd/N", which names
exactly the object that was resolved (no second lookup to race with).
"""

from __future__ import annotations

import errno
import os
import posixpath

from pyrunc.linux import syscalls as sc
from pyrunc.linux.procfs import PROC_SUPER_MAGIC

_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _rel(path: str) -> str:
    rel = posixpath.normpath("/" + path).lstrip("/")
    return rel or "."


def open_in_root(rootfd: int, path: str, flags: int = os.O_PATH) -> int:
    """Open `path` as seen from `rootfd` as "/", never leaving it."""
    return sc.openat2(rootfd, _rel(path), flags | os.O_CLOEXEC, 0, _RESOLVE)


def _resolve(rootfd: int, path: str) -> str:
    """Follow symlinks component by component as if rootfd were "/" (clamping ".." at it).

    Returns a symlink-free path whose missing tail can be created with mkdirat. The
    answer is advisory: every open that follows still goes through RESOLVE_IN_ROOT.
    """
    todo = [p for p in _rel(path).split("/") if p and p != "."]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        parent = "/".join(done) or "."
        dirfd = open_fd_cache(rootfd, parent)
        try:
            target = os.readlink(part, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
                done.append(part)  # not a symlink, or missing: created later if need be
                if exc.errno != errno.EINVAL:
                    done.extend(p for p in todo if p not in ("", "."))
                    return "/" + "/".join(done)
                continue
            raise
        if _is_magic_link(dirfd, part):
            # Its text is a path in the runtime's world (a host path behind one of our fds,
            # "pipe:[N]"), not in the container's: following it would recreate host paths
            # inside the rootfs, telling the image where they are.
            link = "/" + "/".join(done + [part])
            raise OSError(errno.ELOOP, f"{link} is a /proc magic link, not followed", link)
        links += 1
        if links > 40:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p and p != "."] + todo
    return "/" + "/".join(done)


def _is_magic_link(dirfd: int, name: str) -> bool:
    """Whether the symlink `name` in `dirfd` is one of procfs's magic links (fd/N, exe,
    cwd, root, ns/*), as opposed to an ordinary one such as /proc/self."""
    if sc.fstatfs_type(dirfd) != PROC_SUPER_MAGIC:
        return False
    try:
        os.close(sc.openat2(dirfd, name, os.O_PATH | os.O_CLOEXEC, 0, _RESOLVE))
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


_dir_fds: dict[tuple[int, str], int] = {}


def open_fd_cache(rootfd: int, rel: str) -> int:
    """An O_PATH fd of a directory inside the root (cached for one resolution walk)."""
    key = (rootfd, rel)
    fd = _dir_fds.get(key)
    if fd is None:
        fd = open_in_root(rootfd, rel, os.O_PATH | os.O_DIRECTORY)
        _dir_fds[key] = fd
    return fd


def _drop_cache() -> None:
    for fd in _dir_fds.values():
        os.close(fd)
    _dir_fds.clear()


def mkdir_all(rootfd: int, path: str, mode: int = 0o755) -> int:
    """mkdir -p inside the root (through symlinks, which stay inside); returns an O_PATH fd."""
    # Most mount points exist, or lack only their last component (a fresh tmpfs's
    # subdirectories): one or three syscalls instead of a walk of ~4 per component.
    try:
        return open_in_root(rootfd, path, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        pass  # missing, not a directory, or a magic link
    parent, leaf = posixpath.split(_rel(path))
    try:
        pfd = open_in_root(rootfd, parent or ".", os.O_PATH | os.O_DIRECTORY)
    except OSError:
        pfd = -1
    if pfd >= 0:
        try:
            os.mkdir(leaf, mode, dir_fd=pfd)  # EEXIST for a symlink there: the walk follows it
            return open_in_root(rootfd, path, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            pass
        finally:
            os.close(pfd)
    # The walk: through symlinks (kept inside), creating what is missing, wording what is wrong.
    try:
        resolved = _resolve(rootfd, path)
    finally:
        _drop_cache()
    cur = os.dup(rootfd)
    prefix = ""
    try:
        for part in [p for p in resolved.split("/") if p]:
            prefix = f"{prefix}/{part}"
            try:
                nxt = open_in_root(rootfd, prefix, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    os.mkdir(part, mode, dir_fd=cur)
                except FileExistsError:
                    pass
                nxt = open_in_root(rootfd, prefix, os.O_PATH | os.O_DIRECTORY)
            os.close(cur)
            cur = nxt
        return cur
    except BaseException:
        os.close(cur)
        raise


def ensure(rootfd: int, path: str, is_dir: bool) -> int:
    """Open the mount point `path`, creating it (a directory or an empty file) if missing."""
    if is_dir:
        return mkdir_all(rootfd, path)
    try:
        return open_in_root(rootfd, path)
    except FileNotFoundError:
        pass
    try:
        resolved = _resolve(rootfd, path)
    finally:
        _drop_cache()
    parent = mkdir_all(rootfd, posixpath.dirname(resolved))
    try:
        try:
            fd = os.open(posixpath.basename(resolved), os.O_CREAT | os.O_EXCL | os.O_WRONLY
                         | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644, dir_fd=parent)
            os.close(fd)
        except FileExistsError:
            pass
    finally:
        os.close(parent)
    return open_in_root(rootfd, resolved)


def exists_in_root(rootfd: int, path: str) -> bool:
    try:
        os.close(open_in_root(rootfd, path))
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise
