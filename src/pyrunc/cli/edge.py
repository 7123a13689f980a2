"""The CLI's edge, shared by the click commands and the fast path: one line on stderr, the same
line as level=error in the --log file, exit status 1; and a quick exit without teardown."""

from __future__ import annotations

import os
import sys

from pyrunc.log import Logger

# typing is only for the type checker here: importing it costs the hot commands ~5 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def fail(logger: Logger | None, msg: str, code: int = 1) -> NoReturn:
    msg = " ".join(msg.split()) or "unknown error"
    if logger is not None:
        logger.error(msg)
    sys.stderr.write(msg + "\n")
    sys.exit(code)


def logger_from_argv(args: list[str]) -> Logger | None:
    """Errors can come before any parser ran: find --log/--log-format by hand."""
    path, fmt = None, "text"
    for i, a in enumerate(args):
        for flag in ("--log", "--log-format"):
            value = None
            if a == flag and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith(flag + "="):
                value = a.split("=", 1)[1]
            if value is not None:
                if flag == "--log":
                    path = value
                else:
                    fmt = value
    return Logger(path, fmt) if path else None


def leave(code: int) -> NoReturn:
    """Exit at once: interpreter teardown (freeing every imported module) costs more than
    some commands, and there is nothing left to clean up."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        code = code or 1
    os._exit(code)
