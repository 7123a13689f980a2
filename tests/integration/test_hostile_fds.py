"""What of the host reaches a container through its processes: file descriptors, and the
runtime's own executable (CVE-2019-5736 class).

A container process must get fds 0, 1, 2 and the --preserve-fds ones, nothing else: not an
fd the runtime's caller happened to leave open (here fd 5), not the runtime's state lock,
log, sync socket or exec fifo. And while a container process still runs the runtime's
code (the init before `start`, an `exec`'d process before its execve), its
/proc/PID/exe is the host's Python interpreter: nothing in the container may open it, to
read or to write.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import CMD_TIMEOUT, Runtime, reap_children, wait_for

O_CLOEXEC = 0o2000000

# Busybox sh, inside the container: scan /proc for processes still running the runtime's
# code (comm "pyrunc" or python*) and try to open their exe for writing and for reading
# (a read-open that lands on the container's own /bin/busybox is the exec'd image, fine).
# Opening for writing appends nothing (a subshell's `exec 3>>`), so even a runtime bug
# cannot damage the host's interpreter. Writes SEEN/HIT lines to stdout.
EXE_PROBE = r"""
seen=0
while [ ! -e /dev/shm/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    c=$(cat $d/comm 2>/dev/null) || continue
    case "$c" in pyrunc|python*) ;; *) continue ;; esac
    seen=$((seen+1))
    echo "SEEN $p $c"
    echo $seen > /dev/shm/seen
    if (exec 3>>$d/exe) 2>/dev/null; then echo "HIT-WRITE $p $c"; fi
    # What was opened is read from the opened fd itself: benign when the process had just
    # exec'd the container's own binary (the kernel switches exe and dumpability a moment
    # before comm), and by the time /proc/$p/exe is read again the process may be gone.
    if t=$( (exec 3<$d/exe && readlink /proc/self/fd/3) 2>/dev/null ); then
      [ "$t" = /bin/busybox ] || echo "HIT-READ $p $c [$t]"
    fi
  done
done
echo DONE
"""


def _with_fds(rt: Runtime, args: list[str], fds: dict[int, Path], out: Path,
              timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run the runtime with extra inherited fds: {number: file}, opened (not close-on-exec)
    by a shell that then execs the runtime. stdout/stderr go to files under `out`."""
    opens = " ".join(f'{n}<>"${i + 1}"' for i, n in enumerate(fds))
    script = f'exec {opens} && shift {len(fds)} && exec "$@"'
    argv = ["sh", "-c", script, "sh", *(str(p) for p in fds.values()), *rt.argv(*args)]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "cmd.out", "w") as so, open(out / "cmd.err", "w") as se:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se,
                                text=True, env=rt._env(), start_new_session=True)
        rt.procs.append(proc)
        proc.wait(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, (out / "cmd.out").read_text(),
                                       (out / "cmd.err").read_text())


