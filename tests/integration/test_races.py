"""Concurrent runtime commands on one container id.

- ten `create` of one id at once: exactly one wins, the nine others exit 1 saying the id
  exists, and none of them leaves a process, cgroup or state behind;
- `kill`, `delete`, `delete --force` and `state` at once on a running container: every
  command answers cleanly (exit 0, or 1 with one line), `state` never reads a corrupt or
  half-written state, and the container ends fully deleted;
- `create` racing `delete --force`/`state`/`kill` of the same id: afterwards the
  container either exists and `state` tells the truth, or does not exist and nothing of it
  runs; `delete --force` then leaves nothing;
- five `start` of one created container: its process runs exactly once.
"""

from __future__ import annotations

import pytest

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


from .conftest import Sandbox
from .helpers import Runtime, cgroup_dirs, sandbox_pids, wait_for
from .test_crashes import (ARGS, assert_force_delete_cleans, assert_state_truthful, cgroup_pids,
                           settle, wait_reaping)

BAD_WORDS = ("internal error", "Traceback", "corrupt", "Errno")


def _launch(rt: Runtime, out: Path, name: str, *args: str) -> tuple[subprocess.Popen[str], Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    so, se = out / f"{name}.out", out / f"{name}.err"
    with open(so, "w") as fo, open(se, "w") as fe:
        proc = rt.popen(*args, stdout=fo, stderr=fe)
    return proc, so, se


def _wait_all(procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    wait_reaping(procs, timeout)


def _check_answer(args: tuple[str, ...], code: int, out: str, err: str) -> None:
    assert code in (0, 1), f"{args}: exit {code}, stderr {err!r}"
    if code == 1:
        assert len(err.splitlines()) == 1, f"{args}: stderr is not one line: {err!r}"
        for word in BAD_WORDS:
            assert word not in err, f"{args}: {err!r}"
    if args[0] == "state" and code == 0:
        st = json.loads(out)
        assert st["status"] in ("creating", "created", "running", "stopped", "paused"), st


def test_ten_concurrent_creates_of_one_id(sandbox: Sandbox, rt: Runtime) -> None:
    """Each racer has its own bundle (own cgroupsPath), so a loser that got as far as
    making a cgroup would show."""
    bundles = [sandbox.bundle(ARGS) for _ in range(10)]
    cid = sandbox.new_id()
    out = sandbox.tmp / "racers"
    racers = [_launch(rt, out, f"c{i}", "create", "--bundle", str(b.path), cid)
              for i, b in enumerate(bundles)]
    _wait_all([p for p, _, _ in racers])
    codes = [p.returncode for p, _, _ in racers]
    assert codes.count(0) == 1, f"exit codes {codes}: not exactly one winner"
    winner = codes.index(0)
    for i, (p, _, se) in enumerate(racers):
        if i == winner:
            continue
        err = se.read_text()
        assert p.returncode == 1 and len(err.splitlines()) == 1, (p.returncode, err)
        assert "exists" in err and cid in err, err
    settle(bundles[winner])
    st = rt.state(cid)
    assert st["status"] == "created" and st["bundle"] == str(bundles[winner].path), st
    assert cgroup_pids(bundles[winner]) == {st["pid"]}
    for i, b in enumerate(bundles):
        if i != winner:
            assert cgroup_dirs(b.cgroups_path) == [], f"loser {i} left a cgroup"
    assert sandbox_pids(sandbox.id, sandbox.tmp) == [st["pid"]], "a loser left a process"
    assert [p.name for p in rt.root.iterdir()] == [cid]
    assert_force_delete_cleans(sandbox, rt, cid, bundles[winner])


def _storm(rt: Runtime, out: Path, commands: list[tuple[str, ...]]) -> list[tuple[tuple[str, ...], int, str, str]]:
    random.shuffle(commands)
    launched = [(args, *_launch(rt, out, f"s{i}", *args)) for i, args in enumerate(commands)]
    _wait_all([p for _, p, _, _ in launched])
    results = []
    for args, p, so, se in launched:
        results.append((args, p.returncode, so.read_text(), se.read_text()))
        _check_answer(args, p.returncode, so.read_text(), se.read_text())
    return results


def test_concurrent_kill_delete_state_on_a_running_container(sandbox: Sandbox, rt: Runtime) -> None:
    for rnd in range(3):
        b = sandbox.bundle(ARGS)
        cid = sandbox.new_id()
        rt.create(b, cid, out_dir=sandbox.tmp / "out")
        rt.run_cmd("start", cid, check=True)
        rt.wait_status(cid, "running")
        commands: list[tuple[str, ...]] = (
            [("kill", cid, "KILL")] * 3 + [("delete", "--force", cid)] * 3
            + [("state", cid)] * 4 + [("delete", cid)] * 2)
        results = _storm(rt, sandbox.tmp / f"storm{rnd}", commands)
        forced = [code for args, code, _, _ in results if args[:2] == ("delete", "--force")]
        assert forced == [0, 0, 0], results
        settle(b)
        assert assert_state_truthful(rt, cid, b) == "", "the container survived delete --force"
        assert not (rt.root / cid).exists()
        assert cgroup_dirs(b.cgroups_path) == []
        leaks = sandbox.leaks(settle=2.0)
        assert not leaks, leaks.report()


def test_create_races_delete_state_and_kill(sandbox: Sandbox, rt: Runtime) -> None:
    """`create` launched, then (after 0 to 150 ms) three `delete --force`, two `state` and a
    `kill` of the same id. Whatever order they ran in, the end is consistent."""
    b = sandbox.bundle(ARGS)
    for rnd, stagger in enumerate([0.0, 0.02, 0.05, 0.08, 0.12, 0.15]):
        cid = sandbox.new_id()
        out = sandbox.tmp / f"race{rnd}"
        creator = _launch(rt, out, "create", "create", "--bundle", str(b.path), cid)
        time.sleep(stagger)
        commands: list[tuple[str, ...]] = ([("delete", "--force", cid)] * 3 + [("state", cid)] * 2
                                           + [("kill", cid, "KILL")])
        others = [(args, *_launch(rt, out, f"o{i}", *args)) for i, args in enumerate(commands)]
        _wait_all([creator[0]] + [p for _, p, _, _ in others])
        _check_answer(("create",), creator[0].returncode, "", creator[2].read_text())
        for args, p, so, se in others:
            _check_answer(args, p.returncode, so.read_text(), se.read_text())
        settle(b)
        status = assert_state_truthful(rt, cid, b)
        if status == "":
            assert not (rt.root / cid).exists(), "state says no container, but its state dir is there"
        assert_force_delete_cleans(sandbox, rt, cid, b)


def test_concurrent_starts_run_the_process_once(sandbox: Sandbox, rt: Runtime) -> None:
    marker = sandbox.host_dir("marker")
    b = sandbox.bundle(["sh", "-c", "echo ran >> /marker/count; exec sleep 60"],
                       extra_mounts=[{"destination": "/marker", "type": "bind",
                                      "source": str(marker), "options": ["rbind"]}])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    starters = [_launch(rt, sandbox.tmp / "starts", f"s{i}", "start", cid) for i in range(5)]
    _wait_all([p for p, _, _ in starters])
    codes = [p.returncode for p, _, _ in starters]
    assert codes.count(0) == 1, f"exit codes {codes}"
    for p, _, se in starters:
        _check_answer(("start",), p.returncode, "", se.read_text())
    st = rt.wait_status(cid, "running")
    time.sleep(0.2)
    assert (marker / "count").read_text() == "ran\n"
    assert cgroup_pids(b) == {st["pid"]}
    assert_force_delete_cleans(sandbox, rt, cid, b)




def _hook(marker: Path, go: Path, code: int) -> dict[str, Any]:
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f"touch {marker}; while [ ! -e {go} ]; do sleep 0.02; done; exit {code}"]}


