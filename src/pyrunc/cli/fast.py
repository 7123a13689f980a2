"""The engines' hot path without click: `create`, `run`, `state`, `start`, `kill` (also
`--all`), `delete`, `pause`, `resume`, `ps --format json` and `exec --process FILE` (the shims'
and conmon's shape: docker/podman/ctr exec, healthchecks).

Container engines call these once or more per container, and importing click costs more than
the work of most of them (~30 ms). Only the plain shapes callers use are taken here (global flags, then the
command and its id); anything else -- another command, an unusual flag, `--help`, `--` --
is left to the click CLI, which stays the one definition of the interface. A unit test checks
that for every argv taken here, click parses the same values.
"""

from __future__ import annotations

import sys

from pyrunc import jsonio

TYPE_CHECKING = False  # typing is for the type checker only: its import costs every call
if TYPE_CHECKING:
    from pyrunc.runtime import Runtime

GLOBAL_VALUES = ("--root", "--log", "--log-format", "--rootless", "--criu")
GLOBAL_FLAGS = ("--debug", "--systemd-cgroup")
FORCE_FLAGS = ("-f", "--force")
ALL_FLAGS = ("-a", "--all")  # kill: containerd's `ctr task rm -f` / shim kill of a shared pid ns
# ps: only the JSON listing engines ask for (docker top, ctr task ps); a table runs ps(1)
PS_JSON = (["--format", "json"], ["-f", "json"], ["--format=json"])
# create/run options (long names; `-b` too, but only as a separate word): name -> field.
CREATE_VALUES = {"-b": "bundle", "--bundle": "bundle", "--pid-file": "pid_file",
                 "--console-socket": "console_socket", "--preserve-fds": "preserve_fds"}
