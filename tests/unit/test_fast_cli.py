"""The click-free fast path must read every argv it takes exactly as the click CLI does."""

from __future__ import annotations

import itertools

import pytest

from pyrunc.cli import fast
from pyrunc.cli.main import cli

GLOBALS = [
    [], ["--root", "/r"], ["--root=/r"], ["--root", "/r", "--log", "/l.json", "--log-format", "json"],
    ["--log-format=json", "--log=/l"], ["--debug"], ["--systemd-cgroup", "--root", "/x"],
    ["--rootless", "false"], ["--criu", "criu"], ["--log-format", "text"],
]
COMMANDS = [
    ["state", "c1"], ["start", "c1"], ["kill", "c1"], ["kill", "c1", "9"], ["kill", "c1", "KILL"],
    ["kill", "c1", "SIGTERM"], ["delete", "c1"], ["delete", "--force", "c1"], ["delete", "-f", "c1"],
    ["delete", "c1", "--force"],
]
# Shapes the fast path must leave to click (it returns None for them).
DECLINED = [
    ["state"], ["state", "a", "b"], ["kill", "--all", "c1", "9"], ["kill", "-a", "c1"],
    ["--help"], ["state", "--help"], ["list"], ["create", "c1"], ["--log-format", "xml", "state", "c"],
    ["--root"], ["--version"], ["state", "--", "c1"], ["--unknown", "state", "c1"],
    ["kill", "c1", "9", "extra"], ["delete", "--force"],
]


def _click_reading(argv: list[str]) -> dict[str, object]:
    ctx = cli.make_context("pyrunc", list(argv))
    name, cmd, rest = cli.resolve_command(ctx, ctx.protected_args + ctx.args)
    assert cmd is not None and name is not None
    sub = cmd.make_context(name, rest, parent=ctx)
    return {"command": name, "root": ctx.params["root"], "log": ctx.params["log_path"],
            "log_format": ctx.params["log_format"], "debug": ctx.params["debug"],
            "id": sub.params["container_id"], "signal": sub.params.get("signal", "SIGTERM"),
            "force": sub.params.get("force", False)}


@pytest.mark.parametrize("argv", [g + c for g, c in itertools.product(GLOBALS, COMMANDS)],
                         ids=lambda a: " ".join(a))
def test_fast_path_reads_like_click(argv: list[str]) -> None:
    p = fast.parse(argv)
    assert p is not None, "a plain engine call must take the fast path"
    assert {"command": p.command, "root": p.root, "log": p.log, "log_format": p.log_format,
            "debug": p.debug, "id": p.container_id, "signal": p.signal,
            "force": p.force} == _click_reading(argv)


@pytest.mark.parametrize("argv", DECLINED, ids=lambda a: " ".join(a) or "empty")
def test_fast_path_declines_the_rest(argv: list[str]) -> None:
    assert fast.parse(argv) is None
