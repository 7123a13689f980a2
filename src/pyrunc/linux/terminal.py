"""The container's pseudo-terminal: made inside the container, its master sent out.

The pty comes from the container's own devpts (/dev/ptmx -> pts/ptmx), its slave
becomes the process's stdio and controlling terminal and is bound over
/dev/console; the master goes to the caller's console socket as runc sends it:
one message, the pty name as payload, the fd by SCM_RIGHTS, no reply awaited.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from pyrunc import unixsock
from pyrunc.errors import SystemError_
from pyrunc.linux import syscalls as sc
from pyrunc.unixsock import Socket

# <asm-generic/ioctls.h>, the same on x86_64 and aarch64 (the only architectures pyrunc's
# C programs build for): `termios`, for these, is an extension module to load (~0.6 ms).
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSCTTY = 0x540E
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414


def open_pty() -> tuple[int, int, str]:
    """(master, slave, slave path) from the devpts instance of the current root."""
    try:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        num = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
        path = f"/dev/pts/{num}"
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot allocate a pseudo-terminal in the container", exc) from None
    return master, slave, path


def set_size(fd: int, size: tuple[int, int] | None) -> None:
    if size is not None:
        height, width = size
        fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def make_stdio(slave: int) -> None:
    """The slave becomes fds 0-2 and the controlling terminal of our (new) session."""
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)


def bind_console(slave_path: str) -> None:
    """/dev/console in the container is the pty slave (as with runc and crun)."""
    try:
        # Never an open that can block (an image's FIFO there) nor one through a symlink:
        # anything but a regular file or a character device is replaced by an empty file.
        from pyrunc.linux.devices import bind_target
        dev = os.open("/dev", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            target = bind_target(dev, "console", 0o600)
        finally:
            os.close(dev)
        try:
            sc.mount(slave_path, f"/proc/self/fd/{target}", None, sc.MS_BIND)
        finally:
            os.close(target)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot bind the terminal over /dev/console", exc) from None


def send_master(console: Socket, master: int, name: str) -> None:
    try:
        unixsock.send_fds(console, name.encode(), [master])
    except OSError as exc:
        raise SystemError_.from_oserror("cannot send the pty master to the console socket", exc) from None


def give_to(slave: int, uid: int) -> None:
    """The process's user must own its terminal (or it could not, say, chmod or hand it on):
    runc changes the owner only, keeping the group devpts gave it (the tty group by the
    usual gid=5). Where the kernel will not (an unmapped id, a read-only /dev) it stays."""
    st = os.fstat(slave)
    if st.st_uid == uid:
        return
    try:
        os.fchown(slave, uid, st.st_gid)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
            raise SystemError_.from_oserror("cannot give the terminal to the process's user",
                                            exc) from None


def setup(console_fd: int, size: tuple[int, int] | None, console_dev: bool, uid: int = 0) -> None:
    """All of it, for init (console_dev=True) and exec; the pty becomes `uid`'s."""
    master, slave, path = open_pty()
    try:
        give_to(slave, uid)
        set_size(master, size)
        if console_dev:
            bind_console(path)
        console = unixsock.adopt(console_fd)
        try:
            send_master(console, master, path)
        finally:
            console.close()
        make_stdio(slave)
    finally:
        os.close(master)
        os.close(slave)


def connect(path: str) -> Socket:
    """The runtime side: connect to the caller's console socket before the container starts."""
    try:
        return unixsock.connect(path)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot connect to console socket {path}", exc) from None
