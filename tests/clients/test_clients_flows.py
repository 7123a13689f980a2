"""The everyday flows of ctr, docker and podman, each through the runtime under test.

These are the contracts that unit tests cannot see: the engines' own parsing of the runtime's
output, pid files, console sockets, exit statuses, log-file errors and state. Each test runs once per
engine (test_x[containerd], test_x[docker], test_x[podman]).
"""

from __future__ import annotations

import time

import pytest

from clients_adapters import Engine
from clients_support import (
    MEMORY_LIMIT_CMD,
    memory_limit_of,
    pid_alive,
    read_in_container,
    runtime_state,
    tty_text,
    wait_for,
)

pytestmark = pytest.mark.clients

# Init processes that stay up until killed. As pid 1 of its pid namespace, sh ignores SIGTERM unless
# it traps it, which is what the stop/kill tests rely on.
SLEEPER = ["sleep", "1000"]
# The count is renamed into place: frozen between truncate and write, a plain `echo >` would
# leave the file empty for as long as the container stays paused.
COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; "
           "mv /tmp/count.new /tmp/count; sleep 0.05; done"]
TERM_TRAP = ["sh", "-c", "trap 'exit 7' TERM; touch /tmp/ready; while :; do sleep 0.05; done"]


def _assert_runtime_used(engine: Engine) -> None:
    """Guard against a vacuous pass: the engine must have called OUR runtime in this test."""
    calls = engine.calls_since_start()
    if calls is None:
        return
    assert " create " in calls and " start " in calls, (
        f"{engine.name} never called create/start on {engine.runtime.path}: is it set up to use "
        f"another runtime?\ncalls recorded:\n{calls[-3000:]}")


def _counter(pid: int) -> int:
    """The COUNTER container's progress, read from the host (works while frozen)."""
    return int(wait_for(lambda: read_in_container(pid, "/tmp/count").strip(), 5, "the counter file"))


def test_run_rm_output(engine: Engine) -> None:
    """Foreground run: stdout and stderr reach the client separately, exit 0, nothing left behind."""
    name = engine.new_name("out")
    res = engine.run(name, ["sh", "-c", "echo hello-stdout; echo hello-stderr >&2"])
    assert res.returncode == 0, res.describe()
    assert "hello-stdout" in res.stdout, res.describe()
    assert "hello-stderr" in res.stderr, res.describe()
    assert not engine.exists(name), f"{engine.name} still lists {name} after run --rm"
    _assert_runtime_used(engine)


def test_run_stdin(engine: Engine) -> None:
    """Interactive run: the client's stdin is handed through the runtime to the container."""
    name = engine.new_name("stdin")
    res = engine.run(name, ["sh", "-c", "read line; echo got:$line"], input="piped-data\n")
    assert res.returncode == 0, res.describe()
    assert "got:piped-data" in res.stdout, res.describe()


@pytest.mark.parametrize("status", [3, 42])  # 0: test_run_rm_output
def test_exit_code(engine: Engine, status: int) -> None:
    """The container's exit status is the client's exit status (`sh -c 'exit 3'` -> 3)."""
    res = engine.run(engine.new_name("exit"), ["sh", "-c", f"exit {status}"])
    assert res.returncode == status, res.describe()


def test_run_tty(engine: Engine) -> None:
    """run -t: the runtime hands the engine a pty master over the console socket; the process sees a
    terminal on stdin and stdout, and its exit status still comes back.

    The process lingers after its output: podman 4.3 (Debian 12) sometimes loses what a tty
    container printed just before it exited (seen with runc too, about 1 run in 15)."""
    script = "test -t 0 && test -t 1 && echo is-a-tty; sleep 0.5; exit 5"
    res = engine.run(engine.new_name("tty"), ["sh", "-c", script], tty=True)
    out = tty_text(res.stdout)
    assert "is-a-tty" in out, res.describe()
    assert res.returncode == 5, res.describe()


def test_run_detached_exec(engine: Engine) -> None:
    """run -d then exec: output, exit status, and the exec joins the container (sees its pid 1)."""
    name = engine.new_name("exec")
    engine.run_detached(name, SLEEPER)
    engine.wait_running(name)
    res = engine.exec(name, ["sh", "-c", "echo exec-out; echo exec-err >&2; cat /proc/1/cmdline; exit 4"])
    assert res.returncode == 4, res.describe()
    assert "exec-out" in res.stdout, res.describe()
    assert "exec-err" in res.stderr, res.describe()
    assert "sleep" in res.stdout, f"exec did not see the container's pid 1:\n{res.describe()}"
    assert engine.status(name) == "running"


