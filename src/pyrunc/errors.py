"""Errors pyrunc raises. Each carries an errno and a one-line message; the CLI logs it once."""

from __future__ import annotations

import errno as _errno


class PyruncError(Exception):
    """Base error: `msg` is the one line shown to the user, `errno` the cause when known."""

    default_errno = 0
    exit_code = 1  # what the CLI exits with (runc's: 1, but 255 for a failed exec)

    def __init__(self, msg: str, errno: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.errno = self.default_errno if errno is None else errno

    def __str__(self) -> str:
        return self.msg

    def wrap(self, context: str) -> "PyruncError":
        """Return the same kind of error with `context: ` in front, crun style."""
        return type(self)(f"{context}: {self.msg}", self.errno)


class SpecError(PyruncError):
    """config.json is malformed, violates the schema, or asks for something impossible."""

    default_errno = _errno.EINVAL


class UsageError(PyruncError):
    """Bad flags or arguments on the command line."""

    default_errno = _errno.EINVAL


class NotExistError(PyruncError):
    """No container with that id."""

    default_errno = _errno.ENOENT


class ExistsError(PyruncError):
    """A container with that id already exists."""

    default_errno = _errno.EEXIST


class InvalidStateError(PyruncError):
    """The operation is not allowed in the container's current status."""

    default_errno = _errno.EINVAL


class NotRunningError(InvalidStateError):
    """The container's init is gone (callers match the text "container not running")."""


class SystemError_(PyruncError):
    """A syscall or host operation failed; the message names it and the errno."""

    default_errno = _errno.EIO

    @classmethod
    def from_oserror(cls, context: str, exc: OSError) -> "SystemError_":
        detail = exc.strerror or str(exc)
        if exc.filename is not None and str(exc.filename) not in context:
            detail = f"{exc.filename}: {detail}"
        return cls(f"{context}: {detail}", exc.errno or _errno.EIO)


class UnsupportedError(PyruncError):
    """A feature pyrunc does not implement (yet); said plainly rather than ignored."""

    default_errno = _errno.ENOTSUP


class ExecFailed(PyruncError):
    """`exec` failed before its process ran: runc says "exec failed: ..." and exits 255, which
    callers tell from the process's own exit status."""

    exit_code = 255


class NoHelpTopic(UsageError):
    """An unknown command: runc (urfave/cli) answers "No help topic for 'X'", exit status 3."""

    exit_code = 3
