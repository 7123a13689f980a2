"""Container-side network setup: only the loopback, through ioctls (no netlink needed)."""

from __future__ import annotations

import fcntl
import struct

from pyrunc import unixsock

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """A new network namespace starts with lo down; runc and crun bring it up."""
    s = unixsock.Socket(unixsock.AF_INET, unixsock.SOCK_DGRAM)
    try:
        req = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    finally:
        s.close()
