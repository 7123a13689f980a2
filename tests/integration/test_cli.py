"""The command line as runc's users and tools drive it: what goes to stderr and --log (and at
which level), exit statuses, exec's flags, ps's pass-through, kill 0, list's JSON, help.

Each test runs the binary under test as a shell user would; run against runc too
(PYRUNC_BIN=/usr/sbin/runc): where Debian's runc 1.1 differs from current runc (1.5), the
test follows 1.5 and is marked runc_bug.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import CMD_TIMEOUT, Runtime, cgroup_dirs, wait_for


def raw(rt: Runtime, *args: str, timeout: float = CMD_TIMEOUT,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The runtime with only --root and the given words (no --log unless given): what a
    user at a shell types."""
    env = dict(os.environ)
    env["PYRUNC_TEST_SANDBOX"] = rt.sandbox_id
    return subprocess.run([rt.binary, "--root", str(rt.root), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


def levels(path: Path) -> list[str]:
    """The level of every JSON line of a --log file."""
    return [json.loads(line)["level"] for line in path.read_text().splitlines() if line.strip()]


# -- warnings, --debug, --log --------------------------------------------------------------


def test_runc_spec_config_runs_without_warnings(sandbox: Sandbox, rt: Runtime) -> None:
    """`runc spec`'s config (ambient capabilities that are not also inheritable) runs with
    nothing on stderr but the container's own output, and no warning in --log: runc accepts
    it silently, and a warning on every run teaches users to ignore warnings."""
    b = sandbox.bundle(["sh", "-c", "grep CapAmb /proc/self/status"])
    assert set(b.config["process"]["capabilities"]["ambient"]) - set(
        b.config["process"]["capabilities"].get("inheritable", []))
    log = sandbox.tmp / "plain.log"
    res = raw(rt, "--log", str(log), "--log-format", "json", "run", "--bundle", str(b.path),
              sandbox.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["CapAmb:", "0000000000000000"]  # the container's view
    assert res.stderr == ""
    assert "warning" not in levels(log), log.read_text()
    res = raw(rt, "run", "--bundle", str(b.path), sandbox.new_id())  # no --log: stderr
    assert (res.returncode, res.stderr) == (0, "")


def test_debug_lines_go_to_stderr_without_log(sandbox: Sandbox, rt: Runtime) -> None:
    """--debug without --log: runc-style `level=debug` text lines on stderr; without --debug
    none."""
    b = sandbox.bundle(["true"])
    res = raw(rt, "--debug", "run", "--bundle", str(b.path), sandbox.new_id())
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines, "--debug said nothing"
    for line in lines:
        assert re.match(r'^time="[^"]+" level=debug msg=".*"', line), line
    res = raw(rt, "run", "--bundle", str(b.path), sandbox.new_id())
    assert (res.returncode, res.stderr) == (0, "")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_lines_go_to_the_log_file(sandbox: Sandbox, rt: Runtime, fmt: str) -> None:
    """--debug --log FILE: the debug lines go to the file, in its format, not to stderr."""
    b = sandbox.bundle(["true"])
    log = sandbox.tmp / f"debug.{fmt}"
    res = raw(rt, "--debug", "--log", str(log), "--log-format", fmt, "run", "--bundle",
              str(b.path), sandbox.new_id())
    assert (res.returncode, res.stderr) == (0, "")
    lines = log.read_text().splitlines()
    assert lines
    for line in lines:
        if fmt == "json":
            entry = json.loads(line)
            assert entry["level"] == "debug" and entry["msg"] and entry["time"], entry
        else:
            assert re.match(r'^time="[^"]+" level=debug msg=".+"', line), line


def test_log_file_is_created_even_when_nothing_is_logged(sandbox: Sandbox, rt: Runtime) -> None:
    """--log FILE exists after a command that logged nothing (callers open it to read the
    last error, and an absent file is an error of its own)."""
    log = sandbox.tmp / "quiet.log"
    res = raw(rt, "--log", str(log), "list")
    assert res.returncode == 0, res.stderr
    assert log.exists() and log.read_text() == ""
    log2 = sandbox.tmp / "quiet2.log"
    res = raw(rt, "--log", str(log2), "--log-format", "json", "state", "nosuch")  # fast path
    assert res.returncode == 1
    assert levels(log2) == ["error"]
    log3 = sandbox.tmp / "quiet3.log"
    b = sandbox.bundle(["true"])
    res = raw(rt, "--log", str(log3), "--log-format", "json", "run", "--bundle", str(b.path),
              sandbox.new_id())
    assert res.returncode == 0 and log3.exists(), res.stderr


# -- exec ------------------------------------------------------------------------------------


def _running(sandbox: Sandbox, rt: Runtime, **overrides: object) -> str:
    """A started `sleep` container; returns its id."""
    b = sandbox.bundle(["sleep", "300"], **overrides)  # type: ignore[arg-type]
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    rt.wait_status(cid, "running")
    return cid


def test_failed_exec_exits_255(sandbox: Sandbox, rt: Runtime) -> None:
    """exec that cannot start its process: "exec failed: ..." and 255 (runc), which callers
    tell from the process's own status; the process's status still passes through."""
    cid = _running(sandbox, rt)
    res = rt.run_cmd("exec", cid, "/no/such/binary")
    assert res.returncode == 255, res
    assert res.stderr.startswith("exec failed: ") and len(res.stderr.splitlines()) == 1, res.stderr
    errors = [e["msg"] for e in rt.log_entries() if e["level"] == "error"]
    assert errors and errors[-1].startswith("exec failed: "), errors
    res = rt.run_cmd("exec", "nosuch", "true")  # no such container: still exec's failure
    assert res.returncode == 255 and "exec failed: " in res.stderr, res
    res = rt.run_cmd("exec", cid, "sh", "-c", "exit 7")
    assert res.returncode == 7, res
    res = rt.run_cmd("state", "nosuch")  # other commands' errors stay 1
    assert res.returncode == 1


def test_exec_into_a_paused_container(sandbox: Sandbox, rt: Runtime) -> None:
    """Paused: refused with runc's words; with --ignore-paused the process starts frozen,
    and runs (and exec returns its output) once the container is resumed."""
    cid = _running(sandbox, rt)
    rt.run_cmd("pause", cid, check=True)
    res = rt.run_cmd("exec", cid, "true")
    assert res.returncode == 255, res
    assert "cannot exec in a paused container (use --ignore-paused to override)" in res.stderr
    proc = rt.popen("exec", "--ignore-paused", cid, "sh", "-c", "echo ran-after-resume")
    time.sleep(1.0)
    assert proc.poll() is None, "the exec'd process ran in a frozen container"
    rt.run_cmd("resume", cid, check=True)
    out, err = proc.communicate(timeout=CMD_TIMEOUT)
    assert (proc.returncode, out) == (0, "ran-after-resume\n"), err


def test_a_created_container_can_be_paused(sandbox: Sandbox, rt: Runtime) -> None:
    """As runc: pause takes a created container too; it says paused (not created) until
    resumed, start is refused meanwhile, and once resumed it is created and starts."""
    b = sandbox.bundle(["sh", "-c", "echo started"])
    cid = sandbox.new_id()
    out = sandbox.tmp / "out"
    rt.create(b, cid, out_dir=out)
    rt.run_cmd("pause", cid, check=True)
    assert rt.state(cid)["status"] == "paused"
    # the kernel's word, not the state's: v1's freezer, or v2's (a hybrid host's unified
    # hierarchy has cgroup.freeze too, and v1 freezes the container)
    files = {f.name: f.read_text().strip() for d in cgroup_dirs(b.cgroups_path)
             for f in (d / "freezer.state", d / "cgroup.freeze") if f.exists()}
    assert files.get("freezer.state", files.get("cgroup.freeze")) in ("FROZEN", "1"), files
    res = rt.run_cmd("start", cid)
    assert res.returncode == 1 and "paused" in res.stderr, res
    rt.run_cmd("resume", cid, check=True)
    assert rt.state(cid)["status"] == "created"
    rt.run_cmd("start", cid, check=True)
    rt.wait_status(cid, "stopped")
    assert (out / f"{cid}.out").read_text() == "started\n"


def test_exec_into_a_stopped_container_is_refused(sandbox: Sandbox, rt: Runtime) -> None:
    b = sandbox.bundle(["true"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    rt.wait_status(cid, "stopped")
    res = rt.run_cmd("exec", cid, "true")
    assert res.returncode == 255
    assert "cannot exec in a stopped container" in res.stderr, res.stderr


# A detached process must not hold the runtime's stdout/stderr pipes open.
QUIET_SLEEP = ("sh", "-c", "exec sleep 300 >/dev/null 2>&1")


def _own_cgroup(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as {controllers: path} (the host's view)."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        out[ctrls] = path
    return out


def test_exec_cgroup_path_is_a_sub_cgroup_of_the_container(sandbox: Sandbox, rt: Runtime) -> None:
    """exec --cgroup sub: the process starts in the existing sub-cgroup `sub` of the
    container's cgroup, in every hierarchy; --cgroup CTRL:PATH moves only CTRL's."""
    b = sandbox.bundle(["sleep", "300"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    dirs = cgroup_dirs(b.cgroups_path)
    assert dirs
    for d in dirs:
        (d / "sub").mkdir(exist_ok=True)
        if (d / "sub" / "cpuset.cpus").exists():  # v1; on v2 the container's cgroup has
            for name in ("cpuset.cpus", "cpuset.mems"):  # processes: no controllers below it
                (d / "sub" / name).write_text((d / name).read_text().strip())
    pidfile = sandbox.tmp / "exec.pid"
    rt.run_cmd("exec", "-d", "--pid-file", str(pidfile), "--cgroup", "sub", cid,
               *QUIET_SLEEP, check=True)
    execd = [int(pidfile.read_text())]
    views = _own_cgroup(execd[0])
    mine = {k: v for k, v in views.items() if v.startswith(b.cgroups_path)}
    assert mine and all(v == b.cgroups_path + "/sub" for v in mine.values()), views
    if any(k and "memory" in k.split(",") for k in views):  # v1: one controller only
        pidfile.unlink()
        rt.run_cmd("exec", "-d", "--pid-file", str(pidfile), "--cgroup", "memory:/sub", cid,
                   *QUIET_SLEEP, check=True)
        execd.append(int(pidfile.read_text()))
        views = _own_cgroup(execd[-1])
        for ctrls, path in views.items():
            if not path.startswith(b.cgroups_path):
                continue
            want = b.cgroups_path + ("/sub" if "memory" in ctrls.split(",") else "")
            assert path == want, (ctrls, views)
    res = rt.run_cmd("exec", "--cgroup", "../../escape", cid, "true")
    assert res.returncode == 255 and "exec failed: " in res.stderr, res
    res = rt.run_cmd("exec", "--cgroup", "nosuch", cid, "true")
    assert res.returncode == 255 and "exec failed: " in res.stderr, res
    # `ps` and `kill --all` count the sub-cgroups' processes as the container's (runc's too).
    assert set(execd) <= set(json.loads(rt.run_cmd("ps", "-f", "json", cid, check=True).stdout))
    # The detached processes were reparented to us (a subreaper, as a shim is): reap them,
    # or the container's pid namespace cannot finish dying.
    for pid in execd:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    rt.run_cmd("delete", "--force", cid, check=True)
    for d in dirs:
        assert not d.exists(), f"{d} (with its sub-cgroup) outlived the container"


# -- ps, kill 0, list ------------------------------------------------------------------------


def test_ps_passes_options_after_the_id_to_ps(sandbox: Sandbox, rt: Runtime) -> None:
    """`ps ID -e -x`: the words after the id are ps(1)'s; the rows are the container's
    processes only (by host pid), under ps's own header; `-f json` is unchanged."""
    cid = _running(sandbox, rt)
    init = rt.state(cid)["pid"]
    res = rt.run_cmd("ps", cid, "-e", "-x")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[0] == "PID" and "STAT" in lines[0].split(), lines  # ps -x's header
    assert [int(ln.split()[0]) for ln in lines[1:]] == [init], lines
    assert "sleep 300" in lines[1]
    res = rt.run_cmd("ps", cid, "-o", "pid,comm")
    assert res.returncode == 0, res.stderr
    assert [ln.split() for ln in res.stdout.splitlines()] == [["PID", "COMMAND"], [str(init), "sleep"]]
    res = rt.run_cmd("ps", "--format", "json", cid)
    assert (res.returncode, json.loads(res.stdout)) == (0, [init]), res.stderr


def test_kill_signal_0_asks_whether_it_is_alive(sandbox: Sandbox, rt: Runtime) -> None:
    """`kill ID 0` and `kill --all ID 0`: exit 0 while the container runs, and it still runs;
    once it has stopped, "container not running" and 1."""
    cid = _running(sandbox, rt)
    pid = rt.state(cid)["pid"]
    for argv in (("kill", cid, "0"), ("kill", "--all", cid, "0"), ("kill", "-a", cid, "0")):
        res = rt.run_cmd(*argv)
        assert (res.returncode, res.stderr) == (0, ""), (argv, res)
    assert rt.state(cid)["status"] == "running" and Path(f"/proc/{pid}").exists()
    rt.run_cmd("kill", cid, "KILL", check=True)
    rt.wait_status(cid, "stopped")
    res = rt.run_cmd("kill", cid, "0")
    assert res.returncode == 1 and "not running" in res.stderr, res


def test_list_json_is_compact_like_runcs(sandbox: Sandbox, rt: Runtime) -> None:
    """`list --format json`: one line of compact JSON (no spaces after `,` and `:`), each
    entry with runc's fields in runc's order; `list -q` the ids alone."""
    b = sandbox.bundle(["sleep", "300"], annotations={"org.example": "a b"})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    res = rt.run_cmd("list", "--format", "json", check=True)
    assert res.stdout.endswith("\n") and res.stdout.count("\n") == 1, res.stdout
    data = json.loads(res.stdout)
    assert res.stdout.rstrip("\n") == json.dumps(data, separators=(",", ":"))
    assert [list(d) for d in data] == [["ociVersion", "id", "pid", "status", "bundle", "rootfs",
                                        "created", "annotations", "owner"]]
    assert data[0]["id"] == cid and data[0]["status"] == "created"
    assert data[0]["annotations"] == {"org.example": "a b"} and data[0]["owner"] == "root"
    assert rt.run_cmd("list", "-q", check=True).stdout == cid + "\n"


# -- help ----------------------------------------------------------------------------------

COMMANDS = ["checkpoint", "create", "delete", "events", "exec", "features", "kill", "list",
            "pause", "ps", "restore", "resume", "run", "spec", "start", "state", "update"]


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_on_every_command(rt: Runtime, flag: str) -> None:
    """`CMD -h` / `CMD --help`: usage on stdout naming the command, exit 0, nothing done."""
    for cmd in COMMANDS:
        res = raw(rt, cmd, flag)
        assert res.returncode == 0, (cmd, res)
        assert cmd in res.stdout and "usage" in res.stdout.lower(), (cmd, res.stdout)
    res = raw(rt, flag)
    assert res.returncode == 0 and all(c in res.stdout for c in COMMANDS), res.stdout
    # each with a line of its own saying what it does (checkpoint and restore had none)
    listed = {line.split()[0]: line.split()[1:] for line in res.stdout.splitlines()
              if line.startswith("  ") and line.split() and line.split()[0] in COMMANDS}
    assert set(listed) == set(COMMANDS) and all(listed.values()), listed


def test_help_command(rt: Runtime) -> None:
    """runc's `help` and `help CMD` (the same text as `CMD -h`); `help foo` as `foo -h`."""
    res = raw(rt, "help")
    assert res.returncode == 0 and all(c in res.stdout for c in COMMANDS), res
    for cmd in COMMANDS:
        res = raw(rt, "help", cmd)
        assert (res.returncode, res.stdout) == (0, raw(rt, cmd, "-h").stdout), (cmd, res)
    res = raw(rt, "help", "foo")
    assert res.returncode == 3 and "No help topic for 'foo'" in res.stderr, res


def test_unknown_command_answers_like_runc(rt: Runtime) -> None:
    """`foo -h`, `foo`: "No help topic for 'foo'", exit status 3 (runc's, from urfave/cli),
    with the error in --log as any other."""
    for argv in (("foo", "-h"), ("foo",), ("foo", "--help"), ("foo", "bar")):
        res = raw(rt, "--log", str(rt.log), "--log-format", "json", *argv)
        assert res.returncode == 3, (argv, res)
        assert "No help topic for 'foo'" in res.stderr and res.stdout == "", (argv, res)
    errors = [e["msg"].strip() for e in rt.log_entries() if e["level"] == "error"]
    assert errors == ["No help topic for 'foo'"] * 4, errors


# -- error words callers match ---------------------------------------------------------------


@pytest.mark.runc_bug(reason="runc 1.1 only warns about a non-empty cgroup (refused since 1.2)")
def test_cgroup_refusals_use_runcs_words(sandbox: Sandbox, rt: Runtime) -> None:
    """A cgroupsPath with processes in it: "container's cgroup is not empty"; a frozen one:
    "container's cgroup unexpectedly frozen" (what runc 1.2+ says, and callers match)."""
    from .test_hostile_cgroup import VictimCgroup
    victim = VictimCgroup()
    try:
        victim.add_process()
        b = sandbox.bundle(["true"], linux={"cgroupsPath": victim.path})
        res = rt.create(b, sandbox.new_id(), out_dir=sandbox.tmp / "out", check=False)
        assert res.returncode == 1
        assert "container's cgroup is not empty: 1 process(es) found" in res.stderr, res.stderr
        assert victim.victim_alive()
    finally:
        victim.cleanup()
    frozen = VictimCgroup()
    try:
        if not frozen.freeze():
            pytest.skip("no freezer on this host")
        b = sandbox.bundle(["true"], linux={"cgroupsPath": frozen.path})
        res = rt.create(b, sandbox.new_id(), out_dir=sandbox.tmp / "out", check=False, timeout=8)
        assert res.returncode == 1
        assert "container's cgroup unexpectedly frozen" in res.stderr, res.stderr
    finally:
        frozen.cleanup()


def test_unified_on_a_v1_host_is_an_invalid_configuration(sandbox: Sandbox, rt: Runtime) -> None:
    """linux.resources.unified on a cgroup v1 host: runc's "invalid configuration"."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("a cgroup v2 host")
    b = sandbox.bundle(["true"], linux={"resources": {"unified": {"memory.high": "max"}}})
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 1
    assert "invalid configuration" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_hook_killed_by_seccomp_says_bad_system_call(sandbox: Sandbox, rt: Runtime) -> None:
    """A hook that dies of a signal is worded as runc's: "error running ... hook ...:
    signal: bad system call" for one that seccomp (SIGSYS) killed."""
    b = sandbox.bundle(["true"], hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "kill -SYS $$"]}]})
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 1
    assert re.search(r"error running .*hook.*signal: bad system call", res.stderr), res.stderr
