"""SIGKILL of the runtime process in the middle of create, start, exec and delete.

Each case starts one runtime command, kills that process (only it: not its process group)
either after a delay or the moment a marker appears (the state dir, state.json, the cgroup
dir, a process in the cgroup, the exec fifo, a hook running), lets what is left settle, and
then checks:

- `state` tells the truth: "does not exist" only if nothing of the container runs; else a
  status that matches the kernel (created: the runtime's init waits; running: the
  container's own process runs; stopped: no process left in its cgroup); never "creating"
  once no runtime works on it;
- `delete --force` succeeds and removes everything: no state dir, cgroup, mount, process
  (runc 1.1.5 leaves the cgroup behind when killed early in create);
- afterwards `state` says it does not exist.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox
from .helpers import Bundle, Runtime, cgroup_dirs, reap_children, wait_for

ARGS = ["sleep", "60"]


# --------------------------------------------------------------------------------------
# observing the truth


def cgroup_pids(b: Bundle) -> set[int]:
    """Live (non-zombie) processes in any of the bundle's cgroup directories."""
    pids: set[int] = set()
    for d in cgroup_dirs(b.cgroups_path):
        try:
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return {p for p in pids if _alive(p)}


def _alive(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def settle(b: Bundle, quiet: float = 0.3, timeout: float = 5.0) -> None:
    """Reap what we inherited and wait until the cgroup's population stops changing."""
    deadline = time.monotonic() + timeout
    last: set[int] | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        reap_children()
        now = cgroup_pids(b)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.02)


def assert_state_truthful(rt: Runtime, cid: str, b: Bundle, args: list[str] = ARGS,
                          allow_creating: bool = False) -> str:
    """`state` agrees with the kernel; returns the status ("" when it does not exist)."""
    res = rt.run_cmd("state", cid, timeout=15)
    live = cgroup_pids(b)
    if res.returncode != 0:
        assert "does not exist" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
        assert not live, f"state says {cid} does not exist, but {sorted(live)} run in its cgroup"
        return ""
    st = json.loads(res.stdout)
    status, pid = st["status"], st["pid"]
    allowed = {"created", "running", "stopped", "paused"} | ({"creating"} if allow_creating else set())
    assert status in allowed, f"status {status!r} with no runtime at work: {st}"
    if status in ("created", "running", "paused"):
        assert pid > 0 and _alive(pid), f"{status} but pid {pid} is not alive: {st}"
        assert pid in live, f"{status} but pid {pid} is not in the container's cgroup {sorted(live)}"
        cmd = _cmdline(pid)
        if status == "created":
            assert cmd != args, f"'created' but the container process already runs: {cmd}"
        elif status == "running":
            assert cmd == args, f"'running' but pid {pid} runs {cmd}, not {args}"
    elif status == "stopped":
        assert not live, f"'stopped' but {sorted(live)} still run in its cgroup ({[_cmdline(p) for p in live]})"
    return str(status)


def reap_adopted(keep: set[int]) -> None:
    """Reap our zombie children except `keep` (Popen objects we still mean to wait for:
    reaping those behind subprocess's back would make it report exit status 0)."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in keep:
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] == b"Z" and fields[1].decode() == me:
            try:
                os.waitpid(int(entry), os.WNOHANG)
            except ChildProcessError:
                pass


def wait_reaping(procs: list[Any], timeout: float = 60) -> None:
    """Wait for runtime commands while reaping the container processes that were
    reparented to us (the suite is a subreaper, as a shim is): a pid namespace cannot finish
    dying while one of its processes waits for its parent to reap it."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs):
        reap_adopted({p.pid for p in procs})
        if time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise AssertionError(f"runtime commands did not finish in {timeout}s")
        time.sleep(0.01)


def run_reaping(rt: Runtime, *args: str, timeout: float = 30) -> tuple[int, str]:
    proc = rt.popen(*args)
    wait_reaping([proc], timeout)
    _, err = proc.communicate()
    return proc.returncode, err


def assert_force_delete_cleans(sandbox: Sandbox, rt: Runtime, cid: str, b: Bundle) -> None:
    code, err = run_reaping(rt, "delete", "--force", cid)
    assert code == 0, f"delete --force failed: {err!r}"
    after = rt.run_cmd("state", cid)
    assert after.returncode == 1 and "does not exist" in after.stderr, after
    assert not (rt.root / cid).exists()
    assert cgroup_dirs(b.cgroups_path) == [], "delete --force left the cgroup"
    leaks = sandbox.leaks(settle=3.0)
    assert not leaks, leaks.report()


