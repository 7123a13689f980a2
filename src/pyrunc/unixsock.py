"""Unix sockets on CPython's `_socket`, without the `socket` module.

At import, `socket` turns its constants into enums (IntEnum._convert_ over the whole
module) and loads selectors and array: 6-8 ms of every create and exec on this machine,
for the few calls pyrunc makes (a socketpair, a connect, SCM_RIGHTS). The objects here
are the C socket type that `socket.socket` subclasses: same methods, no context manager.
"""

from __future__ import annotations

import _socket
import struct

Socket = _socket.socket
AF_UNIX = _socket.AF_UNIX
AF_INET = _socket.AF_INET
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_SEQPACKET = _socket.SOCK_SEQPACKET
_INT = struct.calcsize("i")


def pair(kind: int) -> tuple[Socket, Socket]:
    """A connected AF_UNIX pair, close-on-exec (as every fd Python makes)."""
    return _socket.socketpair(AF_UNIX, kind)


def connect(path: str) -> Socket:
    sock = _socket.socket(AF_UNIX, SOCK_STREAM)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def adopt(fd: int) -> Socket:
    """A socket object for an fd we were given (it closes the fd when closed)."""
    return _socket.socket(fileno=fd)


def send_fds(sock: Socket, data: bytes, fds: list[int]) -> int:
    rights = struct.pack(f"{len(fds)}i", *fds)
    return sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])


def recv_fds(sock: Socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """One message and the fds that came with it (those past a truncated one are lost to
    the kernel, as with socket.recv_fds)."""
    data, ancdata, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * _INT))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            n = len(payload) // _INT
            fds.extend(struct.unpack(f"{n}i", payload[:n * _INT]))
    return data, fds
