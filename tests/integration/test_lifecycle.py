"""The container lifecycle as a caller drives it: run, create -> start -> kill -> delete,
the state JSON, the pid file, exit codes, signals, stdio passing and `list`."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import RFC3339_RE, Bundle, Runtime, cgroup_dirs, readline, wait_for

NOT_RUNNING_RE = re.compile(r"not running|no such process", re.I)
DOES_NOT_EXIST_RE = re.compile(r"does not exist|not exist|no such container", re.I)

#: sh that writes a marker into a bind-mounted host dir, then idles until TERM.
MARKER_SCRIPT = (
    "trap 'echo bye > /mnt/host/term; exit 0' TERM; "
    "echo started > /mnt/host/marker; "
    "while :; do sleep 0.05; done"
)


def _marker_bundle(sandbox: Sandbox) -> tuple[Path, Bundle]:
    host = sandbox.host_dir("marker")
    b = sandbox.bundle(
        ["sh", "-c", MARKER_SCRIPT],
        extra_mounts=[{"destination": "/mnt/host", "type": "bind", "source": str(host),
                       "options": ["rbind", "rw"]}],
    )
    return host, b


def _parse_created(value: str) -> dt.datetime:
    """RFC3339 (with nanoseconds, as Go prints it) -> aware datetime."""
    assert RFC3339_RE.match(value), f"created {value!r} is not RFC3339"
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$", value)
    assert m
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(m.group(1) + frac + tz)


def _pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


# --------------------------------------------------------------------------------------
# run


def test_run_stdout_is_container_stdout(sandbox: Sandbox) -> None:
    """`run` in the foreground: the container's stdout/stderr are the runtime's."""
    res = sandbox.sh("echo hello-out; echo hello-err >&2")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hello-out\n"
    assert "hello-err\n" in res.stderr


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_run_propagates_exit_code(sandbox: Sandbox, code: int) -> None:
    """The exit status of the container's process is the exit status of `run`."""
    res = sandbox.sh(f"exit {code}")
    assert res.returncode == code, res.stderr