def test_exec_tty(engine: Engine) -> None:
    """exec -t: a pty for the exec'd process too (console socket on `exec`)."""
    name = engine.new_name("exectty")
    engine.run_detached(name, SLEEPER)
    engine.wait_running(name)
    res = engine.exec(name, ["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; exit 6"], tty=True)
    assert "is-a-tty" in tty_text(res.stdout), res.describe()
    assert res.returncode == 6, res.describe()


def test_pause_resume(engine: Engine) -> None:
    """pause freezes every process (the counter stops), both the engine and the runtime's `state`
    say paused; resume lets it go on."""
    name = engine.new_name("pause")
    engine.run_detached(name, COUNTER)
    pid = engine.wait_running(name)
    wait_for(lambda: _counter(pid) >= 2, 10, "the counter to move")

    engine.pause(name)
    assert engine.status(name) == "paused"
    state, res = engine.runtime_state(name)
    assert state is not None and state["status"] == "paused", res.describe()
    frozen = _counter(pid)
    time.sleep(0.5)  # ten counter periods
    assert _counter(pid) == frozen, "the container kept running while paused"

    engine.resume(name)
    assert engine.status(name) == "running"
    state, res = engine.runtime_state(name)
    assert state is not None and state["status"] == "running", res.describe()
    wait_for(lambda: _counter(pid) > frozen, 10, "the counter to move after resume")


def test_kill_term_trapped(engine: Engine) -> None:
    """kill TERM reaches pid 1, whose trap decides the exit status (7)."""
    name = engine.new_name("killterm")
    engine.run_detached(name, TERM_TRAP)
    pid = engine.wait_running(name)
    wait_for(lambda: read_in_container(pid, "/tmp/ready") == "", 10, "the trap to be set")
    engine.kill(name, "TERM")
    assert engine.wait_exit(name) == 7
    assert not pid_alive(pid)


def test_kill_kill(engine: Engine) -> None:
    """kill KILL ends even a pid 1 that ignores TERM: exit status 137, init gone, state stopped."""
    name = engine.new_name("killkill")
    engine.run_detached(name, SLEEPER)
    pid = engine.wait_running(name)
    engine.kill(name, "KILL")
    assert engine.wait_exit(name) == 137
    assert not pid_alive(pid)
    if engine.exists(name):
        state, res = engine.runtime_state(name)
        assert state is None or state["status"] == "stopped", res.describe()


def test_stop(engine: Engine) -> None:
    """stop: SIGTERM first (a trapping init exits 7 at once), SIGKILL after the grace period (137)."""
    engine.require("stop")
    trap = engine.new_name("stoptrap")
    stubborn = engine.new_name("stopkill")
    engine.run_detached(trap, TERM_TRAP)
    engine.run_detached(stubborn, SLEEPER)
    pid = engine.wait_running(trap)
    wait_for(lambda: read_in_container(pid, "/tmp/ready") == "", 10, "the trap to be set")
    engine.wait_running(stubborn)

    started = time.monotonic()
    engine.stop(trap, grace=20)
    assert time.monotonic() - started < 15, "stop waited for the grace period: SIGTERM was not delivered"
    assert engine.wait_exit(trap) == 7

    engine.stop(stubborn, grace=1)
    assert engine.wait_exit(stubborn) == 137
    assert engine.status(stubborn) == "stopped"


def test_rm_force(engine: Engine) -> None:
    """Force-removing a running container kills it and deletes it in the runtime as well."""
    name = engine.new_name("rm")
    engine.run_detached(name, SLEEPER)
    pid = engine.wait_running(name)
    rid, root = engine.runtime_id(name), engine.runtime_root()
    engine.remove(name)
    assert not engine.exists(name)
    wait_for(lambda: not pid_alive(pid), 10, f"init pid {pid} to go")
    state, res = runtime_state(engine.ns, engine.runtime, root, rid)
    assert state is None, f"the runtime still knows the removed container:\n{res.describe()}"
    assert "does not exist" in res.output, res.describe()


