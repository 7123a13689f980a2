"""Idmapped bind mounts, made on the host before the container's namespaces exist.

Marking a mount idmapped (mount_setattr MOUNT_ATTR_IDMAP) needs CAP_SYS_ADMIN in the user
namespace that owns the source's filesystem, which the host holds and a container in its
own user namespace does not. So the runtime clones each source into a detached mount
(open_tree), idmaps it with a throwaway user namespace that carries the mount's mappings,
and hands the fd to the init, which only moves it into place (move_mount).
"""

from __future__ import annotations

import errno
import os

from pyrunc import unixsock
from pyrunc.errors import SystemError_
from pyrunc.linux import syscalls as sc
from pyrunc.linux.namespaces import write_id_maps
from pyrunc.spec.config import IDMapping, Mount

AT_FDCWD = -100

_Maps = tuple[tuple[IDMapping, ...], tuple[IDMapping, ...]]


def prepare(mounts: tuple[Mount, ...], every_bind: bool = False) -> dict[int, int]:
    """Detached, idmapped clones of the idmapped mounts' sources, by index in `mounts`; with
    `every_bind` (a container in a user namespace) plain clones of the other binds too: their
    sources are opened here, as host root, so a source the container's user namespace cannot
    reach (a 0700 host directory) still mounts, as with runc.

    The caller closes the fds (`close`) once the init has them; on failure none is left."""
    trees: dict[int, int] = {}
    userns: dict[_Maps, int] = {}
    try:
        for i, m in enumerate(mounts):
            if not m.idmap:
                if every_bind and m.is_bind:
                    trees[i] = _clone(m)
                continue
            maps = (m.uid_mappings, m.gid_mappings)
            if maps not in userns:
                userns[maps] = _userns_with(i, *maps)
            trees[i] = _idmapped_tree(i, m, userns[maps])
    except BaseException:
        close(trees)
        raise
    finally:
        close(userns)
    return trees


def close(fds: dict[_Maps, int] | dict[int, int]) -> None:
    for fd in fds.values():
        os.close(fd)


def _clone(m: Mount) -> int:
    """A detached copy of the bind's source (with its submounts for rbind)."""
    assert m.source is not None
    recursive_bind = bool(m.flags & sc.MS_REC)
    try:
        return sc.open_tree(AT_FDCWD, m.source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
                            | (sc.AT_RECURSIVE if recursive_bind else 0))
    except OSError as exc:
        raise SystemError_(f"mount source {m.source} for {m.destination}: {exc.strerror}",
                           exc.errno or errno.EIO) from None


def _idmapped_tree(i: int, m: Mount, userns_fd: int) -> int:
    fd = _clone(m)
    try:
        sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if m.idmap == "ridmap" else 0),
                         sc.MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    except OSError as exc:
        os.close(fd)
        raise SystemError_(f"config.json: mounts[{i}]: cannot idmap {m.source} for "
                           f"{m.destination}: {exc.strerror} (the filesystem or kernel may "
                           "not support idmapped mounts)", exc.errno or errno.EIO) from None
    return fd


def _userns_with(i: int, uid_maps: tuple[IDMapping, ...], gid_maps: tuple[IDMapping, ...]) -> int:
    """An fd of a new user namespace with these maps, held by nothing else.

    A child unshares it and waits; we write its maps, open its namespace, and let it go."""
    ours, theirs = unixsock.pair(unixsock.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only unshares and waits
        try:
            ours.close()
            sc.unshare(sc.CLONE_NEWUSER)
            theirs.send(b"1")
            theirs.recv(1)  # returns when the runtime closes its end
        finally:
            os._exit(0)
    theirs.close()
    try:
        if ours.recv(1) != b"1":
            raise SystemError_("cannot make a user namespace for an idmapped mount")
        try:
            write_id_maps(pid, uid_maps, gid_maps)
        except OSError as exc:
            raise SystemError_(f"config.json: mounts[{i}]: cannot use its uidMappings/gidMappings: "
                               f"{exc.strerror}", exc.errno or errno.EIO) from None
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        ours.close()
        os.waitpid(pid, 0)