def test_run_stdin_passed_through(sandbox: Sandbox) -> None:
    """Non-terminal `run` hands the caller's stdin, stdout and stderr to the container."""
    b = sandbox.bundle(["sh", "-c", "read line; echo got:$line; echo err:$line >&2"])
    res = sandbox.rt.run(b, sandbox.new_id(), input="ping\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "got:ping\n"
    assert "err:ping" in res.stderr


def test_run_killed_by_signal_exits_128_plus_signo(sandbox: Sandbox, rt: Runtime) -> None:
    """A container killed by SIGKILL makes foreground `run` exit 128+9."""
    b = sandbox.bundle(["sh", "-c", "echo ready; exec sleep 1000"])
    cid = sandbox.new_id()
    proc = rt.popen("run", "--bundle", str(b.path), cid)
    assert readline(proc.stdout) == "ready\n"
    rt.run_cmd("kill", cid, "KILL", check=True)
    assert proc.wait(timeout=10) == 128 + signal.SIGKILL


def test_run_forwards_signals(sandbox: Sandbox, rt: Runtime) -> None:
    """SIGTERM sent to the foreground runtime process reaches the container's init."""
    b = sandbox.bundle(["sh", "-c",
                        "trap 'echo got-TERM; exit 3' TERM; echo ready; "
                        "while :; do sleep 0.05; done"])
    proc = rt.popen("run", "--bundle", str(b.path), sandbox.new_id())
    assert readline(proc.stdout) == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert out == "got-TERM\n"
    assert proc.returncode == 3


def test_run_detach(sandbox: Sandbox, rt: Runtime) -> None:
    """`run --detach` returns at once with the container running; output goes to the
    stdio it was given."""
    b = sandbox.bundle(["sh", "-c", "echo detached-out; exec sleep 1000"])
    cid = sandbox.new_id()
    out_path = sandbox.tmp / "detach.out"
    with open(out_path, "w") as out:
        res = rt.run_cmd("run", "--detach", "--bundle", str(b.path), cid,
                         stdout=out, stderr=subprocess.DEVNULL, timeout=10)
    assert res.returncode == 0
    st = rt.state(cid)
    assert st["status"] == "running"
    assert _pid_alive(st["pid"])
    assert wait_for(lambda: out_path.read_text() == "detached-out\n")
    rt.run_cmd("kill", cid, "KILL", check=True)
    rt.wait_status(cid, "stopped")
    rt.run_cmd("delete", cid, check=True)


def test_run_pid_file(sandbox: Sandbox, rt: Runtime) -> None:
    """`run --pid-file` writes the init pid (digits only, no newline)."""
    b = sandbox.bundle(["sleep", "1000"])
    cid = sandbox.new_id()
    pid_file = sandbox.tmp / "run.pid"
    rt.run_cmd("run", "-d", "--pid-file", str(pid_file), "--bundle", str(b.path), cid,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    text = pid_file.read_text()
    assert re.fullmatch(r"[0-9]+", text), f"pid file content {text!r}"
    assert int(text) == rt.state(cid)["pid"]


# --------------------------------------------------------------------------------------
# create / start / kill / delete


CG2_ROOT = ("/", "sys", "fs", "cgroup")  # a pure v2 host's one hierarchy


def test_create_blocks_until_start(sandbox: Sandbox, rt: Runtime) -> None:
    """`create` sets the container up but does not run the user process until `start`;
    the state JSON and pid file describe the created container."""
    host, b = _marker_bundle(sandbox)
    cid = sandbox.new_id()
    pid_file = sandbox.tmp / "c.pid"
    before = dt.datetime.now(dt.timezone.utc)
    rt.create(b, cid, "--pid-file", str(pid_file), out_dir=sandbox.tmp)

    st = rt.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid
    assert st["bundle"] == str(b.path)
    assert isinstance(st["ociVersion"], str) and re.match(r"^\d+\.\d+\.\d+", st["ociVersion"])
    created = _parse_created(st["created"])
    assert before - dt.timedelta(seconds=5) <= created <= dt.datetime.now(dt.timezone.utc)
    text = pid_file.read_text()
    assert re.fullmatch(r"[0-9]+", text), f"pid file must be digits only, got {text!r}"
    assert int(text) == st["pid"]
    assert _pid_alive(st["pid"])

    time.sleep(0.3)
    assert not (host / "marker").exists(), "user process ran before start"

    # the init already sits in the configured cgroup (v1: one per controller; v2: the one)
    dirs = cgroup_dirs(b.cgroups_path)
    v2 = [d for d in dirs if (d / "cgroup.controllers").exists() and d.parts[:4] == CG2_ROOT]
    if v2 and len(dirs) == 1:
        assert {"memory", "pids", "cpu"} <= set((v2[0] / "cgroup.controllers").read_text().split())
        assert str(st["pid"]) in (v2[0] / "cgroup.procs").read_text().split(), v2[0]
    else:
        names = {d.parent.parent.name for d in dirs}
        for ctrl in ("memory", "pids", "devices", "freezer", "cpu"):
            assert ctrl in names, f"no {ctrl} cgroup at {b.cgroups_path}: {dirs}"
        for d in dirs:
            if d.parent.parent.name in ("memory", "pids", "devices", "freezer", "cpu"):
                assert str(st["pid"]) in (d / "cgroup.procs").read_text().split(), d

    res = rt.run_cmd("start", cid)
    assert res.returncode == 0, res.stderr
    assert wait_for(lambda: (host / "marker").exists())
    assert (host / "marker").read_text() == "started\n"
    assert rt.state(cid)["status"] == "running"


@pytest.mark.pyrunc_only  # runc 1.1.5 refuses to create a container without a process
def test_created_without_a_process_waits_then_start_refuses(sandbox: Sandbox, rt: Runtime) -> None:
    """The spec lets `create` do without a process (it is needed at `start`): the container
    stays created, its init waiting, until `start` refuses it in one line."""
    b = sandbox.bundle()
    del b.config["process"]
    b.write()
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    init = rt.state(cid)["pid"]
    time.sleep(0.3)  # an init that had nothing to wait for would be gone by now
    assert rt.state(cid)["status"] == "created"
    assert os.path.exists(f"/proc/{init}")
    res = rt.run_cmd("start", cid)
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1, res
    assert "process" in res.stderr, res.stderr
    rt.wait_status(cid, "stopped")
    rt.run_cmd("delete", cid, check=True)


def test_start_twice_fails(sandbox: Sandbox, rt: Runtime) -> None:
    """`start` is only valid on a created container."""
    b = sandbox.bundle(["sleep", "1000"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp)
    rt.run_cmd("start", cid, check=True)
    res = rt.run_cmd("start", cid)
    assert res.returncode != 0
    assert res.stderr.strip()
    assert rt.state(cid)["status"] == "running"


@pytest.mark.parametrize("sig", ["15", "TERM", "SIGTERM", "9", "KILL", "SIGKILL"])
def test_kill_then_delete(sandbox: Sandbox, rt: Runtime, sig: str) -> None:
    """created -> running -> stopped -> deleted, with every spelling of a signal."""
    host, b = _marker_bundle(sandbox)
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp)
    pid = rt.state(cid)["pid"]
    rt.run_cmd("start", cid, check=True)
    assert wait_for(lambda: (host / "marker").exists())
    assert rt.state(cid)["status"] == "running"

    res = rt.run_cmd("kill", cid, sig)
    assert res.returncode == 0, res.stderr
    rt.wait_status(cid, "stopped")
    if sig in ("15", "TERM", "SIGTERM"):
        assert (host / "term").read_text() == "bye\n", "SIGTERM did not reach the trap"
    else:
        assert not (host / "term").exists(), "SIGKILL was delivered as something else"
    assert not _pid_alive(pid)

    res = rt.run_cmd("delete", cid)
    assert res.returncode == 0, res.stderr
    res = rt.run_cmd("state", cid)
    assert res.returncode == 1
    assert DOES_NOT_EXIST_RE.search(res.stderr), res.stderr
    assert cid not in rt.list_ids()
    assert not (rt.root / cid).exists()
    assert cgroup_dirs(b.cgroups_path) == []


def test_kill_stopped_container_fails(sandbox: Sandbox, rt: Runtime) -> None:
    """Signalling a stopped container is an error that says it is not running."""
    b = sandbox.bundle(["true"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp)
    rt.run_cmd("start", cid, check=True)
    rt.wait_status(cid, "stopped")
    res = rt.run_cmd("kill", cid, "9")
    assert res.returncode != 0
    assert NOT_RUNNING_RE.search(res.stderr), res.stderr


def test_kill_unknown_container_fails(rt: Runtime) -> None:
    """`kill` of an id that was never created fails and says so."""
    res = rt.run_cmd("kill", "no-such-container", "KILL")
    assert res.returncode == 1
    assert DOES_NOT_EXIST_RE.search(res.stderr), res.stderr


def test_delete_running_needs_force(sandbox: Sandbox, rt: Runtime) -> None:
    """`delete` refuses a running container; `delete --force` kills and removes it."""
    b = sandbox.bundle(["sleep", "1000"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp)
    rt.run_cmd("start", cid, check=True)
    pid = rt.state(cid)["pid"]

    res = rt.run_cmd("delete", cid)
    assert res.returncode != 0
    assert res.stderr.strip()
    assert rt.state(cid)["status"] == "running"
    assert _pid_alive(pid)

    res = rt.run_cmd("delete", "--force", cid)
    assert res.returncode == 0, res.stderr
    assert wait_for(lambda: not _pid_alive(pid))
    assert rt.run_cmd("state", cid).returncode == 1
    assert cgroup_dirs(b.cgroups_path) == []


def test_delete_created_container(sandbox: Sandbox, rt: Runtime) -> None:
    """A created container can be deleted without ever running the user process."""
    host, b = _marker_bundle(sandbox)
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp)
    pid = rt.state(cid)["pid"]
    res = rt.run_cmd("delete", "--force", cid)
    assert res.returncode == 0, res.stderr
    assert wait_for(lambda: not _pid_alive(pid))
    assert rt.run_cmd("state", cid).returncode == 1
    assert not (host / "marker").exists(), "user process ran although never started"


def test_delete_created_container_without_force(sandbox: Sandbox, rt: Runtime) -> None:
    """runc's `delete` (no --force) of a created container kills the waiting init and removes
    the container, its cgroup with it; the user process never runs. A running one still
    needs --force."""
    host, b = _marker_bundle(sandbox)
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp)
    pid = rt.state(cid)["pid"]
    res = rt.run_cmd("delete", cid)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert not _pid_alive(pid)
    assert rt.run_cmd("state", cid).returncode == 1
    assert rt.list_ids() == []
    assert cgroup_dirs(b.cgroups_path) == []
    assert not (host / "marker").exists(), "user process ran although never started"
    b2 = sandbox.bundle(["sleep", "100"])
    cid2 = sandbox.new_id()
    rt.create(b2, cid2, out_dir=sandbox.tmp)
    rt.run_cmd("start", cid2, check=True)
    res = rt.run_cmd("delete", cid2)
    assert res.returncode == 1 and "running" in res.stderr, res.stderr
    assert rt.state(cid2)["status"] == "running"


def test_delete_force_unknown_id_succeeds(rt: Runtime) -> None:
    """`delete --force` of an id that does not exist is not an error (idempotent cleanup)."""
    res = rt.run_cmd("delete", "--force", "never-existed")
    assert res.returncode == 0, res.stderr


def test_delete_unknown_id_fails(rt: Runtime) -> None:
    """Plain `delete` of an unknown id fails with exit 1."""
    res = rt.run_cmd("delete", "never-existed")
    assert res.returncode == 1
    assert DOES_NOT_EXIST_RE.search(res.stderr), res.stderr


def test_state_unknown_id(rt: Runtime) -> None:
    """`state` of an unknown id: exit 1 and "does not exist"."""
    res = rt.run_cmd("state", "never-existed")
    assert res.returncode == 1
    assert DOES_NOT_EXIST_RE.search(res.stderr), res.stderr
    assert res.stdout.strip() == ""


def test_duplicate_id_refused(sandbox: Sandbox, rt: Runtime) -> None:
    """A second `create` with an id in use fails and leaves the first container alone."""
    b1 = sandbox.bundle(["sleep", "1000"])
    b2 = sandbox.bundle(["sleep", "1000"])
    cid = sandbox.new_id()
    rt.create(b1, cid, out_dir=sandbox.tmp / "1")
    first = rt.state(cid)
    res = rt.create(b2, cid, out_dir=sandbox.tmp / "2", check=False)
    assert res.returncode != 0
    assert res.stderr.strip()
    again = rt.state(cid)
    assert (again["pid"], again["bundle"], again["status"]) == (
        first["pid"], str(b1.path), "created")
    assert cgroup_dirs(b2.cgroups_path) == []


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", ".."])
def test_invalid_id_refused(sandbox: Sandbox, rt: Runtime, bad_id: str) -> None:
    """Ids that are not plain names are refused, and nothing is written outside --root."""
    b = sandbox.bundle(["true"])
    res = rt.create(b, bad_id, out_dir=sandbox.tmp / "out", check=False)
    assert res.returncode != 0
    assert not (rt.root.parent / "escape").exists()
    assert not (rt.root / "a").exists()
    assert cgroup_dirs(b.cgroups_path) == []


def test_create_stdio_passed_untouched(sandbox: Sandbox, rt: Runtime) -> None:
    """The stdio given to `create` become the container's: output written after `start`
    arrives on the pipe that was `create`'s stdout, and stdin is read from the caller's."""
    b = sandbox.bundle(["sh", "-c", "read line; echo out:$line; echo err:$line >&2"])
    cid = sandbox.new_id()
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe()
    err_path = sandbox.tmp / "create.err"
    try:
        with open(err_path, "w") as err:
            res = rt.run_cmd("create", "--bundle", str(b.path), cid,
                             stdin=in_r, stdout=out_w, stderr=err)
        os.close(out_w)
        out_w = -1
        os.close(in_r)
        in_r = -1
        assert res.returncode == 0, err_path.read_text()
        # nothing may arrive before start
        ready, _, _ = select.select([out_r], [], [], 0.2)
        assert not ready, "container wrote output before start"
        os.write(in_w, b"pong\n")
        os.close(in_w)
        in_w = -1
        rt.run_cmd("start", cid, check=True)
        chunks = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out_r], [], [], 0.5)
            if ready:
                data = os.read(out_r, 4096)
                if not data:
                    break
                chunks.append(data)
        assert b"".join(chunks) == b"out:pong\n"
        assert "err:pong" in err_path.read_text()
    finally:
        for fd in (out_r, out_w, in_r, in_w):
            if fd >= 0:
                os.close(fd)