def test_update_memory(engine: Engine) -> None:
    """update --memory goes to the runtime's `update` and lands in the container's cgroup, seen from
    inside and from the host."""
    engine.require("update")
    name = engine.new_name("update")
    engine.run_detached(name, SLEEPER)
    pid = engine.wait_running(name)
    limit = 48 * 1024 * 1024
    engine.update_memory(name, limit)
    assert memory_limit_of(pid) == limit
    res = engine.exec(name, ["sh", "-c", MEMORY_LIMIT_CMD])
    assert res.returncode == 0 and res.stdout.strip() == str(limit), res.describe()


def test_top(engine: Engine) -> None:
    """docker top / ctr task ps / podman top list the container's processes (host pids): init and
    both children, all in init's cgroup."""
    name = engine.new_name("top")
    engine.run_detached(name, ["sh", "-c", "sleep 1001 & sleep 1002 & wait"])
    pid = engine.wait_running(name)

    def children() -> list[str]:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()

    kids = [int(k) for k in wait_for(lambda: children() if len(children()) >= 2 else [], 10, "the two sleeps")]
    pids = engine.top_pids(name)
    assert set([pid, *kids]) <= set(pids), f"top gave {pids}, expected init {pid} and children {kids}"
    with open(f"/proc/{pid}/cgroup") as f:
        init_cgroup = f.read()
    for p in pids:
        with open(f"/proc/{p}/cgroup") as f:
            assert f.read() == init_cgroup, f"pid {p} is not in the container's cgroups"


@pytest.mark.parametrize("missing", ["no-such-binary-xyz", "/no/such/dir/binary"])
def test_missing_binary(engine: Engine, missing: str) -> None:
    """A container whose entrypoint does not exist: the engine fails with the runtime's own message
    (taken from --log's last error line), engines that map it give 127, and nothing is left."""
    name = engine.new_name("missing")
    res = engine.run(name, [missing])
    assert res.returncode == engine.missing_binary_status, (
        f"{engine.name} derives its exit status from the runtime's message: it must contain the missing "
        f"name and 'no such file or directory' (or 'executable file not found')\n{res.describe()}")
    assert engine.create_failed_marker in res.output, res.describe()
    for marker in engine.runtime.missing_binary_markers(missing):
        assert marker in res.output, f"runtime's message ({marker!r}) not passed on:\n{res.describe()}"
    wait_for(lambda: not engine.exists(name), 10, f"{name} to be gone after a failed run --rm")


def test_shared_pid_children_die_with_init(engine: Engine) -> None:
    """--pid host: when the init exits, the engine's `kill --all ID 9` must kill the children
    it left in the container's cgroup (runc does; issue 16), so "late" is never printed."""
    engine.require("run_with")
    name = engine.new_name("pidhost")
    res = engine.run_with(name, ["sh", "-c", "(sleep 3; echo late) & echo init-exiting"],
                          "--pid", "host")
    assert res.returncode == 0, res.describe()
    assert "init-exiting" in res.stdout, res.describe()
    assert "late" not in res.stdout, res.describe()
    _assert_runtime_used(engine)


def test_tmpfs_copies_up_the_image(engine: Engine) -> None:
    """podman adds tmpcopyup to every tmpfs: `--tmpfs /etc` sees the image's /etc files, and
    `--read-only` (tmpfs on /tmp, /run, /var/tmp) runs with those writable (issue 16)."""
    engine.require("run_with")
    if engine.name != "podman":
        pytest.skip(f"{engine.name}'s --tmpfs asks for no tmpcopyup (an empty tmpfs, with runc too)")
    name = engine.new_name("tmpfs")
    res = engine.run_with(name, ["sh", "-c", "grep -c '^root:' /etc/passwd; "
                                 "grep ' /etc ' /proc/self/mounts | cut -d' ' -f3; "
                                 "echo new > /etc/new && cat /etc/new"], "--tmpfs", "/etc")
    assert res.returncode == 0, res.describe()
    assert res.stdout.split() == ["1", "tmpfs", "new"], res.describe()
    name = engine.new_name("readonly")
    res = engine.run_with(name, ["sh", "-c", "echo hi > /tmp/x && cat /tmp/x; "
                                 "touch /ro 2>/dev/null || echo ro"], "--read-only")
    assert res.returncode == 0, res.describe()
    assert res.stdout.split() == ["hi", "ro"], res.describe()
    _assert_runtime_used(engine)