CREATE_FLAGS = {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring"}
RUN_FLAGS = {"-d": "detach", "--detach": "detach", "--keep": "keep"}
# exec: the options engines pass with --process (long names, values as separate words or =).
EXEC_VALUES = {"--process": "process_file", "--pid-file": "pid_file",
               "--console-socket": "console_socket"}
EXEC_FLAGS = {"--detach": "detach", "-d": "detach", "--tty": "tty", "-t": "tty"}


class Parsed:
    """One call as click would read it (a plain class: importing dataclasses costs ~5 ms)."""

    def __init__(self, command: str, container_id: str, root: str | None = None,
                 log: str | None = None, log_format: str = "text", debug: bool = False,
                 force: bool = False) -> None:
        self.command = command
        self.container_id = container_id
        self.root = root  # None: the default (pyrunc.rootless.default_root)
        self.log = log
        self.log_format = log_format
        self.debug = debug
        self.force = force
        self.all_procs = False
        self.signal = "SIGTERM"
        self.options: dict[str, str | int | bool] = {}  # create/run: CreateOptions fields
        self.detach = False
        self.keep = False
        self.rootless = "auto"


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
    if i >= len(argv) or values.get("--log-format", "text") not in ("text", "json") \
            or values.get("--rootless", "auto") not in ("true", "false", "auto"):
        return None
    command, rest = argv[i], argv[i + 1:]
    if command in ("create", "run"):
        if "--systemd-cgroup" in flags:
            return None  # the systemd driver goes through click
        return _parse_create(command, rest, values, flags)
    if command == "exec":
        return _parse_exec(rest, values, flags)
    force = all_procs = False
    if command == "delete":
        force = any(a in FORCE_FLAGS for a in rest)
        rest = [a for a in rest if a not in FORCE_FLAGS]
    elif command == "kill":
        all_procs = any(a in ALL_FLAGS for a in rest)
        rest = [a for a in rest if a not in ALL_FLAGS]
    elif command == "ps":
        # Options before the id only: after it, every word is ps(1)'s (click reads it so).
        for shape in PS_JSON:
            if rest[:len(shape)] == shape:
                rest = rest[len(shape):]
                break
        else:
            return None
    if any(a.startswith("-") for a in rest):
        return None
    shapes = {"state": (1, 1), "start": (1, 1), "delete": (1, 1), "kill": (1, 2),
              "pause": (1, 1), "resume": (1, 1), "ps": (1, 1)}
    if command not in shapes or not shapes[command][0] <= len(rest) <= shapes[command][1]:
        return None
    p = _parsed(command, rest[0], values, flags)
    p.force = force
    p.all_procs = all_procs
    if command == "kill" and len(rest) == 2:
        p.signal = rest[1]
    return p


def _parsed(command: str, container_id: str, values: dict[str, str], flags: set[str]) -> Parsed:
    """A call with the global flags read (the same for every command)."""
    p = Parsed(command, container_id, root=values.get("--root"),
               log=values.get("--log"), log_format=values.get("--log-format", "text"),
               debug="--debug" in flags)
    p.rootless = values.get("--rootless", "auto")
    return p


def _parse_create(command: str, rest: list[str], values: dict[str, str],
                  flags: set[str]) -> Parsed | None:
    """create/run options in any order around the one id, or None for anything unusual."""
    options: dict[str, str | int | bool] = {}
    run_flags: set[str] = set()
    ids: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        name, eq, inline = arg.partition("=")
        if not arg.startswith("-"):
            ids.append(arg)
        elif name in CREATE_VALUES and (not eq or name.startswith("--")):
            if eq:
                value = inline
            elif i + 1 < len(rest):
                i += 1
                value = rest[i]
            else:
                return None
            if CREATE_VALUES[name] == "preserve_fds":
                if not (value.isascii() and value.isdigit()) or len(value) > 10 \
                        or int(value) > 2**31 - 4:
                    return None  # click's error (cli/main.py: MAX_PRESERVE_FDS)
                options["preserve_fds"] = int(value)
            else:
                options[CREATE_VALUES[name]] = value
        elif arg in CREATE_FLAGS:
            options[CREATE_FLAGS[arg]] = True
        elif command == "run" and arg in RUN_FLAGS:
            run_flags.add(RUN_FLAGS[arg])
        else:
            return None  # "--", "--help", "-bX", an unknown option: click's to read
        i += 1
    if len(ids) != 1:
        return None
    p = _parsed(command, ids[0], values, flags)
    p.options = options
    p.detach = "detach" in run_flags
    p.keep = "keep" in run_flags
    return p


def _parse_exec(rest: list[str], values: dict[str, str], flags: set[str]) -> Parsed | None:
    """`exec` with --process FILE and only the options engines pass, all before the one id
    (click stops reading options at the id: what follows is the command)."""
    options: dict[str, str | int | bool] = {}
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        name, eq, inline = rest[i].partition("=")
        if name in EXEC_VALUES:
            if eq:
                options[EXEC_VALUES[name]] = inline
            elif i + 1 < len(rest):
                i += 1
                options[EXEC_VALUES[name]] = rest[i]
            else:
                return None
        elif rest[i] in EXEC_FLAGS:
            options[EXEC_FLAGS[rest[i]]] = True
        else:
            return None  # "--", -e/-u/--cwd/--cgroup/..., --help: click's to read
        i += 1
    if i != len(rest) - 1 or not options.get("process_file"):
        return None
    p = _parsed("exec", rest[i], values, flags)
    p.options = options
    p.detach = bool(options.get("detach"))
    return p


def _exec(rt: Runtime, p: Parsed) -> int:
    """exec as the click command runs it: its errors are "exec failed: ...", exit status 255."""
    from pyrunc.cli.execproc import build_process
    from pyrunc.errors import ExecFailed, PyruncError
    o = p.options
    console = o.get("console_socket")
    console_socket = console if isinstance(console, str) else None
    try:
        proc = build_process(rt, p.container_id, str(o["process_file"]), (), console_socket,
                             bool(o.get("tty")), None, (), None, (), (), False, None, None)
        pid_file = o.get("pid_file")
        return int(rt.exec(p.container_id, proc, p.detach,
                           pid_file if isinstance(pid_file, str) else None, 0, console_socket,
                           {}, False))
    except PyruncError as exc:
        raise ExecFailed(f"exec failed: {exc.msg}", exc.errno) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise ExecFailed(f"exec failed: {exc.strerror or exc}{where}", exc.errno) from None


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
    code = 0
    try:
        from pyrunc.rootless import default_root, is_rootless
        rt = Runtime(default_root() if p.root is None else p.root, logger, False, is_rootless(p.rootless))
        if p.command in ("create", "run"):
            from pyrunc.options import CreateOptions
            opts = CreateOptions(**{"bundle": ".", **p.options})  # type: ignore[arg-type]
            if p.command == "create":
                rt.create(p.container_id, opts)
            else:
                code = rt.run(p.container_id, opts, p.detach, p.keep)
        elif p.command == "state":
            sys.stdout.write(jsonio.dumps(rt.state(p.container_id), indent=2) + "\n")
        elif p.command == "start":
            rt.start(p.container_id)
        elif p.command == "kill":
            from pyrunc.cli.signals import parse_signal
            rt.kill(p.container_id, parse_signal(p.signal), p.all_procs)
        elif p.command == "pause":
            rt.pause(p.container_id)
        elif p.command == "resume":
            rt.resume(p.container_id)
        elif p.command == "exec":
            code = _exec(rt, p)
        elif p.command == "ps":
            sys.stdout.write(jsonio.dumps(rt.pids(p.container_id)) + "\n")
        else:
            rt.delete(p.container_id, p.force)
    except PyruncError as exc:
        fail(logger, exc.msg, exc.exit_code)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        fail(logger, f"{exc.strerror or exc}{where}")
    except KeyboardInterrupt:
        fail(logger, "interrupted")
    except Exception as exc:  # noqa: BLE001 - the edge: a bug still gets one line, not a traceback
        fail(logger, f"internal error: {type(exc).__name__}: {exc}")
    return code