# --------------------------------------------------------------------------------------
# list


def test_list_formats(sandbox: Sandbox, rt: Runtime) -> None:
    """`list` prints runc's table, `-q` only ids, `--format json` the states as an array."""
    b1 = sandbox.bundle(["sleep", "1000"])
    b2 = sandbox.bundle(["sleep", "1000"])
    c1, c2 = sandbox.new_id(), sandbox.new_id()
    rt.create(b1, c1, out_dir=sandbox.tmp)
    rt.create(b2, c2, out_dir=sandbox.tmp)
    rt.run_cmd("start", c2, check=True)
    states = {c1: rt.state(c1), c2: rt.state(c2)}
    pids = {cid: st["pid"] for cid, st in states.items()}
    expect = {c1: ("created", b1), c2: ("running", b2)}

    res = rt.run_cmd("list", check=True)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:] if ln.strip()}
    assert set(rows) == {c1, c2}
    for cid, row in rows.items():
        status, bundle = expect[cid]
        assert row == [cid, str(pids[cid]), status, str(bundle.path),
                       states[cid]["created"], "root"]
        assert RFC3339_RE.match(row[4]), row

    res = rt.run_cmd("list", "-q", check=True)
    assert sorted(res.stdout.split()) == sorted([c1, c2])

    res = rt.run_cmd("list", "--format", "json", check=True)
    data = json.loads(res.stdout)
    assert isinstance(data, list)
    by_id = {d["id"]: d for d in data}
    assert set(by_id) == {c1, c2}
    for cid, d in by_id.items():
        status, bundle = expect[cid]
        assert d["status"] == status
        assert d["pid"] == pids[cid]
        assert d["bundle"] == str(bundle.path)
        assert RFC3339_RE.match(d["created"])


def test_list_empty(rt: Runtime) -> None:
    """With no containers, `list` prints just the header and `-q` nothing."""
    res = rt.run_cmd("list", check=True)
    assert [ln.split() for ln in res.stdout.splitlines()] == [
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    assert rt.run_cmd("list", "-q", check=True).stdout.strip() == ""


@pytest.mark.runc_bug(reason="runc 1.1.5 prints `null` for an empty `list --format json`")
def test_list_empty_json_is_array(rt: Runtime) -> None:
    """`list --format json` is always a JSON array, so `jq '.[]'` works on an empty host."""
    res = rt.run_cmd("list", "--format", "json", check=True)
    assert json.loads(res.stdout) == []


def test_state_carries_annotations(sandbox: Sandbox, rt: Runtime) -> None:
    """The state JSON includes config.json's annotations (runtime-spec state.annotations)."""
    b = sandbox.bundle(["sleep", "1000"],
                       annotations={"org.example.key": "v1", "org.example.other": ""})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp)
    assert rt.state(cid)["annotations"] == {"org.example.key": "v1", "org.example.other": ""}
