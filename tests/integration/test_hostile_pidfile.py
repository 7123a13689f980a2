"""The pid file in a directory others can write to (issue 15.10).

Another user of a world-writable directory can plant names there before the runtime
writes its pid file. The temp name must never be one it follows: each predictable name
(`init.pid.tmp<pid>`, what pyrunc used) is planted as a symlink, owned by uid 1000, to a
root-only file; the file must stay as it was and the pid file must be right.
"""

from __future__ import annotations

import os
from pathlib import Path

from .conftest import Sandbox
from .helpers import Runtime

SECRET = "root only, never to be written by the runtime\n"


def _plant(shared: Path, name: str, target: Path, count: int) -> None:
    """Symlinks `<name>.tmp<N>` -> target for the next `count` pids, owned by another user
    (in a world-writable directory without the sticky bit, protected_symlinks lets root follow
    them)."""
    last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    for pid in range(last + 1, last + count):
        link = shared / f"{name}.tmp{pid}"
        os.symlink(target, link)
        os.lchown(link, 1000, 1000)


def _shared_dir(sandbox: Sandbox) -> tuple[Path, Path]:
    shared = sandbox.tmp / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    target = sandbox.tmp / "root-only"
    target.write_text(SECRET)
    target.chmod(0o600)
    return shared, target


def test_create_pid_file_never_follows_a_planted_temp_name(sandbox: Sandbox, rt: Runtime) -> None:
    shared, target = _shared_dir(sandbox)
    _plant(shared, "init.pid", target, 3000)
    before = set(os.listdir(shared))
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    rt.create(b, cid, "--pid-file", str(shared / "init.pid"), out_dir=sandbox.tmp / "out")
    assert target.read_text() == SECRET, "the runtime wrote through a planted symlink"
    assert (shared / "init.pid").read_text() == str(rt.state(cid)["pid"])
    assert set(os.listdir(shared)) - before == {"init.pid"}, "a temp name was left behind"
    assert not (shared / "init.pid").is_symlink()


def test_exec_pid_file_never_follows_a_planted_temp_name(sandbox: Sandbox, rt: Runtime) -> None:
    shared, target = _shared_dir(sandbox)
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    _plant(shared, "exec.pid", target, 3000)
    before = set(os.listdir(shared))
    rt.run_cmd("exec", "-d", "--pid-file", str(shared / "exec.pid"), cid,
               "sh", "-c", "exec sleep 30 >/dev/null 2>&1", check=True)
    assert target.read_text() == SECRET, "the runtime wrote through a planted symlink"
    pid = int((shared / "exec.pid").read_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    assert set(os.listdir(shared)) - before == {"exec.pid"}
    res = rt.run_cmd("delete", "--force", cid)
    assert res.returncode == 0, res