# --------------------------------------------------------------------------------------
# killing the runtime


def kill_runtime(rt: Runtime, argv: list[str], out: Path, *, delay: float | None = None,
                 marker: Callable[[], bool] | None = None) -> bool:
    """Start `argv`, SIGKILL the runtime process after `delay` seconds or when `marker()`
    turns true. Returns whether it was still running when killed (False: it had finished;
    the case then checks a completed command, which must hold too)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "killed.out", "w") as so, open(out / "killed.err", "w") as se:
        proc = rt.popen(*argv, stdout=so, stderr=se)
    if marker is not None:
        assert wait_for(lambda: marker() or proc.poll() is not None, timeout=20, interval=0.001), \
            "the marker never appeared"
    else:
        assert delay is not None
        time.sleep(delay)
    running = proc.poll() is None
    if running:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)
    return running


def _hook(marker: Path, go: Path) -> dict[str, Any]:
    """A hook that says it runs (marker) and waits until the test lets it go."""
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f"touch {marker}; while [ ! -e {go} ]; do sleep 0.02; done"]}


def _state_pid(rt: Runtime, cid: str) -> int:
    try:
        return int(json.loads((rt.root / cid / "state.json").read_text()).get("pid") or 0)
    except (OSError, ValueError):
        return 0


# --------------------------------------------------------------------------------------
# create

# Kill points as fractions of how long the command takes here (measured once, with the
# machine's load at the time), so the sweep covers the whole command on a fast or slow host.
CREATE_FRACTIONS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9]
LATER_FRACTIONS = [0.0, 0.3, 0.6, 0.9]
_TYPICAL: dict[str, float] = {}


def typical(sandbox: Sandbox, rt: Runtime, command: str) -> float:
    """Seconds one `create`, `start`, `exec` or `delete --force` takes (measured once)."""
    if not _TYPICAL:
        b = sandbox.bundle(ARGS, name="timing")
        cid = sandbox.new_id()
        t0 = time.monotonic()
        rt.create(b, cid, out_dir=sandbox.tmp / "timing")
        t1 = time.monotonic()
        rt.run_cmd("start", cid, check=True)
        t2 = time.monotonic()
        rt.run_cmd("exec", cid, "true", check=True)
        t3 = time.monotonic()
        rt.run_cmd("delete", "--force", cid, check=True)
        t4 = time.monotonic()
        _TYPICAL.update(create=t1 - t0, start=t2 - t1, exec=t3 - t2, delete=t4 - t3)
    return _TYPICAL[command]


def _pct(fractions: list[float]) -> list[str]:
    return [f"{int(f * 100)}pct" for f in fractions]


def _create_case(sandbox: Sandbox, rt: Runtime, b: Bundle, cid: str, **how: Any) -> None:
    kill_runtime(rt, ["create", "--bundle", str(b.path), cid], sandbox.tmp / "kill", **how)


@pytest.mark.parametrize("fraction", CREATE_FRACTIONS, ids=_pct(CREATE_FRACTIONS))
def test_kill_create_after_delay(sandbox: Sandbox, rt: Runtime, fraction: float) -> None:
    delay = fraction * typical(sandbox, rt, "create")
    b = sandbox.bundle(ARGS)
    cid = sandbox.new_id()
    _create_case(sandbox, rt, b, cid, delay=delay)
    settle(b)
    assert_state_truthful(rt, cid, b)
    assert_force_delete_cleans(sandbox, rt, cid, b)


CREATE_MARKERS: dict[str, Callable[[Runtime, str, Bundle], bool]] = {
    "state-dir": lambda rt, cid, b: (rt.root / cid).exists(),
    "state-json": lambda rt, cid, b: (rt.root / cid / "state.json").exists(),
    "cgroup-dir": lambda rt, cid, b: bool(cgroup_dirs(b.cgroups_path)),
    "cgroup-populated": lambda rt, cid, b: bool(cgroup_pids(b)),
    "two-in-cgroup": lambda rt, cid, b: len(cgroup_pids(b)) >= 2,
    "exec-fifo": lambda rt, cid, b: (rt.root / cid / "exec.fifo").exists(),
    "pid-recorded": lambda rt, cid, b: _state_pid(rt, cid) > 0,
}


@pytest.mark.parametrize("marker", list(CREATE_MARKERS))
def test_kill_create_at_marker(sandbox: Sandbox, rt: Runtime, marker: str) -> None:
    b = sandbox.bundle(ARGS)
    cid = sandbox.new_id()
    _create_case(sandbox, rt, b, cid, marker=lambda: CREATE_MARKERS[marker](rt, cid, b))
    settle(b)
    assert_state_truthful(rt, cid, b)
    assert_force_delete_cleans(sandbox, rt, cid, b)


@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_kill_create_during_hook(sandbox: Sandbox, rt: Runtime, phase: str) -> None:
    """Deterministic points: the runtime (prestart, createRuntime) or the init
    (createContainer) is running a hook when the runtime is killed."""
    marker, go = sandbox.tmp / "hook-running", sandbox.tmp / "hook-go"
    b = sandbox.bundle(ARGS, hooks={phase: [_hook(marker, go)]})
    cid = sandbox.new_id()
    try:
        _create_case(sandbox, rt, b, cid, marker=marker.exists)
    finally:
        go.touch()
    settle(b)
    assert_state_truthful(rt, cid, b)
    assert_force_delete_cleans(sandbox, rt, cid, b)


# --------------------------------------------------------------------------------------
# start, exec, delete

def _created(sandbox: Sandbox, rt: Runtime, args: list[str] = ARGS, **kw: Any) -> tuple[Bundle, str]:
    b = sandbox.bundle(args, **kw)
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    return b, cid


def _running(sandbox: Sandbox, rt: Runtime) -> tuple[Bundle, str]:
    b, cid = _created(sandbox, rt)
    rt.run_cmd("start", cid, check=True)
    rt.wait_status(cid, "running")
    return b, cid


@pytest.mark.parametrize("fraction", LATER_FRACTIONS, ids=_pct(LATER_FRACTIONS))
def test_kill_start(sandbox: Sandbox, rt: Runtime, fraction: float) -> None:
    delay = fraction * typical(sandbox, rt, "start")
    b, cid = _created(sandbox, rt)
    kill_runtime(rt, ["start", cid], sandbox.tmp / "kill", delay=delay)
    settle(b)
    status = assert_state_truthful(rt, cid, b)
    assert status in ("created", "running", "stopped"), status
    if status == "created":  # the start never happened: it can still be done
        rt.run_cmd("start", cid, check=True, timeout=15)
        rt.wait_status(cid, "running")
    assert_force_delete_cleans(sandbox, rt, cid, b)


def test_kill_start_when_container_process_runs(sandbox: Sandbox, rt: Runtime) -> None:
    """Killed the moment the container's own process is running (the init has exec'd):
    status must say running, not created, and a second start must not hang."""
    b, cid = _created(sandbox, rt)
    pid = rt.state(cid)["pid"]
    kill_runtime(rt, ["start", cid], sandbox.tmp / "kill",
                 marker=lambda: _cmdline(pid) == ARGS)
    settle(b)
    assert assert_state_truthful(rt, cid, b) == "running"
    res = rt.run_cmd("start", cid, timeout=15)
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1, res
    assert_force_delete_cleans(sandbox, rt, cid, b)


@pytest.mark.parametrize("fraction", LATER_FRACTIONS, ids=_pct(LATER_FRACTIONS))
def test_kill_exec(sandbox: Sandbox, rt: Runtime, fraction: float) -> None:
    delay = fraction * typical(sandbox, rt, "exec")
    b, cid = _running(sandbox, rt)
    kill_runtime(rt, ["exec", cid, "sleep", "30"], sandbox.tmp / "kill", delay=delay)
    settle(b)
    assert assert_state_truthful(rt, cid, b) == "running"
    res = rt.run_cmd("exec", cid, "true", timeout=15)  # the container still works
    assert res.returncode == 0, res.stderr
    assert_force_delete_cleans(sandbox, rt, cid, b)


def test_kill_exec_when_process_joined(sandbox: Sandbox, rt: Runtime) -> None:
    b, cid = _running(sandbox, rt)
    kill_runtime(rt, ["exec", cid, "sleep", "30"], sandbox.tmp / "kill",
                 marker=lambda: len(cgroup_pids(b)) >= 2)
    settle(b)
    assert assert_state_truthful(rt, cid, b) == "running"
    assert_force_delete_cleans(sandbox, rt, cid, b)


@pytest.mark.parametrize("fraction", LATER_FRACTIONS, ids=_pct(LATER_FRACTIONS))
def test_kill_delete(sandbox: Sandbox, rt: Runtime, fraction: float) -> None:
    delay = fraction * typical(sandbox, rt, "delete")
    b, cid = _running(sandbox, rt)
    kill_runtime(rt, ["delete", "--force", cid], sandbox.tmp / "kill", delay=delay)
    settle(b)
    assert_state_truthful(rt, cid, b)
    assert_force_delete_cleans(sandbox, rt, cid, b)


DELETE_MARKERS: dict[str, Callable[[Runtime, str, Bundle, int], bool]] = {
    "init-gone": lambda rt, cid, b, pid: not _alive(pid),
    "cgroup-gone": lambda rt, cid, b, pid: not cgroup_dirs(b.cgroups_path),
}


@pytest.mark.parametrize("marker", list(DELETE_MARKERS))
def test_kill_delete_at_marker(sandbox: Sandbox, rt: Runtime, marker: str) -> None:
    b, cid = _running(sandbox, rt)
    pid = rt.state(cid)["pid"]
    kill_runtime(rt, ["delete", "--force", cid], sandbox.tmp / "kill",
                 marker=lambda: DELETE_MARKERS[marker](rt, cid, b, pid))
    settle(b)
    assert_state_truthful(rt, cid, b)
    assert_force_delete_cleans(sandbox, rt, cid, b)


def test_kill_run_foreground(sandbox: Sandbox, rt: Runtime) -> None:
    """`run` in the foreground killed once its container runs: the container is left (as
    with runc), state says so, and delete --force cleans up."""
    b = sandbox.bundle(ARGS)
    cid = sandbox.new_id()
    kill_runtime(rt, ["run", "--bundle", str(b.path), cid], sandbox.tmp / "kill",
                 marker=lambda: any(_cmdline(p) == ARGS for p in cgroup_pids(b)))
    settle(b)
    assert_state_truthful(rt, cid, b)
    assert_force_delete_cleans(sandbox, rt, cid, b)



def _holder_of(path: Path) -> int:
    """The one process that has `path` open."""
    target = str(path)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if any(os.readlink(f) == target for f in (d / "fd").iterdir()):
                    return int(d.name)
            except OSError:
                continue
    raise AssertionError(f"nobody holds {path} open")


def test_kill_start_after_the_init_took_the_go_byte(sandbox: Sandbox, rt: Runtime) -> None:
    """The one window of `start` a timed kill rarely hits, made deterministic: the runtime
    has written the go byte into the exec fifo, the init has got it (through the fifo's
    relay) and exec'd the container's process, and the runtime dies before it removes the
    fifo. The relay (the fifo's reader) is held with SIGSTOP until the byte is written, then
    the runtime is held while the init goes. `state` must then say running (the
    container's process runs), not created."""
    b, cid = _created(sandbox, rt)
    init = rt.state(cid)["pid"]
    fifo = rt.root / cid / "exec.fifo"
    relay = _holder_of(fifo)
    probe = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a second reader, to see the byte

    def pending() -> int:
        return int(struct.unpack("i", fcntl.ioctl(probe, termios.FIONREAD, b"\0" * 4))[0])

    starter = None
    try:
        os.kill(relay, signal.SIGSTOP)
        out = sandbox.tmp / "kill"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "start.out", "w") as so, open(out / "start.err", "w") as se:
            starter = rt.popen("start", cid, stdout=so, stderr=se)
        assert wait_for(lambda: pending() > 0 or starter.poll() is not None, timeout=20)
        os.kill(starter.pid, signal.SIGSTOP)
        os.kill(relay, signal.SIGCONT)
        assert wait_for(lambda: _cmdline(init) == ARGS, timeout=20), _cmdline(init)
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait(timeout=20)
    finally:
        os.close(probe)
        os.kill(relay, signal.SIGCONT)
        if starter is not None and starter.poll() is None:
            os.kill(starter.pid, signal.SIGKILL)
            starter.wait(timeout=20)
    settle(b)
    assert assert_state_truthful(rt, cid, b) == "running"
    res = rt.run_cmd("start", cid, timeout=15)
    assert res.returncode == 1 and "running" in res.stderr, res
    assert_force_delete_cleans(sandbox, rt, cid, b)
