"""runc-compatible log lines: `--log FILE --log-format json|text`.

containerd's shim shows the msg of the last level=error JSON line to the user, so
every error the CLI reports goes here once, besides stderr.
"""

from __future__ import annotations

import os
import sys
import time

from pyrunc import jsonio


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Logger:
    """Appends one line per record to the log file (or stderr when there is none).

    The file is created at once, as runc's is: a caller that tails --log (conmon, the
    shims) finds it even when the command had nothing to say."""

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug
        if path is not None:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
            except OSError as exc:
                sys.stderr.write(f"pyrunc: cannot open log file {path}: {exc.strerror}\n")
                self.path = None  # what would have gone there goes to stderr

    def _line(self, level: str, msg: str) -> str:
        if self.fmt == "json":
            return jsonio.dumps({"level": level, "msg": msg, "time": _now()}) + "\n"
        return f'time="{_now()}" level={level} msg={jsonio.dumps(msg)}\n'

    def write(self, level: str, msg: str) -> None:
        line = self._line(level, msg)
        if self.path is None:
            if level != "error":  # errors reach stderr through the CLI edge already
                sys.stderr.write(line)
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            sys.stderr.write(f"pyrunc: cannot open log file {self.path}: {exc.strerror}\n")
            return
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def error(self, msg: str) -> None:
        self.write("error", msg)

    def warning(self, msg: str) -> None:
        self.write("warning", msg)

    def info(self, msg: str) -> None:
        self.write("info", msg)

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self.write("debug", msg)
