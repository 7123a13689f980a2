"""linux.intelRdt's resctrl writing, against a directory laid out like /sys/fs/resctrl (this
host has no resctrl; the integration corpus checks the refusal there). The stand-in for the
kernel does what resctrl does on mkdir (fills the group with schemata, tasks, mon_groups/)
and on rmdir (removes it with its files)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrunc.errors import SpecError, SystemError_
from pyrunc.linux import intelrdt
from pyrunc.spec.config import IntelRdt


def _kernel_mkdir(path: str, mode: int = 0o777) -> None:
    os.mkdir(path, mode)
    for name in ("schemata", "tasks"):
        Path(path, name).write_text("")
    if Path(path).parent.name != "mon_groups":
        os.mkdir(os.path.join(path, "mon_groups"))


@pytest.fixture
def resctrl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "resctrl"
    root.mkdir()
    (root / "schemata").write_text("L3:0=fff\nMB:0=100\n")
    (root / "tasks").write_text("1\n")
    (root / "info").mkdir()
    monkeypatch.setattr(intelrdt, "_mkdir", _kernel_mkdir)
    monkeypatch.setattr(intelrdt, "_rmdir", shutil.rmtree)
    return root


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_new_group_gets_schemata_task_and_monitoring(resctrl: Path) -> None:
    rdt = IntelRdt("gold", ("L3:0=f0", "MB:0=50"), True)
    pid = _dead_pid()  # as at delete: a live task would keep the group (in use)
    made = intelrdt.apply(rdt, "c1", pid, root=str(resctrl))
    assert (resctrl / "gold" / "schemata").read_text() == "L3:0=f0\nMB:0=50\n"
    assert (resctrl / "gold" / "tasks").read_text() == str(pid)
    assert (resctrl / "gold" / "mon_groups" / "c1" / "tasks").read_text() == str(pid)
    assert made == [str(resctrl / "gold" / "mon_groups" / "c1"), str(resctrl / "gold")]
    intelrdt.remove(made)
    assert not (resctrl / "gold").exists()


def test_group_named_after_the_container_without_closid(resctrl: Path) -> None:
    made = intelrdt.apply(IntelRdt(None, ("MB:0=30",), False), "c2", 7, root=str(resctrl))
    assert made == [str(resctrl / "c2")]
    assert (resctrl / "c2" / "schemata").read_text() == "MB:0=30\n"


def test_existing_group_joined_unchanged_and_kept(resctrl: Path) -> None:
    _kernel_mkdir(str(resctrl / "shared"))
    (resctrl / "shared" / "schemata").write_text("    L3:0=00f\n    MB:0= 40\n")
    made = intelrdt.apply(IntelRdt("shared", ("L3:0=00f", "MB:0=40"), False), "c3", 9,
                          root=str(resctrl))
    assert made == []
    assert (resctrl / "shared" / "tasks").read_text() == "9"
    assert (resctrl / "shared" / "schemata").read_text() == "    L3:0=00f\n    MB:0= 40\n"


def test_existing_group_with_other_schemata_refused(resctrl: Path) -> None:
    _kernel_mkdir(str(resctrl / "shared"))
    (resctrl / "shared" / "schemata").write_text("MB:0=40\n")
    with pytest.raises(SpecError, match="the existing group 'shared' has MB:0=40, not MB:0=90"):
        intelrdt.apply(IntelRdt("shared", ("MB:0=90",), False), "c4", 9, root=str(resctrl))
    assert (resctrl / "shared" / "tasks").read_text() == ""


def test_failure_removes_what_it_made(resctrl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def mkdir_no_mon(path: str, mode: int = 0o777) -> None:
        if Path(path).parent.name == "mon_groups":
            raise OSError(28, "No space left on device")  # out of RMIDs
        _kernel_mkdir(path, mode)
    monkeypatch.setattr(intelrdt, "_mkdir", mkdir_no_mon)
    with pytest.raises(Exception, match="monitoring group"):
        intelrdt.apply(IntelRdt("g", (), True), "c5", 9, root=str(resctrl))
    assert not (resctrl / "g").exists()


@pytest.mark.parametrize("clos", ["info", "..", "a/b", "mon_groups"])
def test_closid_that_cannot_be_a_group(resctrl: Path, clos: str) -> None:
    with pytest.raises(SpecError, match="cannot name a resctrl group"):
        intelrdt.apply(IntelRdt(clos, (), False), "c6", 9, root=str(resctrl))


def test_no_resctrl_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=f"no resctrl at {tmp_path}"):
        intelrdt.apply(IntelRdt("g", (), False), "c7", 9, root=str(tmp_path))


@pytest.mark.parametrize("clos", ["a\nb", "a\0b", "x" * 256, "../tasks"])
def test_closid_refused_by_the_converter(clos: str) -> None:
    """Before anything is made (the group is made after the init exists), in one line: a
    newline was resctrl's EINVAL printed with the path over two lines, a NUL an internal
    error (ValueError) (review rev18)."""
    from pyrunc.spec.config import _intel_rdt
    with pytest.raises(SpecError, match="linux.intelRdt.closID: .* cannot name a resctrl group") as e:
        _intel_rdt({"closID": clos})
    assert "\n" not in str(e.value)


def test_closid_naming_a_root_file_refused(resctrl: Path) -> None:
    with pytest.raises(SpecError, match="a file of .* has that name"):
        intelrdt.apply(IntelRdt("tasks", ("MB:0=10",), False), "c8", 9, root=str(resctrl))


def test_mkdir_refusal_is_one_line_error(resctrl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_closid_left(path: str, mode: int = 0o777) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(intelrdt, "_mkdir", no_closid_left)
    with pytest.raises(SystemError_, match="cannot make the resctrl group .*/g"):
        intelrdt.apply(IntelRdt("g", (), False), "c9", 9, root=str(resctrl))


def test_group_made_by_closid_left_while_another_container_uses_it(resctrl: Path) -> None:
    """Container A makes group 'gold', container B joins it by the same closID; deleting A
    must not rmdir 'gold' (resctrl would move B's tasks to the default group). The group
    goes with the last of them (review rev18)."""
    a, b = _dead_pid(), os.getpid()  # A's init is gone at its delete, B's lives
    made_a = intelrdt.apply(IntelRdt("gold", ("MB:0=50",), False), "ca", a, root=str(resctrl))
    assert intelrdt.apply(IntelRdt("gold", ("MB:0=50",), False), "cb", b, root=str(resctrl)) == []
    (resctrl / "gold" / "tasks").write_text(f"{a}\n{b}\n")
    intelrdt.remove(made_a)
    assert (resctrl / "gold" / "tasks").read_text() == f"{a}\n{b}\n"
    (resctrl / "gold" / "tasks").write_text(f"{a}\n")  # B gone too (a dead pid may linger)
    intelrdt.remove(made_a)
    assert not (resctrl / "gold").exists()


def test_a_task_named_by_bytes_that_are_not_utf8_still_counts(resctrl: Path) -> None:
    """A container's process names itself (prctl PR_SET_NAME, or a binary so named) with
    bytes that are not UTF-8: /proc/PID/stat shows them, and reading it as UTF-8 made delete
    fail with 'internal error: UnicodeDecodeError' while the group was still in use."""
    made = intelrdt.apply(IntelRdt("gold", ("MB:0=50",), False), "c1", _dead_pid(),
                          root=str(resctrl))
    rename = ("import ctypes, sys; ctypes.CDLL(None).prctl(15, b'\\xff\\xfe', 0, 0, 0); "
              "sys.stdin.read()")  # PR_SET_NAME
    proc = subprocess.Popen([sys.executable, "-c", rename], stdin=subprocess.PIPE)
    try:
        for _ in range(500):
            if Path(f"/proc/{proc.pid}/comm").read_bytes() == b"\xff\xfe\n":
                break
            time.sleep(0.01)
        (resctrl / "gold" / "tasks").write_text(f"{proc.pid}\n")
        intelrdt.remove(made)  # in use: kept
        assert (resctrl / "gold").exists()
    finally:
        proc.communicate(b"", timeout=30)
    intelrdt.remove(made)
    assert not (resctrl / "gold").exists()
