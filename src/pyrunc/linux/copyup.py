"""`tmpcopyup`: copy what the image has under a tmpfs mount's destination into the new tmpfs.

podman adds the option to every tmpfs it asks for (`--read-only`, `--tmpfs /etc`), and runc
copies the directory's contents up, so `--tmpfs /etc` still sees the image's /etc.

The image is hostile: the copy walks file descriptors only (the directory as it was before
the tmpfs covered it, opened inside the rootfs, then each entry by name relative to its
parent, O_NOFOLLOW), never a path string, so no symlink in the image can lead it out of the
rootfs; a symlink is copied as a symlink. Owners, modes (set-id bits included), timestamps,
hard links, fifos, sockets and device nodes (where the kernel allows mknod) are kept, and
xattrs when the tmpfs takes them; a sparse file's holes stay holes. Each level holds two
fds: the depth is bounded.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrunc.errors import SystemError_

#: Nesting deeper than this is refused (each level keeps two fds open; images have ~10).
MAX_DEPTH = 128
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_KEPT = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL, errno.EACCES)


def copy_tree(src: int, dst: int, where: str) -> None:
    """Copy the contents of directory fd `src` into directory fd `dst` (`where` names it in
    errors)."""
    try:
        _Copy(dst).dir(src, dst, "", 0)
    except OSError as exc:
        raise SystemError_.from_oserror(f"tmpcopyup of {where}", exc) from None


def _xattrs(src: int, dst: int) -> None:
    """Extended attributes of one file or directory, both open; those the tmpfs or this
    user may not set (trusted.*, security.* in a user namespace) are left out."""
    try:
        names = os.listxattr(src)
    except OSError:
        return
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name))
        except OSError as exc:
            if exc.errno not in _NOT_KEPT:
                raise


def _meta(fd: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then times, on an open fd."""
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except OSError as exc:
        if exc.errno not in _NOT_KEPT:  # an id the user namespace does not map
            raise
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


class _Copy:
    """One copy: the destination root (hard links are made relative to it) and the first
    copy of each multiply-linked inode, by its path under that root."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.links: dict[tuple[int, int], str] = {}

    def dir(self, src: int, dst: int, rel: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise OSError(errno.ELOOP, f"directories nested deeper than {MAX_DEPTH}", rel)
        for name in os.listdir(src):
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            path = f"{rel}/{name}" if rel else name
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(name, 0o700, dir_fd=dst)
                sub = os.open(name, _DIR, dir_fd=src)
                try:
                    if not os.path.samestat(os.fstat(sub), st):  # swapped meanwhile
                        raise OSError(errno.EAGAIN, "changed while being copied", path)
                    dsub = os.open(name, _DIR, dir_fd=dst)
                    try:
                        self.dir(sub, dsub, path, depth + 1)
                        _xattrs(sub, dsub)
                        _meta(dsub, st)
                    finally:
                        os.close(dsub)
                finally:
                    os.close(sub)
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:  # a hard link to what is copied already
                os.link(self.links[key], name, src_dir_fd=self.root, dst_dir_fd=dst,
                        follow_symlinks=False)
                continue
            if stat.S_ISREG(mode):
                _copy_file(src, dst, name, st, path)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                try:
                    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno not in _NOT_KEPT:
                        raise
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
            else:  # fifo, socket, char or block device
                try:
                    os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dst)
                except PermissionError:
                    continue  # devices cannot be made here (a user namespace): as runc, skipped
                node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
                try:
                    # fchown/fchmod do not take O_PATH fds: through its /proc/self/fd link
                    p = f"/proc/self/fd/{node}"
                    try:
                        os.chown(p, st.st_uid, st.st_gid)
                    except OSError as exc:
                        if exc.errno not in _NOT_KEPT:
                            raise
                    os.chmod(p, stat.S_IMODE(mode))
                    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(node)
            if st.st_nlink > 1:
                self.links[key] = path


def _copy_file(src: int, dst: int, name: str, st: os.stat_result, path: str) -> None:
    # O_NONBLOCK: a file swapped for a fifo after the stat must not hang the open.
    sfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src)
    try:
        now = os.fstat(sfd)
        if not stat.S_ISREG(now.st_mode) or not os.path.samestat(now, st):
            raise OSError(errno.EAGAIN, "changed while being copied", path)
        dfd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=dst)
        try:
            _copy_data(sfd, dfd, now.st_size)
            _xattrs(sfd, dfd)
            _meta(dfd, now)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _copy_data(sfd: int, dfd: int, size: int) -> None:
    """The file's data extents only (SEEK_DATA/SEEK_HOLE), its holes left as holes: a 100 GB
    sparse file of a few KB on disk would otherwise fill the tmpfs and the host's memory with
    zeros (or fail the create with ENOSPC). A filesystem without hole support reports one
    extent, the whole file."""
    pos = 0
    while pos < size:
        try:
            data = os.lseek(sfd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            raise
        if data >= size:
            break
        end = min(os.lseek(sfd, data, os.SEEK_HOLE), size)
        os.lseek(dfd, data, os.SEEK_SET)
        pos = data
        while pos < end:
            sent = os.sendfile(dfd, sfd, pos, min(end - pos, 1 << 30))
            if sent == 0:  # shrank meanwhile: what there was is copied
                return
            pos += sent
    os.ftruncate(dfd, size)  # a hole at the end
