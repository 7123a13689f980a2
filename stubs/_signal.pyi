# CPython's signal module core (Modules/signalmodule.c), which `signal` re-exports after
# wrapping the numbers in enums: what pyrunc uses of it, with plain ints.
from types import FrameType
from typing import Any, Callable, Iterable

_Handler = Callable[[int, FrameType | None], Any] | int | None

SIG_DFL: int
SIG_IGN: int
SIG_SETMASK: int
SIGCHLD: int
SIGCONT: int
SIGHUP: int
SIGINT: int
SIGKILL: int
SIGPIPE: int
SIGSTOP: int
SIGTERM: int
SIGTSTP: int
SIGTTIN: int
SIGTTOU: int
SIGWINCH: int
SIGXFSZ: int

def valid_signals() -> set[int]: ...
def pidfd_send_signal(pidfd: int, sig: int, siginfo: None = ..., flags: int = ..., /) -> None: ...
def signal(signalnum: int, handler: _Handler, /) -> _Handler: ...
def getsignal(signalnum: int, /) -> _Handler: ...
def set_wakeup_fd(fd: int, /, *, warn_on_full_buffer: bool = ...) -> int: ...
def pthread_sigmask(how: int, mask: Iterable[int], /) -> set[int]: ...
