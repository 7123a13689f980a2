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
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox
from .helpers import CMD_TIMEOUT, Bundle, Runtime, reap_children, wait_for

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
    # exec'd the container's own binary or the runtime's sealed pyrunc-init (the kernel
    # switches exe and dumpability a moment before comm), and by the time /proc/$p/exe is
    # read again the process may be gone.
    if t=$( (exec 3<$d/exe && readlink /proc/self/fd/3) 2>/dev/null ); then
      case "$t" in /bin/busybox|"/memfd:pyrunc-init (deleted)") ;; *) echo "HIT-READ $p $c [$t]" ;; esac
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
    0, 1, 2 and 3 (the preserved file); before start, the waiting init (pyrunc-init) holds
    those and the socket it waits on for `start` (never the exec fifo, which its relay
    holds: test_hostile_pidns.py), which it closes itself before its exec."""
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    pid_file = sandbox.tmp / "init.pid"
    res = _with_fds(rt, ["create", "--bundle", str(b.path), "--preserve-fds", "1",
                         "--pid-file", str(pid_file), cid], fd_files, sandbox.tmp / "out")
    assert res.returncode == 0, res.stderr
    pid = int(pid_file.read_text())

    before = _fds(pid)
    assert before.get(3) == str(fd_files[3]), before
    fifo = str(rt.root / cid / "exec.fifo")
    waits_on = [fd for fd, target in before.items()
                if fd > 3 and not _cloexec(pid, fd) and target.startswith("socket:")]
    leaked = {fd: target for fd, target in before.items()
              if fd > 3 and not _cloexec(pid, fd) and fd not in waits_on[:1]}
    assert not leaked, f"fds of the created init that survive its exec: {leaked}"
    assert len(waits_on) == 1 and fifo not in before.values(), before
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


def test_the_exec_fifo_relay_holds_only_the_fifo_and_its_socket(
        sandbox: Sandbox, rt: Runtime, fd_files: dict[int, Path]) -> None:
    """The relay (pyrunc-init relay, the exec fifo's only holder until `start`) is started
    from the stage, which still holds the preserved fd 3 (for the init): it gets /dev/null
    as stdio, the fifo and the socket to the init, nothing the runtime inherited or made."""
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    res = _with_fds(rt, ["create", "--bundle", str(b.path), "--preserve-fds", "1", cid],
                    fd_files, sandbox.tmp / "out")
    assert res.returncode == 0, res.stderr
    fifo = str(rt.root / cid / "exec.fifo")
    relays = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and fifo in _fds(int(d)).values():
                relays.append(int(d))
        except OSError:  # gone, or not ours to look at
            continue
    assert len(relays) == 1, relays
    fds = _fds(relays[0])
    assert Path(f"/proc/{relays[0]}/cmdline").read_bytes().split(b"\0")[:2] == \
        [b"pyrunc-init", b"relay"]
    assert {fds[0], fds[1], fds[2]} == {"/dev/null"}, fds
    rest = sorted(target for fd, target in fds.items() if fd > 2)
    assert len(rest) == 2 and rest[0] == fifo and rest[1].startswith("socket:"), fds


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


@pytest.mark.pyrunc_only  # runc guards its binary differently (a read-only bind or memfd)
def test_created_init_exe_is_out_of_reach(sandbox: Sandbox, rt: Runtime) -> None:
    """Before `start`, pid 1 of the container is the runtime's init, waiting. From an
    `exec` into the created container, /proc/1/exe can be neither opened (read or write)
    nor read as a link; its environ and fd links (the exec fifo) are hidden too."""
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    res = rt.run_cmd("exec", cid, "sh", "-c", _probe_script())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert lines[-1] != "sleep", lines  # it was the waiting init we probed
    assert lines[:-1] == [], f"the container reached into the waiting init: {lines[:-1]}"


@pytest.mark.pyrunc_only  # runc guards its binary differently (a read-only bind or memfd)
def test_created_init_exe_is_out_of_reach_with_cap_sys_ptrace(sandbox: Sandbox, rt: Runtime) -> None:
    """The same with CAP_SYS_PTRACE in the container (a debugging container, or any
    container whose config grants it): being non-dumpable no longer protects the waiting
    init, so what its /proc/1/exe opens must not be the host's interpreter at all, nor be
    writable; and no fd it holds leads to a host directory. (An fd on the host interpreter,
    kept until no Python runs on the host, could be reopened for writing: CVE-2019-5736.)"""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_PTRACE"]
    b = sandbox.bundle(["sleep", "60"], process={"capabilities": {
        "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps}})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    # A host file next to the runtime's state dir (--root is sandbox.tmp/state): any fd
    # the waiting init holds on a host directory leads there through its magic link.
    (sandbox.tmp / "host-sentinel").write_text("HOST-FILE-REACHED\n")
    script = ("for d in /proc/1/fd/*; do cat $d/../host-sentinel $d/../../host-sentinel "
              "2>/dev/null; done; "
              "(exec 3>>/proc/1/exe) 2>/dev/null && echo OPEN-WRITE; "
              "(exec 3</proc/1/exe && echo OPENED $(stat -L -c %d:%i /proc/self/fd/3) "
              "$(readlink /proc/self/fd/3)) 2>/dev/null; cat /proc/1/comm")
    res = rt.run_cmd("exec", cid, "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] != "sleep", lines  # it was the waiting init we probed
    assert "HOST-FILE-REACHED" not in lines, (
        "a container with CAP_SYS_PTRACE read a host file through an fd of the waiting init")
    assert "OPEN-WRITE" not in lines, "a container opened the waiting init's exe for writing"
    opened = [line.split()[1:] for line in lines if line.startswith("OPENED")]
    assert opened, f"CAP_SYS_PTRACE should let the container open /proc/1/exe: {lines}"
    dev_ino, target = opened[0][0], " ".join(opened[0][1:])
    for exe in _runtime_executables(rt) | {os.path.realpath(sys.executable)}:
        st = os.stat(exe)
        assert dev_ino != f"{st.st_dev}:{st.st_ino}", (
            f"a container with CAP_SYS_PTRACE opened the host interpreter {exe} through "
            f"/proc/1/exe of the waiting init ({target})")
    assert target.startswith("/memfd:"), target


@pytest.mark.pyrunc_only  # runc guards its binary differently (a read-only bind or memfd)
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


# CVE-2019-5736 itself: an image whose program is "#!/proc/self/exe". The kernel resolves
# that interpreter in the process that calls execve: if it is the runtime's, the runtime's
# executable (the host's Python) runs inside the container, dumpable, as code of the image,
# and can keep an fd on itself to write it later. The image here carries all that the
# runtime's interpreter needs to run (the host's loader and libraries and the interpreter's
# prefix, bound read-only), and a control run shows it does run there when asked by name.

_EVIL = ("#!/proc/self/exe\n"
         "import os\n"
         "here = os.path.dirname(os.path.abspath(__file__))\n"
         "with open(os.path.join(here, 'pwned'), 'w') as f:\n"
         "    f.write(os.readlink('/proc/self/exe'))\n")


def _interpreter_of(binary: str) -> str | None:
    """The interpreter a runtime runs on, as its `--version` names it (pyrunc's does)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         timeout=CMD_TIMEOUT).stdout
    m = re.search(r"^python: \S+ \((/.*)\)$", out, re.M)
    return os.path.realpath(m.group(1)) if m else None


def _runtime_interpreter(rt: Runtime) -> str:
    interp = _interpreter_of(rt.binary)
    if interp is None:
        pytest.skip("the runtime under test is not run by an interpreter")
    return interp


def _runtime_executables(rt: Runtime) -> set[str]:
    """The files a runtime process may be executing: its binary, or its interpreter."""
    interp = _interpreter_of(rt.binary)
    return {os.path.realpath(rt.binary)} | ({interp} if interp else set())


def _image_with_the_host_interpreter(sandbox: Sandbox, rt: Runtime, args: list[str],
                                     **overrides: Any) -> tuple[Bundle, str]:
    interp = _runtime_interpreter(rt)
    prefix = subprocess.run([interp, "-I", "-c", "import sys; print(sys.base_prefix)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    dirs = ["/usr", "/lib", "/lib64"] + ([] if prefix.startswith("/usr/") else [prefix])
    mounts = [{"destination": d, "type": "bind", "source": d, "options": ["rbind", "ro"]}
              for d in dirs if os.path.isdir(d)]
    b = sandbox.bundle(args, root={"path": "rootfs", "readonly": False}, extra_mounts=mounts,
                       **overrides)
    evil = b.path / "rootfs" / "evil"
    evil.write_text(_EVIL)
    evil.chmod(0o755)
    return b, interp


def _assert_not_pwned(b: Bundle, detail: str) -> None:
    pwned = b.path / "rootfs" / "pwned"
    assert not pwned.exists(), (
        f"the runtime's executable ({pwned.read_text()}) ran in the container as the image's "
        f"interpreter: {detail}")


def test_the_image_can_run_the_host_interpreter(sandbox: Sandbox, rt: Runtime) -> None:
    """The control for the tests below: asked by its path, the runtime's interpreter runs
    in that image, so only the runtime stands between "#!/proc/self/exe" and it."""
    b, interp = _image_with_the_host_interpreter(sandbox, rt, [])
    b.config["process"]["args"] = [interp, "-c", "print('CONTROL-OK')"]
    b.write()
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 0 and "CONTROL-OK" in res.stdout, res


def test_proc_self_exe_as_interpreter_of_the_container_process(sandbox: Sandbox, rt: Runtime) -> None:
    """The container's process is "#!/proc/self/exe": its exec must not run the runtime."""
    b, _ = _image_with_the_host_interpreter(sandbox, rt, ["/evil"])
    res = rt.run(b, sandbox.new_id())
    _assert_not_pwned(b, f"run exited {res.returncode}: {res.stderr.strip()}")
    assert res.returncode != 0, res


def test_proc_self_exe_as_interpreter_of_an_exec(sandbox: Sandbox, rt: Runtime) -> None:
    """`exec` of a "#!/proc/self/exe" program in a running container."""
    b, _ = _image_with_the_host_interpreter(sandbox, rt, ["sleep", "60"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    res = rt.run_cmd("exec", cid, "/evil")
    _assert_not_pwned(b, f"exec exited {res.returncode}: {res.stderr.strip()}")
    assert res.returncode != 0, res
    rt.run_cmd("delete", "--force", cid, check=True)


@pytest.mark.parametrize("phase", ["createContainer", "startContainer"])
def test_proc_self_exe_as_interpreter_of_a_container_hook(sandbox: Sandbox, rt: Runtime,
                                                          phase: str) -> None:
    """A hook run in the container's namespaces whose program is "#!/proc/self/exe"
    (createContainer runs before pivot_root, so its path is the host's view of the file)."""
    b, _ = _image_with_the_host_interpreter(sandbox, rt, ["true"])
    path = str(b.path / "rootfs" / "evil") if phase == "createContainer" else "/evil"
    b.config["hooks"] = {phase: [{"path": path}]}
    b.write()
    res = rt.run(b, sandbox.new_id())
    _assert_not_pwned(b, f"run exited {res.returncode}: {res.stderr.strip()}")
    assert res.returncode != 0 and phase in res.stderr, res


# What remains of the class: a container granted CAP_SYS_PTRACE that wins the race of the
# few milliseconds in which a runtime process is still Python in its pid namespace opens
# the host's interpreter through /proc/PID/exe. The launcher runs the interpreter from a
# private read-only mount of its file, so what such an fd names can never be written.

def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@pytest.mark.pyrunc_only
def test_runtime_processes_run_a_read_only_interpreter(sandbox: Sandbox, rt: Runtime) -> None:
    """/proc/PID/exe of a runtime process (here a foreground `run`, and the stage and init
    it forks) is the interpreter's file on a read-only mount."""
    interp = os.stat(_runtime_interpreter(rt))
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    proc = rt.popen("run", "--bundle", str(b.path), cid)

    def running() -> bool:
        res = rt.run_cmd("state", cid)
        return res.returncode == 0 and '"running"' in res.stdout

    assert wait_for(running, timeout=15)
    exe = f"/proc/{proc.pid}/exe"
    assert _same_file(os.stat(exe), interp), os.readlink(exe)
    assert os.statvfs(exe).f_flag & os.ST_RDONLY, f"{exe} is on a writable mount"
    rt.run_cmd("kill", cid, "KILL", check=True)
    proc.wait(timeout=15)


@pytest.mark.pyrunc_only
def test_launcher_without_the_privilege_execs_the_interpreter_plainly(rt: Runtime) -> None:
    """Without CAP_SYS_ADMIN there is no private mount to make: the launcher falls back to
    exec'ing the interpreter by its path (commands that need no privilege still work)."""
    _runtime_interpreter(rt)  # (skips a runtime that has none)
    res = subprocess.run(["setpriv", "--bounding-set=-sys_admin", rt.binary, "--version"],
                         capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert res.returncode == 0 and res.stdout.startswith("pyrunc version"), res


@pytest.mark.pyrunc_only
def test_interpreter_opened_from_a_container_stays_unwritable(sandbox: Sandbox, rt: Runtime) -> None:
    """A container granted CAP_SYS_PTRACE opens /proc/1/exe of an init that is still
    Python (a created init with startContainer hooks waits in Python) and keeps the fd in
    a process of its own: the fd is on the host's interpreter (the premise), and on a
    read-only mount, so reopening it for writing once no Python runs would fail (EROFS)."""
    interp = os.stat(_runtime_interpreter(rt))
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_SYS_PTRACE"]
    b = sandbox.bundle(["true"], process={"capabilities": {
        "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps}},
        hooks={"startContainer": [{"path": "/bin/true"}]})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    pid_file = sandbox.tmp / "holder.pid"
    rt.run_cmd("exec", "-d", "--pid-file", str(pid_file), cid, "sh", "-c",
               "exec sleep 60 3</proc/1/exe </dev/null >/dev/null 2>&1", check=True)
    holder = int(pid_file.read_text())
    held = f"/proc/{holder}/fd/3"
    try:
        assert wait_for(lambda: os.path.exists(held)), "the container could not open /proc/1/exe"
        assert _same_file(os.stat(held), interp), os.readlink(held)
        assert os.statvfs(held).f_flag & os.ST_RDONLY, (
            "a container holds an fd on the host's interpreter on a writable mount: once no "
            "Python runs on the host it can be reopened for writing")
    finally:
        os.kill(holder, 9)
        os.waitpid(holder, 0)  # reparented to us, a subreaper


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