def _fds(pid: int) -> dict[int, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            pass
    return out


def _cloexec(pid: int, fd: int) -> bool:
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("flags:"):
                return bool(int(line.split()[1], 8) & O_CLOEXEC)
    raise AssertionError(f"no flags for fd {fd} of {pid}")


@pytest.fixture
def fd_files(sandbox: Sandbox) -> dict[int, Path]:
    files = {3: sandbox.tmp / "preserved-fd3.txt", 5: sandbox.tmp / "stray-fd5.txt"}
    for p in files.values():
        p.write_text("host file\n")
    return files


def test_only_stdio_and_preserved_fds_reach_the_init(sandbox: Sandbox, rt: Runtime,
                                                      fd_files: dict[int, Path]) -> None:
    """create --preserve-fds 1 with fds 3 and 5 open: the container process has exactly
    0, 1, 2 and 3 (the preserved file); before start, every other fd of the waiting init
    is close-on-exec."""
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    pid_file = sandbox.tmp / "init.pid"
    res = _with_fds(rt, ["create", "--bundle", str(b.path), "--preserve-fds", "1",
                         "--pid-file", str(pid_file), cid], fd_files, sandbox.tmp / "out")
    assert res.returncode == 0, res.stderr
    pid = int(pid_file.read_text())

    before = _fds(pid)
    assert before.get(3) == str(fd_files[3]), before
    leaked = {fd: target for fd, target in before.items()
              if fd > 3 and not _cloexec(pid, fd)}
    assert not leaked, f"fds of the created init that survive its exec: {leaked}"
    assert str(fd_files[5]) not in before.values(), before

    rt.run_cmd("start", cid, check=True)
    assert wait_for(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"))
    after = _fds(pid)
    assert set(after) == {0, 1, 2, 3}, after
    assert after[3] == str(fd_files[3])
    # and as the container sees it
    res = rt.run_cmd("exec", cid, "ls", "/proc/1/fd")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "1", "2", "3"]


@pytest.mark.parametrize("preserve", [0, 1])
def test_only_stdio_and_preserved_fds_reach_an_exec(sandbox: Sandbox, rt: Runtime,
                                                     fd_files: dict[int, Path], preserve: int) -> None:
    """exec -d with fds 3 and 5 open: the new process has 0-2 (and 3 with
    --preserve-fds 1), never 5."""
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    pid_file = sandbox.tmp / "exec.pid"
    res = _with_fds(rt, ["exec", "-d", "--preserve-fds", str(preserve), "--pid-file",
                         str(pid_file), cid, "sleep", "50"], fd_files, sandbox.tmp / "exec-out")
    assert res.returncode == 0, res.stderr
    pid = int(pid_file.read_text())
    assert wait_for(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"))
    fds = _fds(pid)
    want = {0, 1, 2} | ({3} if preserve else set())
    assert set(fds) == want, fds
    if preserve:
        assert fds[3] == str(fd_files[3])
    assert str(fd_files[5]) not in fds.values()
    # The exec'd process was reparented to us (the suite is a subreaper): reap it, or the
    # container's pid namespace cannot finish dying and delete --force waits on it.
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    rt.run_cmd("delete", "--force", cid, check=True)


# --------------------------------------------------------------------------------------
# CVE-2019-5736 class: the host interpreter behind /proc/PID/exe


def _probe_script() -> str:
    return ("(exec 3</proc/1/exe) 2>/dev/null && echo OPEN-READ; "
            "(exec 3>>/proc/1/exe) 2>/dev/null && echo OPEN-WRITE; "
            "readlink /proc/1/exe >/dev/null 2>&1 && echo READLINK; "
            "head -c 1 /proc/1/environ >/dev/null 2>&1 && echo ENVIRON; "
            "ls -l /proc/1/fd/ 2>/dev/null | grep -q -- '->' && echo FD-LINKS; "
            "cat /proc/1/comm")


def test_created_init_exe_is_out_of_reach(sandbox: Sandbox, rt: Runtime) -> None:
    """Before `start`, pid 1 of the container is the runtime's init, still the host's
    Python. From an `exec` into the created container, /proc/1/exe can be neither opened
    (read or write) nor read as a link; its environ and fd links are hidden too."""
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    init = rt.state(cid)["pid"]
    assert Path(f"/proc/{init}/exe").resolve().name.startswith("python")  # the premise
    res = rt.run_cmd("exec", cid, "sh", "-c", _probe_script())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert lines[-1] in ("pyrunc", "python3", "python3.11"), lines  # it was the init we probed
    assert lines[:-1] == [], f"the container reached the init's host interpreter: {lines[:-1]}"


@pytest.mark.xfail(strict=True, reason=(
    "known gap (SECURITY.md): until `start`, the waiting init is the host's python; a container "
    "GRANTED CAP_SYS_PTRACE passes ptrace_may_access and can open /proc/1/exe (read-only: it is "
    "executing). runc hides its binary behind a sealed memfd copy; pyrunc has no equivalent yet"))
def test_created_init_exe_is_out_of_reach_with_cap_sys_ptrace(sandbox: Sandbox, rt: Runtime) -> None:
    """The same with CAP_SYS_PTRACE in the container (a debugging container, or any
    container whose config grants it): being non-dumpable no longer protects the init, so
    its exe must not be the host's interpreter file at all (runc execs itself from a sealed
    memfd copy for this). An fd on the host interpreter, once the init has exec'd, can be
    reopened for writing whenever no Python runs on the host: that is CVE-2019-5736."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_PTRACE"]
    b = sandbox.bundle(["sleep", "60"], process={"capabilities": {
        "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps}})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    # A host file next to the runtime's state dir (--root is sandbox.tmp/state): any fd
    # the waiting init holds on a host directory leads there through its magic link.
    (sandbox.tmp / "host-sentinel").write_text("HOST-FILE-REACHED\n")
    escape = ("for d in /proc/1/fd/*; do cat $d/../host-sentinel $d/../../host-sentinel "
              "2>/dev/null; done; ")
    res = rt.run_cmd("exec", cid, "sh", "-c", escape + _probe_script())
    assert res.returncode == 0, res.stderr
    found = res.stdout.split()[:-1]
    host_python = os.path.realpath(f"/proc/{rt.state(cid)['pid']}/exe")
    assert "HOST-FILE-REACHED" not in found, (
        "a container with CAP_SYS_PTRACE read a host file through an fd of the waiting init")
    assert "OPEN-READ" not in found and "OPEN-WRITE" not in found, (
        f"a container with CAP_SYS_PTRACE opened the host interpreter {host_python} "
        f"through /proc/1/exe: {found}")


def test_exec_window_exe_is_out_of_reach(sandbox: Sandbox, rt: Runtime) -> None:
    """A container loops over /proc trying to open the exe of every process still running
    the runtime's code (comm pyrunc/python), for writing and reading, while the host runs
    `exec` after `exec`. The probe must see such processes (else it tested nothing) and
    never open one."""
    b = sandbox.bundle(["sh", "-c", EXE_PROBE])
    cid = sandbox.new_id()
    res = rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    init = rt.state(cid)["pid"]
    seen_file = Path(f"/proc/{init}/root/dev/shm/seen")

    def seen() -> int:
        try:
            return int(seen_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    deadline = time.monotonic() + 60
    execs = 0
    while execs < 80 and time.monotonic() < deadline and (execs < 15 or seen() < 3):
        r = rt.run_cmd("exec", cid, "true")
        assert r.returncode == 0, r.stderr
        execs += 1
    rt.run_cmd("exec", cid, "touch", "/dev/shm/stop", check=True)
    rt.wait_status(cid, "stopped", timeout=15)
    out = (sandbox.tmp / "out" / f"{cid}.out").read_text()
    hits = [line for line in out.splitlines() if line.startswith("HIT")]
    assert not hits, f"the container opened the host interpreter during exec: {hits[:5]}"
    assert "DONE" in out
    assert seen() >= 1 or "SEEN" in out, (
        f"the probe never saw an exec'd process before its execve in {execs} execs: "
        "the test did not test anything")
    del res


# CVE-2024-21626 class: a cwd of /proc/self/fd/N lands in whatever directory the runtime's
# process still holds as fd N -- a host directory if one leaked. From inside, a relative
# path then walks the host. The probe reads a file only the rootfs has, and one only the
# host has (next to the runtime's state dir), relative to the cwd.
_CWD_PROBE = ("cat ../../../../../../../../etc/rootfs-marker 2>/dev/null; "
              "cat ../host-sentinel ../../host-sentinel ../../../host-sentinel 2>/dev/null; "
              "echo done")


@pytest.mark.parametrize("fd", range(3, 10))
def test_cwd_through_proc_self_fd_stays_in_the_container(sandbox: Sandbox, rt: Runtime, fd: int) -> None:
    (sandbox.tmp / "host-sentinel").write_text("HOST-FILE-REACHED\n")
    res = sandbox.run(["sh", "-c", _CWD_PROBE], process={"cwd": f"/proc/self/fd/{fd}"})
    assert "HOST-FILE-REACHED" not in res.stdout, f"cwd /proc/self/fd/{fd} reached the host"
    if res.returncode == 0:
        assert "pyrunc-test-rootfs" in res.stdout, res.stdout
    else:
        assert len(res.stderr.splitlines()) == 1, res.stderr


def test_exec_cwd_through_proc_self_fd_stays_in_the_container(sandbox: Sandbox, rt: Runtime) -> None:
    (sandbox.tmp / "host-sentinel").write_text("HOST-FILE-REACHED\n")
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    for fd in range(3, 10):
        res = rt.run_cmd("exec", "--cwd", f"/proc/self/fd/{fd}", cid, "sh", "-c", _CWD_PROBE)
        assert "HOST-FILE-REACHED" not in res.stdout, f"exec --cwd /proc/self/fd/{fd} reached the host"
        if res.returncode == 0:
            assert "pyrunc-test-rootfs" in res.stdout, (fd, res.stdout)
        # a refused exec may leave its killed child to us (see test_hostile_input's
        # test_failed_exec_leaves_no_zombie): reap it so the container can be deleted
        reap_children()
