"""The click-free fast path must read every argv it takes exactly as the click CLI does."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from pyrunc.cli import fast
from pyrunc.cli.main import cli

GLOBALS = [
    [], ["--root", "/r"], ["--root=/r"], ["--root", "/r", "--log", "/l.json", "--log-format", "json"],
    ["--log-format=json", "--log=/l"], ["--debug"], ["--systemd-cgroup", "--root", "/x"],
    ["--rootless", "false"], ["--rootless", "true"], ["--rootless=auto"], ["--criu", "criu"],
    ["--log-format", "text"],
]
COMMANDS = [
    ["state", "c1"], ["start", "c1"], ["kill", "c1"], ["kill", "c1", "9"], ["kill", "c1", "KILL"],
    ["kill", "c1", "SIGTERM"], ["delete", "c1"], ["delete", "--force", "c1"], ["delete", "-f", "c1"],
    ["delete", "c1", "--force"], ["pause", "c1"], ["resume", "c1"], ["kill", "--all", "c1", "9"],
    ["kill", "-a", "c1"], ["kill", "c1", "KILL", "--all"], ["kill", "-a", "c1", "SIGKILL"],
    ["ps", "--format", "json", "c1"], ["ps", "-f", "json", "c1"], ["ps", "--format=json", "c1"],
]
# Shapes the fast path must leave to click (it returns None for them).
DECLINED = [
    ["state"], ["state", "a", "b"], ["pause"], ["resume", "a", "b"], ["pause", "--help"],
    ["ps", "c1"], ["ps", "--format", "table", "c1"], ["ps", "--format", "json", "c1", "-e"],
    ["ps", "c1", "--format", "json"], ["ps", "--format", "json"], ["ps", "-f=json", "c1"],
    ["kill", "--all"], ["kill", "-a", "--", "c1"],
    ["--help"], ["state", "--help"], ["list"], ["--log-format", "xml", "state", "c"],
    ["--root"], ["--version"], ["state", "--", "c1"], ["--unknown", "state", "c1"],
    ["--rootless", "yes", "state", "c1"],
    ["kill", "c1", "9", "extra"], ["delete", "--force"],
]


def _click_parse(argv: list[str]) -> tuple[Any, str, Any]:
    """click's contexts for argv: the global one, the command's name, the command's."""
    ctx = cli.make_context("pyrunc", list(argv))
    name, cmd, rest = cli.resolve_command(ctx, ctx.protected_args + ctx.args)
    assert cmd is not None and name is not None
    return ctx, name, cmd.make_context(name, rest, parent=ctx)


def _click_reading(argv: list[str]) -> dict[str, object]:
    ctx, name, sub = _click_parse(argv)
    return {"command": name, "root": ctx.params["root"], "log": ctx.params["log_path"],
            "log_format": ctx.params["log_format"], "debug": ctx.params["debug"],
            "rootless": ctx.params["rootless"], "id": sub.params["container_id"], "signal": sub.params.get("signal", "SIGTERM"),
            "force": sub.params.get("force", False), "all": sub.params.get("all_procs", False)}


@pytest.mark.parametrize("argv", [g + c for g, c in itertools.product(GLOBALS, COMMANDS)],
                         ids=lambda a: " ".join(a))
def test_fast_path_reads_like_click(argv: list[str]) -> None:
    p = fast.parse(argv)
    assert p is not None, "a plain engine call must take the fast path"
    assert {"command": p.command, "root": p.root, "log": p.log, "log_format": p.log_format,
            "debug": p.debug, "rootless": p.rootless, "id": p.container_id, "signal": p.signal,
            "force": p.force, "all": p.all_procs} == _click_reading(argv)
    if p.command == "ps":
        assert _click_parse(argv)[2].params["fmt"] == "json" and not _click_parse(argv)[2].params["ps_args"]


CREATES = [
    ["create", "c1"], ["create", "--bundle", "/b", "c1"], ["create", "-b", "/b", "c1"],
    ["create", "--bundle=/b", "--pid-file", "/p", "c1"], ["create", "c1", "--bundle", "/b"],
    ["create", "--bundle", "/b", "--pid-file=/p", "--console-socket", "/s", "--no-pivot",
     "--no-new-keyring", "--preserve-fds", "2", "c1"],
    ["create", "--bundle", "/a", "--bundle", "/b", "c1"], ["create", "--preserve-fds=0", "c1"],
    ["run", "c1"], ["run", "-d", "--bundle", "/b", "c1"], ["run", "--detach", "--keep", "c1"],
    ["run", "--keep", "-b", "/b", "--pid-file", "/p", "c1"], ["run", "c1", "-d"],
]
CREATE_GLOBALS = [[], ["--root", "/r"], ["--log=/l", "--log-format", "json", "--debug"],
                  ["--rootless", "false"], ["--rootless", "true"]]
