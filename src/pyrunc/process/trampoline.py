"""The sealed copy of pyrunc-init (csrc/freestanding/trampoline.c) that container processes exec.

Until they exec the container's program, the runtime's container-side processes are the
host's Python interpreter. An execve made by them resolves /proc/self/exe to that
interpreter, so an image whose program is "#!/proc/self/exe" would run the host's
interpreter inside the container and could keep an fd on it, to write it once no Python
runs (CVE-2019-5736). They exec pyrunc-init instead, from a memfd sealed against writes,
and it execs the container's program: /proc/self/exe is then that throwaway copy. The
memfd is made by the runtime, before any fork, so its pages are charged to the runtime's
cgroup, not the container's.
"""

from __future__ import annotations

import errno
import fcntl
import os

from pyrunc.errors import SystemError_

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import NoReturn

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyrunc-init")
NAME = "pyrunc-init"

_MFD_EXEC = 0x10  # Linux 6.3+: executable whatever vm.memfd_noexec says
_F_SEAL_EXEC = 0x20  # Linux 6.3+: its mode bits cannot change either
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def sealed_copy() -> int:
    """A close-on-exec fd of a memfd holding pyrunc-init, sealed against any change."""
    try:
        src = os.open(PATH, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot open {PATH} (is pyrunc fully installed?)",
                                        exc) from None
    fd = -1
    try:
        flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
        try:
            fd = os.memfd_create(NAME, flags | _MFD_EXEC)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # kernels before 6.3 do not know MFD_EXEC
                raise
            fd = os.memfd_create(NAME, flags)
        size = os.fstat(src).st_size
        done = 0
        while done < size:
            n = os.sendfile(fd, src, done, size - done)
            if n == 0:
                raise OSError(errno.EIO, f"{PATH} shrank while being copied")
            done += n
        try:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS | _F_SEAL_EXEC)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        return fd
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        raise SystemError_.from_oserror("cannot make the sealed copy of pyrunc-init", exc) from None
    finally:
        os.close(src)


def argv(path: str, args: tuple[str, ...] | list[str], wait_fd: int = -1,
         report_fd: int = -1) -> list[str]:
    """pyrunc-init's command line: wait for a byte on `wait_fd` (if any), then exec `path`
    (with no `args`, nothing: only the waiting); if that fails, say so on `report_fd` (if
    any; sync.EXEC_FAILED) instead of stderr. Both fds must survive the exec into
    pyrunc-init (inheritable)."""
    program = [path, *args] if args else []
    return [NAME, str(wait_fd) if wait_fd >= 0 else "-", str(report_fd) if report_fd >= 0 else "-",
            *program]


def execute(fd: int, argv: list[str], env: dict[str, str]) -> NoReturn:
    """Exec the sealed copy. Through the fd (execveat) when the kernel and a seccomp profile
    allow it, else through /proc/self/fd, which a profile allowing only execve allows."""
    try:
        os.execve(fd, argv, env)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise
    os.execve(f"/proc/self/fd/{fd}", argv, env)
