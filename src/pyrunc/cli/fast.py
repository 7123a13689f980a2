"""The engines' hot path without click: `state`, `start`, `kill` and `delete`.

Container engines call these once or more per container, and importing click costs more than
the work itself. Only the plain shapes callers use are taken here (global flags, then the
command and its id); anything else -- another command, an unusual flag, `--help`, `--` --
is left to the click CLI, which stays the one definition of the interface. A unit test checks
that for every argv taken here, click parses the same values.
"""

from __future__ import annotations

import json
import sys

GLOBAL_VALUES = ("--root", "--log", "--log-format", "--rootless", "--criu")
GLOBAL_FLAGS = ("--debug", "--systemd-cgroup")
FORCE_FLAGS = ("-f", "--force")


class Parsed:
    """One call as click would read it (a plain class: importing dataclasses costs ~5 ms)."""

    def __init__(self, command: str, container_id: str, root: str = "/run/pyrunc",
                 log: str | None = None, log_format: str = "text", debug: bool = False,
                 force: bool = False) -> None:
        self.command = command
        self.container_id = container_id
        self.root = root
        self.log = log
        self.log_format = log_format
        self.debug = debug
        self.force = force
        self.signal = "SIGTERM"


def parse(argv: list[str]) -> Parsed | None:
    """The argv as click would read it, or None when it is not one of the simple shapes."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in GLOBAL_VALUES:
            if eq:
                values[name] = inline
                i += 1
            elif i + 1 < len(argv):
                values[name] = argv[i + 1]
                i += 2
            else:
                return None
        elif arg in GLOBAL_FLAGS:
            flags.add(arg)
            i += 1
        else:
            return None
    if i >= len(argv) or values.get("--log-format", "text") not in ("text", "json"):
        return None
    command, rest = argv[i], argv[i + 1:]
    force = False
    if command == "delete":
        force = any(a in FORCE_FLAGS for a in rest)
        rest = [a for a in rest if a not in FORCE_FLAGS]
    if any(a.startswith("-") for a in rest):
        return None
    shapes = {"state": (1, 1), "start": (1, 1), "delete": (1, 1), "kill": (1, 2)}
    if command not in shapes or not shapes[command][0] <= len(rest) <= shapes[command][1]:
        return None
    p = Parsed(command, rest[0], root=values.get("--root", "/run/pyrunc"),
               log=values.get("--log"), log_format=values.get("--log-format", "text"),
               debug="--debug" in flags, force=force)
    if command == "kill" and len(rest) == 2:
        p.signal = rest[1]
    return p


def run(argv: list[str]) -> int | None:
    """Run the command if it is one of ours; None hands it to the click CLI."""
    p = parse(argv)
    if p is None:
        return None
    from pyrunc.cli.edge import fail
    from pyrunc.errors import PyruncError
    from pyrunc.log import Logger
    from pyrunc.runtime import Runtime
    logger = Logger(p.log, p.log_format, p.debug)
    try:
        rt = Runtime(p.root, logger)
        if p.command == "state":
            sys.stdout.write(json.dumps(rt.state(p.container_id), indent=2) + "\n")
        elif p.command == "start":
            rt.start(p.container_id)
        elif p.command == "kill":
            from pyrunc.cli.signals import parse_signal
            rt.kill(p.container_id, parse_signal(p.signal))
        else:
            rt.delete(p.container_id, p.force)
    except PyruncError as exc:
        fail(logger, exc.msg)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        fail(logger, f"{exc.strerror or exc}{where}")
    return 0
