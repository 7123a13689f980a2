"""The `pyrunc` command: runc's interface, each command a few lines over Runtime.

Errors are logged once, here: one line on stderr, the same line as level=error in
the --log file, exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import click

from pyrunc import OCI_VERSION, __version__
from pyrunc.errors import ExecFailed, NoHelpTopic, PyruncError, UnsupportedError, UsageError
from pyrunc.cli.edge import fail, leave, logger_from_argv
from pyrunc.log import Logger

CONTEXT = {"help_option_names": ["-h", "--help"]}
# fds 3..3+N-1 must be fd numbers (ints): a bigger N overflows close_range's unsigned int.
MAX_PRESERVE_FDS = 2**31 - 4


class Ctx:
    """What the global flags decide, handed to every command."""

    def __init__(self, root: str, log: Logger, systemd_cgroup: bool, rootless: str) -> None:
        self.root = root
        self.log = log
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless

    def runtime(self) -> Any:
        from pyrunc.runtime import Runtime
        from pyrunc.rootless import is_rootless
        return Runtime(self.root, self.log, self.systemd_cgroup,
                       is_rootless(self.rootless, self.systemd_cgroup))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        # The shape of runc's: dockerd parses the "version" and "commit:" lines.
        click.echo(f"pyrunc version {__version__}\ncommit: v{__version__}\nspec: {OCI_VERSION}\n"
                   f"python: {sys.version.split()[0]} ({sys.executable})")
        ctx.exit(0)


class Group(click.Group):
    """runc's (urfave/cli's) answer to an unknown command, `-h` or not: "No help topic for
    'X'", exit status 3 -- not click's "No such command", exit 2."""

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and not ctx.resilient_parsing and self.get_command(ctx, args[0]) is None \
                and not args[0].startswith("-"):
            raise NoHelpTopic(f"No help topic for '{args[0]}'")
        return super().resolve_command(ctx, args)


@click.group(cls=Group, context_settings=CONTEXT)
@click.option("--root", default=None, help="directory for container state (default /run/pyrunc; "
              "$XDG_RUNTIME_DIR/pyrunc for a non-root user)")
@click.option("--log", "log_path", default=None, help="append log lines to this file")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="log line format")
@click.option("--debug", is_flag=True, help="log debug lines too")
@click.option("--systemd-cgroup", is_flag=True,
              help="use the systemd cgroup driver: linux.cgroupsPath is slice:prefix:name and "
              "the container gets a transient systemd scope (or the slice named), started over "
              "D-Bus (needs systemd as PID 1; cgroup v2, or v1/hybrid as runc's legacy "
              "manager; rootless on v2 only; refused elsewhere)")
@click.option("--rootless", default="auto", type=click.Choice(["true", "false", "auto"]),
              help="rootless mode: auto (the default) is rootless when the effective uid is "
              "not 0, or root of a user namespace (rootless podman's case; with "
              "--systemd-cgroup, below a user's systemd manager); true forces it (then a "
              "cgroup that cannot be made is done without)")
@click.option("--criu", default="criu", hidden=True)
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="print the version")
@click.pass_context
def cli(ctx: click.Context, root: str | None, log_path: str | None, log_format: str, debug: bool,
        systemd_cgroup: bool, rootless: str, criu: str) -> None:
    """pyrunc: an OCI runtime with runc's command line."""
    logger = Logger(log_path, log_format, debug)
    if root is None:
        from pyrunc.rootless import default_root
        root = default_root()
    ctx.obj = Ctx(root, logger, systemd_cgroup, rootless)
    ctx.meta["logger"] = logger


def _create_opts(bundle: str, pid_file: str | None, console_socket: str | None, no_pivot: bool,
                 no_new_keyring: bool, preserve_fds: int) -> Any:
    from pyrunc.options import CreateOptions
    return CreateOptions(bundle=bundle, pid_file=pid_file, console_socket=console_socket,
                         no_pivot=no_pivot, no_new_keyring=no_new_keyring, preserve_fds=preserve_fds)


def create_options(f: Any) -> Any:
    for opt in reversed([
        click.option("-b", "--bundle", default=".", help="path to the bundle directory"),
        click.option("--pid-file", default=None, help="write the init's pid here"),
        click.option("--console-socket", default=None, help="AF_UNIX socket to receive the pty master"),
        click.option("--no-pivot", is_flag=True, help="use MS_MOVE + chroot instead of pivot_root"),
        click.option("--no-new-keyring", is_flag=True, help="do not create a session keyring"),
        click.option("--preserve-fds", default=0, type=click.IntRange(0, MAX_PRESERVE_FDS),
                     help="pass N more fds (from 3) to the container"),
    ]):
        f = opt(f)
    return f


