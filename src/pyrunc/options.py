"""Options of `create` and `run` (kept out of runtime.py: `state` and `kill` do not need
them)."""

from __future__ import annotations

from pyrunc.records import NamedTuple


class CreateOptions(NamedTuple):
    bundle: str
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    console_fd: int = -1  # internal: our own console socket, when we proxy the terminal