def _blocked_on_flock(pid: int) -> bool:
    with open("/proc/locks") as f:
        return any("-> FLOCK" in line and f" {pid} " in line for line in f)


def test_delete_waiting_on_a_replaced_state_dir_respects_the_new_create(sandbox: Sandbox,
                                                                        rt: Runtime) -> None:
    """A `delete --force` that queued on the lock of a create which then failed (and removed
    its state dir) must not act on the state dir of the NEXT create of that id, which it has
    not locked: that create holds its own lock and must finish undisturbed.

    Made deterministic with hooks that hold each create at a known point, and SIGSTOP to
    keep the queued delete from taking the lock until the second create is under way."""
    m1, go1, m2, go2 = (sandbox.tmp / n for n in ("m1", "go1", "m2", "go2"))
    failing = sandbox.bundle(ARGS, hooks={"prestart": [_hook(m1, go1, 1)]})
    second = sandbox.bundle(ARGS, hooks={"prestart": [_hook(m2, go2, 0)]})
    cid = sandbox.new_id()
    out = sandbox.tmp / "stale"
    deleter = None
    try:
        first = _launch(rt, out, "first", "create", "--bundle", str(failing.path), cid)
        assert wait_for(m1.exists, timeout=20), "first create never reached its hook"
        deleter = _launch(rt, out, "delete", "delete", "--force", cid)
        assert wait_for(lambda: _blocked_on_flock(deleter[0].pid), timeout=20), \
            "delete did not queue on the container's lock"
        os.kill(deleter[0].pid, signal.SIGSTOP)
        go1.touch()
        wait_reaping([first[0]], timeout=30)
        assert first[0].returncode == 1, first[2].read_text()
        assert not (rt.root / cid).exists()

        nxt = _launch(rt, out, "second", "create", "--bundle", str(second.path), cid)
        assert wait_for(m2.exists, timeout=20), "second create never reached its hook"
        os.kill(deleter[0].pid, signal.SIGCONT)
        time.sleep(1.0)  # a correct delete now waits for the second create's lock
        go2.touch()
        wait_reaping([nxt[0], deleter[0]], timeout=30)
    finally:
        for f in (go1, go2):
            f.touch()
        if deleter is not None and deleter[0].poll() is None:
            os.kill(deleter[0].pid, signal.SIGCONT)
    assert deleter[0].returncode == 0, deleter[2].read_text()
    assert nxt[0].returncode == 0, (
        f"the second create was sabotaged by a delete that held the lock of the first "
        f"create's removed state dir: {nxt[2].read_text()!r}")
    settle(second)
    assert_state_truthful(rt, cid, second)
    assert_force_delete_cleans(sandbox, rt, cid, second)