@cli.command(context_settings=CONTEXT)
@create_options
@click.argument("container_id")
@click.pass_obj
def create(obj: Ctx, /, container_id: str, **kw: Any) -> None:
    """Create a container; it waits for `start` to run its process."""
    obj.runtime().create(container_id, _create_opts(**kw))


@cli.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def start(obj: Ctx, /, container_id: str) -> None:
    """Run the process of a created container."""
    obj.runtime().start(container_id)


@cli.command(context_settings=CONTEXT)
@create_options
@click.option("-d", "--detach", is_flag=True, help="return once the container has started")
@click.option("--keep", is_flag=True, help="keep the container's state after it exits")
@click.argument("container_id")
@click.pass_obj
def run(obj: Ctx, /, container_id: str, detach: bool, keep: bool, **kw: Any) -> None:
    """Create and start a container; in the foreground, exit with its status."""
    code = obj.runtime().run(container_id, _create_opts(**kw), detach, keep)
    sys.exit(code)


@cli.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def state(obj: Ctx, /, container_id: str) -> None:
    """Print the state JSON of a container."""
    click.echo(json.dumps(obj.runtime().state(container_id), indent=2))


@cli.command(context_settings=CONTEXT)
@click.option("-a", "--all", "all_procs", is_flag=True, help="signal every process in the container")
@click.argument("container_id")
@click.argument("signal", default="SIGTERM")
@click.pass_obj
def kill(obj: Ctx, /, container_id: str, signal: str, all_procs: bool) -> None:
    """Send a signal (default SIGTERM) to the container's init."""
    from pyrunc.cli.signals import parse_signal
    obj.runtime().kill(container_id, parse_signal(signal), all_procs)


@cli.command(context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="kill the container first if it still runs")
@click.argument("container_id")
@click.pass_obj
def delete(obj: Ctx, /, container_id: str, force: bool) -> None:
    """Delete a stopped (or, with --force, any) container."""
    obj.runtime().delete(container_id, force)


@cli.command("list", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("-q", "--quiet", is_flag=True, help="print only the ids")
@click.pass_obj
def list_(obj: Ctx, /, fmt: str, quiet: bool) -> None:
    """List containers under --root."""
    states = obj.runtime().list_all()
    if quiet:
        for s in states:
            click.echo(s["id"])
    elif fmt == "json":
        # runc's shape: one compact line in its field order (an empty host: `[]`, which
        # `jq '.[]'` takes; runc 1.1 printed `null`).
        keys = ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                "annotations", "owner")
        ordered = [{k: s[k] for k in keys if k in s} for s in states]
        click.echo(json.dumps(ordered, separators=(",", ":")))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                 for s in states]
        widths = [max(12, *(len(r[i]) for r in rows)) + 3 for i in range(5)]
        for r in rows:
            click.echo("".join(col.ljust(w) for col, w in zip(r, widths)) + r[5])


@cli.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def pause(obj: Ctx, /, container_id: str) -> None:
    """Freeze every process of the container."""
    obj.runtime().pause(container_id)


@cli.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def resume(obj: Ctx, /, container_id: str) -> None:
    """Thaw a paused container."""
    obj.runtime().resume(container_id)


# Everything after the id is ps(1)'s, as with runc (`ps ID -e -x`).
@cli.command(context_settings={**CONTEXT, "allow_interspersed_args": False})
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def ps(obj: Ctx, /, container_id: str, fmt: str, ps_args: tuple[str, ...]) -> None:
    """List the processes of a container (host pids)."""
    pids = obj.runtime().pids(container_id)
    if fmt == "json":
        click.echo(json.dumps(pids))
        return
    from pyrunc.cli.ps import ps_table
    click.echo(ps_table(pids, list(ps_args) or ["-ef"]), nl=False)


@cli.command("exec", context_settings={**CONTEXT, "allow_interspersed_args": False})
@click.option("-p", "--process", "process_file", default=None, help="process.json with the process to run")
@click.option("--console-socket", default=None, help="AF_UNIX socket to receive the pty master")
@click.option("-t", "--tty", is_flag=True, help="allocate a pseudo-terminal")
@click.option("-d", "--detach", is_flag=True, help="return once the process has started")
@click.option("--pid-file", default=None, help="write the process's pid here")
@click.option("--cwd", default=None, help="working directory in the container")
@click.option("-e", "--env", multiple=True, help="KEY=VALUE to set (repeatable)")
@click.option("-u", "--user", default=None, help="UID[:GID]")
@click.option("-g", "--additional-gids", multiple=True, type=click.IntRange(0, 2147483647),
              help="additional gid (repeatable)")
