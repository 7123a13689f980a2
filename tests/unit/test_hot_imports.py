"""The commands engines call per container must stay light: a module that creeps back onto
their path (json, re, enum, typing, click, the spec model) costs every call milliseconds."""

from __future__ import annotations

import subprocess
from typing import Any
import sys

import pytest

HEAVY = ("json", "re", "enum", "typing", "click", "dataclasses", "shutil", "subprocess", "socket",
         "termios", "tty", "pyrunc.spec.config", "pyrunc.spec.schema", "pyrunc._native")

PROBE = """
import sys
from pyrunc.cli import fast
try:
    fast.run(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


# pause/resume: docker commit, docker rm -f of a paused container; kill --all: ctr task rm -f;
# ps --format json: docker top, ctr task ps. Through click each cost ~60 ms more CPU (here).
@pytest.mark.parametrize("argv", [["state", "c1"], ["start", "c1"], ["kill", "c1", "KILL"],
                                  ["delete", "c1"], ["delete", "--force", "c1"], ["pause", "c1"],
                                  ["resume", "c1"], ["kill", "--all", "c1", "9"],
                                  ["ps", "--format", "json", "c1"]],
                         ids=lambda a: " ".join(a))
def test_hot_commands_import_nothing_heavy(tmp_path: object, argv: list[str]) -> None:
    res = subprocess.run([sys.executable, "-I", "-c", PROBE, "--root", str(tmp_path), *argv],
                         capture_output=True, text=True, timeout=60)
    loaded = set(res.stdout.split())
    assert "pyrunc.runtime" in loaded, res  # the probe did reach the command
    assert sorted(loaded.intersection(HEAVY)) == []


CREATE_PATH = ("pyrunc.cli.fast", "pyrunc.runtime", "pyrunc.options", "pyrunc.spec.load",
               "pyrunc.spec.schema", "pyrunc.spec.fastcheck", "pyrunc.spec.patterns",
               "pyrunc.process.parent",
               "pyrunc.process.init", "pyrunc.process.hooks", "pyrunc.process.foreground",
               "pyrunc.linux.rootfs", "pyrunc.linux.capabilities", "pyrunc.linux.seccomp",
               "pyrunc.linux.terminal", "pyrunc.linux.network", "pyrunc.linux.idmap",
               "pyrunc.process.setns_init", "pyrunc.cgroups.v1", "pyrunc.cgroups.v2",
               "pyrunc.cgroups.resources", "pyrunc.cgroups.devices")


@pytest.mark.parametrize("module", ["typing", "socket", "json", "re", "enum", "signal",
                                    "collections", "functools", "termios", "tty", "_prctl",
                                    "resource"])
def test_create_path_does_not_import(module: str) -> None:
    """typing (with contextlib behind it) and its NamedTuple checks cost every create ~15 ms:
    the records come from pyrunc.records, annotations stay unevaluated. socket (its enums,
    selectors, array) costs create and exec 6-8 ms: pyrunc.unixsock uses _socket. re (with
    enum, functools and collections) costs ~9 ms, json ~4 ms more: configs are read with
    pyrunc.jsonio and the schema's patterns tested by pyrunc.spec.patterns. termios and tty
    (extension modules: ~1 ms of a run here) only with a terminal; python-prctl's _prctl (with
    libcap) and resource not at all (~1 ms): prctl, capset and prlimit are the C core's."""
    probe = (f"import sys\nfor m in {CREATE_PATH!r}:\n    __import__(m)\n"
             f"print({module!r} in sys.modules)")
    res = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_exec_with_a_process_file_skips_click(tmp_path: Any) -> None:
    """docker/podman/ctr exec (and every healthcheck) call `exec --process F --detach ...`:
    click's import was ~70 ms of its CPU here (126 -> 56 ms). The process model and its
    schema check are needed."""
    proc = tmp_path / "process.json"
    proc.write_text('{"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}')
    res = subprocess.run([sys.executable, "-I", "-c", PROBE, "--root", str(tmp_path), "exec",
                          "--process", str(proc), "--detach", "--pid-file", str(tmp_path / "p"),
                          "c1"], capture_output=True, text=True, timeout=60)
    loaded = set(res.stdout.split())
    assert "pyrunc.cli.execproc" in loaded, res  # the probe did reach the command
    assert sorted(loaded.intersection(HEAVY) - {"pyrunc.spec.config", "pyrunc.spec.schema",
                                                   "pyrunc._native"}) == []


def test_ioctl_numbers_are_termios_own() -> None:
    """The ioctl numbers written out to spare the hot paths `termios` are its values here."""
    import termios

    from pyrunc import runtime
    from pyrunc.linux import terminal
    assert runtime._FIONREAD == termios.FIONREAD
    assert (terminal.TIOCSCTTY, terminal.TIOCGWINSZ, terminal.TIOCSWINSZ) == \
        (termios.TIOCSCTTY, termios.TIOCGWINSZ, termios.TIOCSWINSZ)


def test_rlimit_numbers_are_resources_own() -> None:
    """The rlimit table written out to spare create `resource` has its names and numbers,
    and RLIMIT_LOCKS (10 in <asm-generic/resource.h>), which `resource` does not name."""
    import resource

    from pyrunc.spec.config import RLIMITS
    ours = dict(RLIMITS)
    assert ours.pop("RLIMIT_LOCKS") == 10
    assert ours == {n: getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")}