# create/run shapes left to click: its errors, refusals and unusual spellings.
DECLINED_CREATES = [
    ["create"], ["create", "a", "b"], ["create", "--bundle"], ["create", "-b/b", "c1"],
    ["create", "-b=/b", "c1"], ["create", "--preserve-fds", "x", "c1"],
    ["create", "--preserve-fds", "-1", "c1"], ["create", "--no-pivot=1", "c1"],
    ["create", "--", "c1"], ["create", "--help"], ["create", "-d", "c1"],
    ["run", "-dk", "c1"], ["--systemd-cgroup", "create", "c1"],
    ["create", "--unknown", "c1"], ["run", "--detach=true", "c1"],
]


def _click_create_reading(argv: list[str]) -> dict[str, object]:
    ctx, name, sub = _click_parse(argv)
    return {"command": name, "root": ctx.params["root"], "log": ctx.params["log_path"],
            "log_format": ctx.params["log_format"], "debug": ctx.params["debug"],
            "id": sub.params["container_id"], "bundle": sub.params["bundle"],
            "pid_file": sub.params["pid_file"], "console_socket": sub.params["console_socket"],
            "no_pivot": sub.params["no_pivot"], "no_new_keyring": sub.params["no_new_keyring"],
            "preserve_fds": sub.params["preserve_fds"],
            "detach": sub.params.get("detach", False), "keep": sub.params.get("keep", False)}


@pytest.mark.parametrize("argv", [g + c for g, c in itertools.product(CREATE_GLOBALS, CREATES)],
                         ids=lambda a: " ".join(a))
def test_fast_create_and_run_read_like_click(argv: list[str]) -> None:
    p = fast.parse(argv)
    assert p is not None, "a plain engine call must take the fast path"
    defaults: dict[str, object] = {"bundle": ".", "pid_file": None, "console_socket": None,
                                   "no_pivot": False, "no_new_keyring": False, "preserve_fds": 0}
    assert {"command": p.command, "root": p.root, "log": p.log, "log_format": p.log_format,
            "debug": p.debug, "id": p.container_id, **defaults, **p.options,
            "detach": p.detach, "keep": p.keep} == _click_create_reading(argv)


@pytest.mark.parametrize("argv", DECLINED_CREATES, ids=lambda a: " ".join(a))
def test_fast_create_declines_the_rest(argv: list[str]) -> None:
    assert fast.parse(argv) is None


@pytest.mark.parametrize("argv", DECLINED, ids=lambda a: " ".join(a) or "empty")
def test_fast_path_declines_the_rest(argv: list[str]) -> None:
    assert fast.parse(argv) is None


EXECS = [
    ["exec", "--process", "/p.json", "--detach", "--pid-file", "/pid", "c1"],
    ["exec", "--pid-file", "/pid", "--process", "/p.json", "--detach", "--tty",
     "--console-socket", "/s", "c1"],
    ["exec", "--process=/p.json", "-d", "-t", "--pid-file=/pid", "c1"], ["exec", "--process", "/p", "c1"],
]
# exec shapes left to click: a command, the flags that change the process, misuse, -p's spellings.
DECLINED_EXECS = [
    ["exec", "c1", "sh"], ["exec", "--process", "/p", "c1", "sh"], ["exec", "--process"],
    ["exec", "--process", "/p"], ["exec", "-e", "A=b", "--process", "/p", "c1"],
    ["exec", "--process", "/p", "--cwd", "/x", "c1"], ["exec", "-p", "/p", "c1"],
    ["exec", "--process", "/p", "--", "c1"], ["exec", "--help"], ["exec", "--detach", "c1"],
    ["exec", "--process", "/p", "--ignore-paused", "c1"], ["exec", "--process", "/p", "--cgroup", "x", "c1"],
    ["exec", "--process", "/p", "--preserve-fds", "1", "c1"], ["exec", "--process", "", "c1"],
]


@pytest.mark.parametrize("argv", [g + c for g, c in itertools.product(CREATE_GLOBALS, EXECS)],
                         ids=lambda a: " ".join(a))
def test_fast_exec_reads_like_click(argv: list[str]) -> None:
    p = fast.parse(argv)
    assert p is not None, "the engines' exec must take the fast path"
    ctx, name, sub = _click_parse(argv)
    assert (name, sub.params["container_id"], sub.params["command"]) == ("exec", p.container_id, ())
    assert (ctx.params["root"], ctx.params["log_path"], ctx.params["log_format"],
            ctx.params["debug"]) == (p.root, p.log, p.log_format, p.debug)
    assert {k: sub.params[k] for k in ("process_file", "pid_file", "console_socket", "detach",
                                       "tty")} == {"pid_file": None, "console_socket": None,
                                                   "detach": False, "tty": False, **p.options}
    assert p.detach == sub.params["detach"]
    assert sub.params["preserve_fds"] == 0 and not sub.params["ignore_paused"]
    assert not any(sub.params[k] for k in ("env", "user", "cwd", "cap", "cgroups", "additional_gids"))


@pytest.mark.parametrize("argv", DECLINED_EXECS, ids=lambda a: " ".join(a))
def test_fast_exec_declines_the_rest(argv: list[str]) -> None:
    assert fast.parse(argv) is None