@click.option("-c", "--cap", multiple=True, help="add a capability (repeatable)")
@click.option("--no-new-privs", is_flag=True, help="set no_new_privs")
@click.option("--apparmor", default=None, hidden=True)
@click.option("--process-label", default=None, hidden=True)
@click.option("--preserve-fds", default=0, type=click.IntRange(0, MAX_PRESERVE_FDS))
@click.option("--cgroup", "cgroups", multiple=True, metavar="[CTRL[,CTRL]:]PATH",
              help="run the process in an existing sub-cgroup of the container's (repeatable)")
@click.option("--ignore-paused", is_flag=True, help="exec into a paused container (the process "
              "waits, frozen, until resume)")
@click.argument("container_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def exec_(obj: Ctx, /, container_id: str, command: tuple[str, ...], process_file: str | None,
          detach: bool, pid_file: str | None, preserve_fds: int, cgroups: tuple[str, ...],
          ignore_paused: bool, **kw: Any) -> None:
    """Run a process in a running container."""
    from pyrunc.cli.execproc import build_process, sub_cgroups
    try:
        rt = obj.runtime()
        proc = build_process(rt, container_id, process_file, command, **kw)
        code = rt.exec(container_id, proc, detach, pid_file, preserve_fds, kw["console_socket"],
                       sub_cgroups(cgroups), ignore_paused)
    except PyruncError as exc:
        raise ExecFailed(f"exec failed: {exc.msg}", exc.errno) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise ExecFailed(f"exec failed: {exc.strerror or exc}{where}", exc.errno) from None
    sys.exit(code)


@cli.command(context_settings=CONTEXT)
@click.option("-b", "--bundle", default=".", help="where to write config.json")
@click.option("--rootless", is_flag=True, help="an example for a rootless container")
def spec(bundle: str, rootless: bool) -> None:
    """Write an example config.json into the bundle."""
    from pyrunc.spec.example import example
    path = os.path.join(bundle, "config.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise UsageError(f"File {path} exists. Remove it first") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        json.dump(example(rootless), f, indent=2)
        f.write("\n")


@cli.command(context_settings=CONTEXT)
def features() -> None:
    """Print what this runtime supports (runtime-spec features JSON)."""
    from pyrunc.features import features as report
    click.echo(json.dumps(report(), indent=2))


@cli.command("help", context_settings=CONTEXT)
@click.argument("topic", required=False)
@click.pass_context
def help_(ctx: click.Context, topic: str | None) -> None:
    """Show the commands, or one command's help (runc's `help [COMMAND]`)."""
    parent = ctx.parent
    assert parent is not None
    if topic is None:
        click.echo(cli.get_help(parent))
        return
    cmd = cli.get_command(parent, topic)
    if cmd is None:
        raise NoHelpTopic(f"No help topic for '{topic}'")
    with click.Context(cmd, info_name=topic, parent=parent) as sub:
        click.echo(cmd.get_help(sub))


def _not_yet(name: str, what: str) -> None:
    # help= (click reads the help when the command is made: a __doc__ set later never showed)
    @cli.command(name, context_settings={**CONTEXT, "ignore_unknown_options": True},
                 help=f"({what}: not supported yet)")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def _cmd(args: tuple[str, ...]) -> None:
        raise UnsupportedError(f"{name}: {what} is not supported by pyrunc yet")


_not_yet("checkpoint", "checkpointing (CRIU)")
_not_yet("restore", "restoring from a checkpoint (CRIU)")
from pyrunc.cli import cgroupcmds  # noqa: E402 - update, events
cgroupcmds.register(cli)


def main(argv: list[str] | None = None) -> NoReturn:
    """The click CLI (pyrunc.cli.entry tries the fast path first)."""
    try:
        _main(argv)
    except SystemExit as exc:
        leave(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
    leave(0)


def _main(argv: list[str] | None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    ctx: click.Context | None = None
    try:
        ctx = cli.make_context("pyrunc", list(args))  # click consumes the list it is given
        with ctx:
            cli.invoke(ctx)
        sys.exit(0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.ClickException, PyruncError, KeyboardInterrupt) as exc:
        logger = ctx.meta.get("logger") if ctx is not None else None
        if isinstance(exc, click.ClickException):
            msg = exc.format_message()
        elif isinstance(exc, PyruncError):
            msg = exc.msg
        else:
            msg = "interrupted"
        fail(logger or logger_from_argv(args), msg,
             exc.exit_code if isinstance(exc, PyruncError) else 1)
    except OSError as exc:
        # A host operation nobody wrapped with context: still one line, with the errno's text.
        logger = ctx.meta.get("logger") if ctx is not None else None
        where = f" ({exc.filename})" if exc.filename else ""
        fail(logger or logger_from_argv(args), f"{exc.strerror or exc}{where}")
    except Exception as exc:  # noqa: BLE001 - the edge: a bug still gets one line, not a traceback
        logger = ctx.meta.get("logger") if ctx is not None else None
        fail(logger or logger_from_argv(args), f"internal error: {type(exc).__name__}: {exc}")
