"""A foreground `run` or `exec`: forward signals, reap, and proxy the terminal if there is one.

Signals arrive through a wakeup pipe (set_wakeup_fd) so one select() loop can
serve the user's terminal, the container's pty master and signals together.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct

import _signal as signal  # `signal` without its enums (see pyrunc/cli/signals.py)

from pyrunc import unixsock
from pyrunc.unixsock import Socket

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

# Signals passed on to the container rather than acted on here.
FORWARD = {s for s in signal.valid_signals()
           if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGTSTP,
                        signal.SIGTTIN, signal.SIGTTOU, signal.SIGCONT)}


def _noop(_sig: int, _frame: FrameType | None) -> None:
    """The handler does nothing: the wakeup fd carries the signal number to the loop."""


class Foreground:
    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.old_wakeup = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        self.old = {s: signal.signal(s, _noop) for s in FORWARD | {signal.SIGCHLD}}
        self.saved_tty: Any = None
        self.master = -1

    def restore(self) -> None:
        if self.saved_tty is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_tty)
            self.saved_tty = None
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self.old_wakeup)
        os.close(self.rfd)
        os.close(self.wfd)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    # -- terminal --------------------------------------------------------------------------

    def console_pair(self) -> tuple[Socket, Socket]:
        """Our end and the end to hand to the container as its console socket."""
        return unixsock.pair(unixsock.SOCK_STREAM)

    def take_master(self, ours: Socket) -> None:
        _msg, fds = unixsock.recv_fds(ours, 4096, 1)
        ours.close()
        if not fds:
            raise OSError(errno.EPROTO, "no pty master received from the container")
        self.master = fds[0]
        if os.isatty(0):
            # Only a terminal needs these (extension modules: ~1 ms of every run otherwise).
            import termios
            import tty
            self.saved_tty = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSADRAIN)  # not TCSAFLUSH: keep what was already typed
            self._resize()

    def caller_size(self) -> tuple[int, int] | None:
        """Our terminal's (height, width), for the pty to have before its process runs
        (copied over after it started, an early `stty size` saw 0 rows); None without one."""
        if not os.isatty(0):
            return None
        from pyrunc.linux.terminal import TIOCGWINSZ
        rows, cols = struct.unpack("HH", fcntl.ioctl(0, TIOCGWINSZ, b"\0" * 8)[:4])
        return (rows, cols) if rows and cols else None

    def _resize(self) -> None:
        if self.master >= 0 and os.isatty(0):
            from pyrunc.linux.terminal import TIOCGWINSZ, TIOCSWINSZ
            size = fcntl.ioctl(0, TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, TIOCSWINSZ, size)

    # -- the loop --------------------------------------------------------------------------

    def wait_for(self, pid: int) -> int:
        inputs = [self.rfd] + ([0, self.master] if self.master >= 0 else [])
        while True:
            status = self._reap(pid)
            if status is not None:
                self._drain()
                return status
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:
                continue
            for fd in ready:
                if fd == self.rfd:
                    self._signals(pid)
                elif fd == 0:
                    if not self._copy(0, self.master):
                        inputs.remove(0)
                        self._end_of_input()
                elif fd == self.master:
                    if not self._copy(self.master, 1):
                        inputs.remove(self.master)

    def _end_of_input(self) -> None:
        """Our stdin ended (a pipe or /dev/null, not a terminal): the pty's reader gets its
        end-of-file character, as from a user's ^D, also in raw mode, where line editors
        (busybox sh, readline) take it as the end. Without it `run` of the spec's interactive
        `sh` with no terminal waited for ever; runc refuses that (no /dev/tty)."""
        import termios
        try:
            os.write(self.master, termios.tcgetattr(self.master)[6][termios.VEOF] or b"\x04")
        except (OSError, termios.error):
            pass  # the container's side already gone: nothing is reading

    def _signals(self, pid: int) -> None:
        try:
            data = os.read(self.rfd, 512)
        except BlockingIOError:
            return
        for sig in data:
            if sig == signal.SIGCHLD:
                continue
            if sig == signal.SIGWINCH and self.master >= 0:
                self._resize()
                continue
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    @staticmethod
    def _copy(src: int, dst: int) -> bool:
        try:
            data = os.read(src, 65536)
        except OSError as exc:
            if exc.errno == errno.EIO:  # the pty's other side is gone
                return False
            raise
        if not data:
            return False
        while data:
            data = data[os.write(dst, data):]
        return True

    def _drain(self) -> None:
        """What the container wrote just before it exited is still in the pty."""
        while self.master >= 0 and select.select([self.master], [], [], 0)[0]:
            if not self._copy(self.master, 1):
                break

    @staticmethod
    def _reap(pid: int) -> int | None:
        while True:
            try:
                got, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 255  # not our child after all; nothing to wait for
            if got == 0:
                return None
            if got == pid:
                Foreground._reap_exited()
                if os.WIFSIGNALED(status):
                    return 128 + os.WTERMSIG(status)
                return os.WEXITSTATUS(status)

    @staticmethod
    def _reap_exited() -> None:
        """Our other children once the container's process is gone: the exec fifo's relay
        (process/init.py: _start_relay), ours as subreaper, which exits as soon as it has
        passed on `start`'s byte. Left to whoever adopts it after us, it would be a zombie
        there; it is given a moment (bounded) if it has not quite exited yet."""
        import time
        deadline = time.monotonic() + 0.2
        while True:
            try:
                got = os.waitpid(-1, os.WNOHANG)[0]
            except ChildProcessError:
                return
            if got == 0:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)
