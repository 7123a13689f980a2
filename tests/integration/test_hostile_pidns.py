"""A container that shares its pid namespace with another's setup, and may ptrace.

With CAP_SYS_PTRACE (and no user namespace of its own) a container passes
`ptrace_may_access` for every process of its pid namespace, non-dumpable or not: it can
open /proc/PID/root, cwd, fd/* and environ of anything the runtime puts there. So no
runtime process may become visible in a pid namespace a container can see while its root,
cwd, environment or any fd is the host's (issue 15, items 2 and 5); and nothing a waiting
init holds may let such a container start it early (item 12).

Each test runs a probe container A granted CAP_SYS_PTRACE; the host makes a marker file
that exists only on the host (and runs the runtime from the marker's directory, so a cwd
inherited from the runtime would show it) and a variable that exists only in the runtime's
environment. The probe loops over /proc and reports any process through which it reads
either. Loops are bounded in count and time.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import DEFAULT_CAPS, Bundle, Runtime, reap_children, wait_for

PTRACE_CAPS = [*DEFAULT_CAPS, "CAP_SYS_PTRACE"]
SECRET_VAR = "PYRUNC_TEST_HOST_ONLY"

# Inside A (busybox sh). Every process but the probe's own shell is tried; SEEN counts those
# still running the runtime's code (comm pyrunc/python*), to show the window was observed.
PROBE = r"""
me=$$
seen=" "
while [ ! -e /dev/shm/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$me" ] && continue
    c=$(cat $d/comm 2>/dev/null) || continue
    case "$c" in pyrunc|python*)
      case "$seen" in *" $p "*) ;; *) seen="$seen$p "; echo "SEEN $p $c" ;; esac ;;
    esac
    cat "$d/root$MARKER" "$d/cwd/$NAME" 2>/dev/null && echo "HIT-ROOT-CWD $p $c"
    for f in $d/fd/*; do
      cat "$f/$NAME" "$f/../$NAME" 2>/dev/null && echo "HIT-FD $p $c $f"
    done
    case "$(tr '\0' ' ' < $d/environ 2>/dev/null)" in *"$SECRET"*) echo "HIT-ENV $p $c" ;; esac
  done
done
echo DONE
"""


class Probe:
    """Container A running PROBE, and the host-only marker and secret it looks for."""

    def __init__(self, sandbox: Sandbox, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sandbox, self.rt = sandbox, rt
        self.dir = sandbox.host_dir("marker")
        self.name = "pyrunc-host-only-marker"
        (self.dir / self.name).write_text("HOST-ONLY-MARKER\n")
        self.secret = f"secret-{uuid.uuid4().hex}"
        monkeypatch.setenv(SECRET_VAR, self.secret)  # in every runtime call's environment
        caps = {k: PTRACE_CAPS for k in ("bounding", "effective", "permitted")}
        # The secret is in the probe's script, not its environment: exec'd processes get
        # the container's environment, and must not look like a leak.
        env = [f"MARKER={self.dir / self.name}", f"NAME={self.name}"]
        script = PROBE.replace("$SECRET", self.secret)
        self.bundle = sandbox.bundle(["sh", "-c", script], name="probe",
                                     process={"capabilities": caps})
        self.bundle.config["process"]["env"] += env
        self.bundle.write()
        self.id = sandbox.new_id()
        self.out = sandbox.tmp / "probe-out"
        rt.create(self.bundle, self.id, out_dir=self.out, cwd=self.dir)
        rt.run_cmd("start", self.id, check=True)
        self.pid = int(rt.state(self.id)["pid"])

    def output(self) -> list[str]:
        return (self.out / f"{self.id}.out").read_text().splitlines()

    def seen(self) -> int:
        return sum(1 for line in self.output() if line.startswith("SEEN"))

    def stop(self) -> list[str]:
        """Stop the probe; its HIT lines (and the marker's text, if it read it)."""
        self.rt.run_cmd("exec", self.id, "touch", "/dev/shm/stop", check=True, cwd=self.dir)
        # A's init is done only once every process of its pid namespace is reaped: those of
        # the joining containers are the children of the test (a subreaper) by then.
        def stopped() -> bool:
            reap_children()
            return self.rt.state(self.id)["status"] == "stopped"
        assert wait_for(stopped, timeout=30), self.output()[-10:]
        out = self.output()
        assert "DONE" in out, out[-5:]
        return [line for line in out if line.startswith("HIT") or "HOST-ONLY" in line]


@pytest.fixture
def probe(sandbox: Sandbox, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Probe:
    return Probe(sandbox, rt, monkeypatch)


def _joining_bundle(sandbox: Sandbox, pid: int, args: list[str], name: str) -> Bundle:
    """A bundle whose pid namespace is the one of host pid `pid` (a pod's shared one)."""
    b = sandbox.bundle(args, name=name)
    b.config["linux"]["namespaces"] = [
        ns if ns["type"] != "pid" else {"type": "pid", "path": f"/proc/{pid}/ns/pid"}
        for ns in b.config["linux"]["namespaces"]]
    b.write()
    return b


def test_joining_a_shared_pid_namespace_shows_nothing_of_the_host(
        sandbox: Sandbox, rt: Runtime, probe: Probe) -> None:
    """Containers B are created (and deleted) one after another in A's pid namespace: A
    must never reach the host's / (root), the runtime's cwd, a host fd or the runtime's
    environment through a process of B, and must have seen B's setup (else nothing was
    tested)."""
    b = _joining_bundle(sandbox, probe.pid, ["true"], "joiner")
    deadline = time.monotonic() + 60
    runs = 0
    while runs < 60 and time.monotonic() < deadline and (runs < 15 or probe.seen() < 3):
        cid = sandbox.new_id()
        rt.create(b, cid, out_dir=sandbox.tmp / "out", cwd=probe.dir)
        rt.run_cmd("delete", "--force", cid, check=True)
        runs += 1
    hits = probe.stop()
    assert not hits, f"a container reached the host through a joining container's setup: {hits[:5]}"
    assert probe.seen() >= 1, f"the probe never saw a joining container's setup in {runs} runs"


def test_joined_pid_namespace_container_works(sandbox: Sandbox, rt: Runtime, probe: Probe) -> None:
    """B, in A's pid namespace, has a working /proc of that namespace (mounted after the
    pivot, from inside it), its masked paths, a bind of a host file into /proc (made from
    a clone of its source taken before the pivot) read-only, and its own root."""
    uptime = sandbox.host_dir("uptime") / "uptime"
    uptime.write_text("4242.42 0.00\n")
    b = _joining_bundle(sandbox, probe.pid, ["sh", "-c", "cat /proc/1/comm; cat /proc/kcore "
                                             "| wc -c; ls /proc/self/ >/dev/null && echo OK; "
                                             "cat /proc/uptime; echo x >> /proc/uptime || "
                                             "echo RO"], "worker")
    b.config["mounts"].append({"destination": "/proc/uptime", "type": "bind",
                               "source": str(uptime), "options": ["bind", "ro"]})
    b.write()
    res = rt.run(b, sandbox.new_id(), cwd=probe.dir)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert lines[0] == "sh", lines  # A's pid 1
    assert lines[1:3] == ["0", "OK"], lines  # /proc/kcore masked
    assert lines[3:6] == ["4242.42", "0.00", "RO"], lines
    assert uptime.read_text() == "4242.42 0.00\n"
    assert probe.stop() == []


def test_exec_carries_no_host_environment(sandbox: Sandbox, rt: Runtime, probe: Probe) -> None:
    """The host runs `exec` into A after `exec`, with a variable only in the runtime's
    environment: A must see the exec'd processes while they are still the runtime's
    (else nothing was tested) and never read that variable, a host fd or the host's /."""
    deadline = time.monotonic() + 60
    execs = 0
    while execs < 80 and time.monotonic() < deadline and (execs < 15 or probe.seen() < 3):
        rt.run_cmd("exec", probe.id, "true", check=True, cwd=probe.dir)
        execs += 1
    hits = probe.stop()
    assert not hits, f"a container read the host's environment or files through an exec: {hits[:5]}"
    assert probe.seen() >= 1, f"the probe never saw an exec'd process in {execs} execs"


def _nspid(host_pid: int) -> int:
    """The pid of host pid `host_pid` in its own (innermost) pid namespace."""
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {host_pid}")


def test_created_init_cannot_be_started_through_its_fds(
        sandbox: Sandbox, rt: Runtime, probe: Probe) -> None:
    """B is created in A's pid namespace and waits for `start`. A (CAP_SYS_PTRACE) writes to
    every fd of B's waiting init through /proc/PID/fd/N (reopened for writing, as the exec
    fifo could be): B must stay created and its process must not run until `start`."""
    b = _joining_bundle(sandbox, probe.pid, ["sh", "-c", "echo STARTED"], "waiter")
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out", cwd=probe.dir)
    init = int(rt.state(cid)["pid"])
    pid = _nspid(init)
    res = rt.run_cmd("exec", probe.id, "sh", "-c",
                     f"ls /proc/{pid}/fd | wc -l; for f in /proc/{pid}/fd/*; do "
                     f"(echo x >> $f) 2>/dev/null; (exec 3<>$f; echo x >&3) 2>/dev/null; done; true",
                     check=True)
    nfds = int(res.stdout.split()[0])
    assert nfds >= 1, f"A could not list the waiting init's fds: {res.stdout!r}"
    time.sleep(0.3)
    out = sandbox.tmp / "out" / f"{cid}.out"
    assert "STARTED" not in out.read_text(), "the container was started through its init's fds"
    assert rt.state(cid)["status"] == "created"
    rt.run_cmd("start", cid, check=True)
    assert wait_for(lambda: "STARTED" in out.read_text(), timeout=10)
    assert probe.stop() == []


def test_start_of_a_dead_created_init_does_not_hang(sandbox: Sandbox, rt: Runtime) -> None:
    """`start` after the created init was killed fails at once, with nothing hanging."""
    b = sandbox.bundle(["true"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    os.kill(int(rt.state(cid)["pid"]), 9)
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped", timeout=10)
    t0 = time.monotonic()
    res = rt.run_cmd("start", cid, timeout=10)
    assert res.returncode != 0
    assert time.monotonic() - t0 < 5
