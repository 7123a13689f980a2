"""Typed messages between the runtime and the container-side processes.

One SOCK_SEQPACKET socketpair; each datagram is one JSON object {"type": ..., ...}.
Child-side failures travel as {"type": "error", "msg", "errno"} and are raised
here as PyruncError with that errno, so the user sees the child's reason.
"""

from __future__ import annotations

import os

from pyrunc import jsonio, unixsock
from pyrunc.errors import PyruncError, SystemError_
from pyrunc.unixsock import Socket

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any, Callable

MAX_MSG = 1 << 20

# Message types, named for what they announce.
GO = "go"                          # runtime -> init: its pid is recorded, carry on
USERNS_READY = "userns_ready"      # stage -> runtime: write my id maps now
MAPPINGS_DONE = "mappings_done"    # runtime -> stage
INIT_PID = "init_pid"              # stage -> runtime: {"pid": host pid of the init}
HOOKS = "hooks"                    # init (or stage) -> runtime: {"pid"} mounts made, before pivot_root
HOOKS_DONE = "hooks_done"          # runtime -> init: {"state": state JSON for the init's own hooks}
CGROUP_JOINED = "cgroup_joined"    # runtime -> init: in every cgroup now (Manager.adopt done)
READY = "ready"                    # init -> runtime: rootfs done, blocking on the exec fifo
LISTENER = "listener"              # init or exec'd process -> runtime: {"fd"} seccomp notify listener
LISTENER_DONE = "listener_done"    # runtime -> it: the agent has the fd, carry on
ERROR = "error"
EXEC_FAILED = "exec_failed"        # pyrunc-init -> runtime: {"errno"} its execve failed


class InitDied(SystemError_):
    """The other side vanished without a word (killed, e.g. by the OOM killer)."""


def socketpair() -> tuple[Socket, Socket]:
    return unixsock.pair(unixsock.SOCK_SEQPACKET)


def send(sock: Socket, kind: str, **fields: Any) -> None:
    sock.send(jsonio.dumps({"type": kind, **fields}).encode())


def send_fd(sock: Socket, kind: str, fd: int, **fields: Any) -> None:
    """A message carrying one fd (SCM_RIGHTS); the receiver finds it under "fd"."""
    unixsock.send_fds(sock, jsonio.dumps({"type": kind, **fields}).encode(), [fd])


def hand_listener(sock: Socket, fd: int) -> None:
    """Right after the filter is loaded (container side): send the notify listener fd and
    wait until the runtime has passed it to the agent, then close ours. Until the agent has
    it, a syscall the filter notifies would block us for good, so nothing runs in between
    but this sendmsg (which the profile may not notify) and the recvmsg/close, which the
    agent can answer by then (runc's order: syncParentSeccomp right after InitSeccomp)."""
    try:
        send_fd(sock, LISTENER, fd)
        recv(sock, LISTENER_DONE)
    finally:
        os.close(fd)


def tell(sock: Socket, kind: str, **fields: Any) -> None:
    """The runtime's send: an init that failed and exited meanwhile makes it EPIPE, and then
    what matters is the error it sent before going, read from the socket and raised."""
    try:
        send(sock, kind, **fields)
    except (BrokenPipeError, ConnectionResetError):
        recv(sock, "(nothing: the container side is gone)")


# An error quoting a hostile config's string (a 300 kB mount destination) was a message the
# socket would not take (EMSGSIZE): the runtime saw only "no error reported". Bounded, with
# both ends kept: the start names the field, the end says what failed.
MAX_ERROR_CHARS = 4096


def send_error(sock: Socket, msg: str, errno: int) -> None:
    if len(msg) > MAX_ERROR_CHARS:
        half = MAX_ERROR_CHARS // 2
        msg = f"{msg[:half]}...({len(msg) - 2 * half} characters left out)...{msg[-half:]}"
    try:
        send(sock, ERROR, msg=msg, errno=errno)
    except OSError:
        pass  # the runtime is gone; nobody to tell


def recv(sock: Socket, expect: str, *also: str) -> dict[str, Any]:
    """Receive one message of type `expect` (or one of `also`); an error message or EOF raises."""
    try:
        data, fds = unixsock.recv_fds(sock, MAX_MSG, 1)
    except ConnectionResetError:
        # The peer closed with a message of ours unread: the kernel reports that first,
        # but what the peer sent before it closed (its error) is still queued behind it.
        try:
            data, fds = unixsock.recv_fds(sock, MAX_MSG, 1)
        except OSError:
            data, fds = b"", []
    if not data:
        raise InitDied("container init exited before it was ready (no error reported)")
    msg: dict[str, Any] = jsonio.loads(data)
    if fds:
        msg["fd"] = fds[0]
    if msg.get("type") == ERROR:
        raise PyruncError(str(msg.get("msg")), int(msg.get("errno") or 0))
    if msg.get("type") != expect and msg.get("type") not in also:
        raise SystemError_(f"sync: expected {expect!r} from the container, got {msg.get('type')!r}")
    return msg


def wait_exec(sock: Socket, program: str,
              on_listener: Callable[[int], None] | None = None) -> None:
    """The child's pyrunc-init makes this socket close-on-exec before it execs `program`:
    EOF means the exec succeeded; an EXEC_FAILED message, that it did not."""
    while True:
        try:
            data, fds = unixsock.recv_fds(sock, MAX_MSG, 1)
        except ConnectionResetError:
            data, fds = b"", []
        if not data:
            return
        msg: dict[str, Any] = jsonio.loads(data)
        if msg.get("type") == LISTENER and fds:
            try:
                if on_listener is not None:
                    on_listener(fds[0])
            finally:
                os.close(fds[0])
            send(sock, LISTENER_DONE)
            continue
        if msg.get("type") == ERROR:
            raise PyruncError(str(msg.get("msg")), int(msg.get("errno") or 0))
        if msg.get("type") == EXEC_FAILED:
            err = int(msg.get("errno") or 0)
            raise PyruncError(f"exec: {program}: {os.strerror(err).lower()}", err)
        raise SystemError_(f"sync: unexpected {msg.get('type')!r} from the exec'd process")
