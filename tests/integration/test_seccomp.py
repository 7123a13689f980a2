"""Seccomp against the real kernel.

Most tests need no container: a profile is compiled here (as the runtime does) and loaded in
a forked child (as the container init does, after setting no_new_privs), which then tries
syscalls and reports what happened over a pipe. The last part runs real containers through
the runtime CLI and is skipped until `pyrunc features` reports linux.seccomp.enabled.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import prctl
import pytest

from pyrunc import OCI_VERSION
from pyrunc.errors import PyruncError
from pyrunc.linux import seccomp
from pyrunc.linux import syscalls as sc

AUDIT_ARCH_X86_64 = 0xC000003E
pytestmark = [
    pytest.mark.seccomp,
    pytest.mark.skipif(sc.seccomp_arch_native() != AUDIT_ARCH_X86_64,
                       reason="syscall numbers here are x86_64's"),
]

NR_GETPPID = 110
NR_GETPGID = 121
NR_PERSONALITY = 135

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.personality.restype = ctypes.c_int
libc.personality.argtypes = [ctypes.c_ulong]


def raw_syscall(nr: int, *args: int) -> tuple[int, int]:
    """(return value, errno) of syscall(nr, args...), with full 64-bit arguments."""
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) for a in args))
    return int(rc), ctypes.get_errno()


# --- running a body under a filter in a forked child -----------------------------------------

class Child:
    """The outcome of a forked child: its wait status and what its body returned."""

    def __init__(self, status: int, result: Any, error: str | None) -> None:
        self.status = status
        self.result = result
        self.error = error

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    def ok(self) -> Any:
        assert self.error is None, self.error
        assert os.WIFEXITED(self.status) and os.WEXITSTATUS(self.status) == 0, self.status
        return self.result


def in_child(f: seccomp.CompiledFilter | None, body: Callable[[int | None], Any], *,
             nnp: bool = True, before: Callable[[], None] | None = None,
             timeout: float = 20.0) -> Child:
    """Fork; in the child set no_new_privs (unless told not to), run `before`, load `f`, run
    `body(listener_fd)` and send its JSON-able result back. Core dumps are off."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if nnp:
                prctl.set_no_new_privs(True)
            if before is not None:
                before()
            fd = seccomp.load(f) if f is not None else None
            out = json.dumps({"result": body(fd)}).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            if isinstance(exc, PyruncError):
                out = json.dumps({"error": f"{type(exc).__name__}: {exc}", "errno": exc.errno}).encode()
            else:
                out = json.dumps({"error": traceback.format_exc()}).encode()
            code = 1
        try:
            os.write(w, out)
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError("the child timed out")
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    doc = json.loads(data) if data else {}
    return Child(status, doc.get("result"), doc.get("error"))


def allow_except(*rules: dict[str, Any], **top: Any) -> seccomp.CompiledFilter:
    f = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **top})
    assert f.warnings == ()
    return f


def status_fields() -> dict[str, str]:
    with open("/proc/self/status") as fh:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in fh)}


# --- actions ---------------------------------------------------------------------------------

def test_errno_actions_and_status() -> None:
    f = allow_except({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                     {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
                     {"names": ["chroot"], "action": "SCMP_ACT_ERRNO"})

    def body(fd: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"fd": fd, "status": status_fields()}
        for name, call in (("mkdir", lambda: os.mkdir("/nonexistent-dir/x")),
                           ("getcwd", os.getcwd), ("chroot", lambda: os.chroot("/"))):
            try:
                call()
                out[name] = 0
            except OSError as exc:
                out[name] = exc.errno
        out["getpid"] = os.getpid() > 0
        return out

    res = in_child(f, body).ok()
    assert res["fd"] is None
    assert res["mkdir"] == errno.EACCES  # not ENOENT: the kernel never saw the path
    assert res["getcwd"] == 42
    assert res["chroot"] == errno.EPERM
    assert res["getpid"] is True
    assert res["status"]["Seccomp"] == "2"
    assert res["status"]["Seccomp_filters"] == "1"
    assert res["status"]["NoNewPrivs"] == "1"


def test_no_filter_without_load() -> None:
    res = in_child(None, lambda fd: status_fields()["Seccomp"]).ok()
    assert res == "0"


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"])
def test_kill(action: str) -> None:
    f = allow_except({"names": ["getppid"], "action": action})
    child = in_child(f, lambda fd: os.getppid())
    assert child.signal == signal.SIGSYS
    assert child.result is None


def test_default_kill_process() -> None:
    """Only read/write/exit allowed: Python dies on its next other syscall, with SIGSYS."""
    f = seccomp.compile_profile({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
        {"names": ["read", "write", "exit", "exit_group"], "action": "SCMP_ACT_ALLOW"}]})
    child = in_child(f, lambda fd: os.getcwd())
    assert child.signal == signal.SIGSYS


def test_trap_raises_sigsys() -> None:
    f = allow_except({"names": ["getppid"], "action": "SCMP_ACT_TRAP"})

    def body(fd: int | None) -> list[int]:
        got: list[int] = []
        signal.signal(signal.SIGSYS, lambda sig, frame: got.append(sig))
        os.getppid()
        for _ in range(100):
            if got:
                break
            time.sleep(0.01)
        return got

    assert in_child(f, body).ok() == [signal.SIGSYS]


def test_trace_without_tracer_is_enosys() -> None:
    f = allow_except({"names": ["getcwd"], "action": "SCMP_ACT_TRACE", "errnoRet": 7})

    def body(fd: int | None) -> int:
        try:
            os.getcwd()
        except OSError as exc:
            return exc.errno or 0
        return 0

    assert in_child(f, body).ok() == errno.ENOSYS


def test_log_allows() -> None:
    f = allow_except({"names": ["getcwd"], "action": "SCMP_ACT_LOG"}, flags=["SECCOMP_FILTER_FLAG_LOG"])
    assert f.flags == sc.SECCOMP_FILTER_FLAG_LOG
    assert in_child(f, lambda fd: os.getcwd()).ok() == os.getcwd()


def test_flags_load() -> None:
    f = allow_except({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
                     flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                            "SECCOMP_FILTER_FLAG_LOG"])

    def body(fd: int | None) -> int:
        try:
            os.getcwd()
        except OSError as exc:
            return exc.errno or 0
        return 0

    assert in_child(f, body).ok() == errno.EIO


# --- arguments -------------------------------------------------------------------------------

BIG = 0x1_0000_0005
KERNEL_OPERATOR_CASES = [
    ("SCMP_CMP_EQ", 5, 0, [(5, True), (4, False), (BIG, False)]),
    ("SCMP_CMP_NE", 5, 0, [(5, False), (4, True), (BIG, True)]),
    ("SCMP_CMP_LT", 5, 0, [(4, True), (5, False), (BIG, False)]),
    ("SCMP_CMP_LE", 5, 0, [(5, True), (6, False), (BIG, False)]),
    ("SCMP_CMP_GT", 5, 0, [(5, False), (6, True), (BIG, True)]),
    ("SCMP_CMP_GE", 5, 0, [(4, False), (5, True), (BIG, True)]),
    ("SCMP_CMP_MASKED_EQ", 0xF0, 0x30, [(0x30, True), (0x3F, True), (0x20, False)]),
]


@pytest.mark.parametrize("op,value,value_two,cases", KERNEL_OPERATOR_CASES,
                         ids=[c[0] for c in KERNEL_OPERATOR_CASES])
def test_operator_in_kernel(op: str, value: int, value_two: int,
                            cases: list[tuple[int, bool]]) -> None:
    f = allow_except({"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42,
                      "args": [{"index": 1, "value": value, "valueTwo": value_two, "op": op}]})

    def body(fd: int | None) -> list[int]:
        # getpgid(0) ignores its second argument: it succeeds unless the filter said 42
        return [raw_syscall(NR_GETPGID, 0, arg)[1] for arg, _ in cases]

    got = in_child(f, body).ok()
    assert got == [42 if matches else 0 for _, matches in cases]


# --- a container engine's default-deny profile --------------------------------------------------

def engine_profile() -> dict[str, Any]:
    """Deny by default (EPERM), allow what a Python process and a shell need, like Docker's
    default profile: personality only with known personas, no mount/reboot/ptrace/..."""
    with open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h") as fh:
        names = [line.split()[1].removeprefix("__NR_") for line in fh
                 if line.startswith("#define __NR_")]
    denied = {"mount", "umount2", "reboot", "kexec_load", "init_module", "finit_module",
              "delete_module", "ptrace", "swapon", "swapoff", "pivot_root", "chroot", "acct",
              "personality", "unshare", "setns", "bpf", "perf_event_open", "clone3"}
    allowed = [n for n in names if n not in denied]
    assert len(allowed) > 300
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allowed, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xFFFFFFFF, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        ],
    }


def test_engine_profile() -> None:
    if not os.path.exists("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"):
        pytest.skip("no kernel headers to list syscall names from")
    f = seccomp.compile_profile(engine_profile())

    def body(fd: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ctypes.set_errno(0)
        out["query"] = (libc.personality(0xFFFFFFFF), ctypes.get_errno())
        ctypes.set_errno(0)
        out["linux32"] = (libc.personality(0x0008), ctypes.get_errno())
        try:
            os.chroot("/")
            out["chroot"] = 0
        except OSError as exc:
            out["chroot"] = exc.errno
        # a subprocess still works: fork/clone, execve, wait
        proc = subprocess.run(["/bin/sh", "-c", "echo hi; mkdir /proc/x 2>/dev/null; exit 3"],
                              capture_output=True, text=True, check=False)
        out["sh"] = (proc.returncode, proc.stdout)
        out["status"] = status_fields()["Seccomp"]
        return out

    res = in_child(f, body).ok()
    assert res["query"][0] >= 0 and res["query"][1] == 0
    assert res["linux32"] == [-1, errno.EPERM]
    assert res["chroot"] == errno.EPERM
    assert res["sh"] == [3, "hi\n"]
    assert res["status"] == "2"


def test_filter_survives_exec() -> None:
    f = allow_except({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13})

    def body(fd: int | None) -> tuple[int, str]:
        proc = subprocess.run(["mkdir", "/tmp/pyrunc-seccomp-never"], capture_output=True, text=True,
                              check=False)
        return proc.returncode, proc.stderr

    rc, err = in_child(f, body).ok()
    assert rc != 0 and "Permission denied" in err
    assert not os.path.exists("/tmp/pyrunc-seccomp-never")


# --- privileges ------------------------------------------------------------------------------

def test_load_without_nnp_needs_cap_sys_admin() -> None:
    f = allow_except({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"})
    # root (CAP_SYS_ADMIN) may load without no_new_privs: runc's order when noNewPrivileges is false
    res = in_child(f, lambda fd: status_fields()["NoNewPrivs"], nnp=False).ok()
    assert res == "0"

    def drop() -> None:
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)  # loses every capability

    child = in_child(f, lambda fd: None, nnp=False, before=drop)
    assert child.error == ("SystemError_: cannot load the seccomp filter: seccomp: Permission denied")
    # ...which no_new_privs makes unnecessary
    assert in_child(f, lambda fd: "loaded", before=drop).ok() == "loaded"


# --- user notification -----------------------------------------------------------------------

def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr


NOTIF = struct.Struct("<QIIiIQ6Q")  # struct seccomp_notif (with struct seccomp_data)
NOTIF_RESP = struct.Struct("<QqiI")  # struct seccomp_notif_resp
SECCOMP_IOCTL_NOTIF_RECV = _iowr(0, NOTIF.size)
SECCOMP_IOCTL_NOTIF_SEND = _iowr(1, NOTIF_RESP.size)
SECCOMP_IOCTL_NOTIF_ID_VALID = (1 << 30) | (8 << 16) | (ord("!") << 8) | 2
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1


def notif_recv(fd: int, timeout: float = 10.0) -> dict[str, Any]:
    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, "no seccomp notification arrived"
    buf = bytearray(NOTIF.size)  # must be zeroed
    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf)
    nid, pid, flags, nr, arch, ip, *args = NOTIF.unpack(buf)
    return {"id": nid, "pid": pid, "nr": nr, "arch": arch, "args": args}


def notif_send(fd: int, nid: int, val: int = 0, error: int = 0, flags: int = 0) -> None:
    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, bytearray(struct.pack("<Q", nid)))
    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(NOTIF_RESP.pack(nid, val, error, flags)))


class Agent:
    """A seccomp agent: listens on a unix socket, takes one container process state with its
    listener fd, and answers notifications."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.srv.settimeout(20)
        self.state: dict[str, Any] = {}
        self.fd = -1

    def accept(self) -> None:
        """Take one container process state. Read until the JSON is whole rather than until
        EOF: runc 1.1 leaves the connection open (the spec says it MUST close it)."""
        conn, _ = self.srv.accept()
        with conn:
            conn.settimeout(20)
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
            self.fd = fds[0] if fds else -1
            while True:
                try:
                    self.state = json.loads(data)
                    break
                except ValueError:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        raise
                    data += chunk
        assert len(fds) == 1

    def close(self) -> None:
        self.srv.close()
        if self.fd >= 0:
            os.close(self.fd)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(str(tmp_path / "agent.sock"))
    yield a
    a.close()


@pytest.mark.parametrize("flags", [[], ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                                   ["SECCOMP_FILTER_FLAG_TSYNC"]])
def test_notify(agent: Agent, flags: list[str]) -> None:
    if not set(flags) <= set(seccomp.features()["supportedFlags"]):
        pytest.skip(f"kernel lacks {flags}")
    f = allow_except({"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"},
                     listenerPath=agent.path, listenerMetadata="GETPPID=4242", flags=flags)
    assert f.uses_notify and f.flags & sc.SECCOMP_FILTER_FLAG_NEW_LISTENER
    state = {"ociVersion": OCI_VERSION, "id": "c1", "status": "creating", "pid": 0,
             "bundle": "/b", "annotations": {}}

    def body(fd: int | None) -> dict[str, Any]:
        assert fd is not None and fd > 2
        cloexec = bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
        seccomp.send_listener(agent.path, fd, json.dumps({**state, "pid": os.getpid()}).encode(),
                              f.listener_metadata)
        os.close(fd)
        first = raw_syscall(NR_GETPPID)
        second = raw_syscall(NR_GETPPID)
        third = raw_syscall(NR_GETPPID)
        return {"cloexec": cloexec, "calls": [first, second, third]}

    result: dict[str, Any] = {}

    def supervise() -> None:
        agent.accept()
        answers = [dict(val=4242), dict(error=-errno.EACCES),
                   dict(flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE)]
        result["notes"] = []
        for answer in answers:
            note = notif_recv(agent.fd)
            result["notes"].append(note)
            notif_send(agent.fd, note["id"], **answer)

    t = threading.Thread(target=supervise, daemon=True)
    t.start()
    child = in_child(f, body)
    t.join(20)
    res = child.ok()
    assert res["cloexec"] is True
    real_ppid = os.getpid()
    assert res["calls"] == [[4242, 0], [-1, errno.EACCES], [real_ppid, 0]]
    notes = result["notes"]
    assert [n["nr"] for n in notes] == [NR_GETPPID] * 3
    assert {n["arch"] for n in notes} == {AUDIT_ARCH_X86_64}
    st = agent.state
    assert st["ociVersion"] == OCI_VERSION and st["fds"] == ["seccompFd"]
    assert st["metadata"] == "GETPPID=4242"
    assert st["pid"] == notes[0]["pid"] == st["state"]["pid"]
    assert st["state"]["id"] == "c1" and st["state"]["status"] == "creating"


# --- through the runtime: real containers (skipped until the runtime reports seccomp) --------

@pytest.fixture(scope="module")
def runtime_seccomp(runtime_bin: str) -> None:
    try:
        out = subprocess.run([runtime_bin, "features"], capture_output=True, text=True, timeout=20)
        enabled = out.returncode == 0 and bool(
            json.loads(out.stdout).get("linux", {}).get("seccomp", {}).get("enabled"))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        enabled = False
    if not enabled:
        pytest.skip(f"{runtime_bin} features: linux.seccomp.enabled is not true")


def deny_mkdir(errno_ret: int = errno.EACCES, **top: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": errno_ret}], **top}


@pytest.mark.usefixtures("runtime_seccomp")
def test_container_errno(sandbox: Any) -> None:
    res = sandbox.sh("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/x; "
                     "echo rc=$?", linux={"seccomp": deny_mkdir()})
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == ["NoNewPrivs:\t1", "Seccomp:\t2", "rc=1"]
    assert "Permission denied" in res.stderr


@pytest.mark.usefixtures("runtime_seccomp")
def test_container_without_no_new_privs(sandbox: Any) -> None:
    """noNewPrivileges false and a non-root user without CAP_SYS_ADMIN: the filter must be
    loaded while the init is still privileged (before the capability drop)."""
    res = sandbox.sh("grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; id -u; "
                     "mkdir /tmp/x; echo rc=$?",
                     process={"noNewPrivileges": False, "user": {"uid": 1000, "gid": 1000}},
                     linux={"seccomp": deny_mkdir(errno.EROFS)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:5] == ["CapEff:\t0000000000000000", "NoNewPrivs:\t0",
                                          "Seccomp:\t2", "1000", "rc=1"]
    assert "Read-only file system" in res.stderr


@pytest.mark.usefixtures("runtime_seccomp")
def test_container_engine_profile(sandbox: Any) -> None:
    if not os.path.exists("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"):
        pytest.skip("no kernel headers to list syscall names from")
    profile = engine_profile()
    profile["defaultErrnoRet"] = errno.EPERM
    script = "echo ok; mount -t tmpfs none /tmp; echo mount=$?; grep Seccomp: /proc/self/status"
    caps = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
    control = sandbox.sh(script, process={"capabilities": caps})
    assert control.stdout.split("\n")[:3] == ["ok", "mount=0", "Seccomp:\t0"], control.stderr
    res = sandbox.sh(script, process={"capabilities": caps}, linux={"seccomp": profile})
    assert res.returncode == 0, res.stderr
    # with CAP_SYS_ADMIN, only the filter (EPERM) stops the mount
    assert res.stdout.split("\n")[:3] == ["ok", "mount=1", "Seccomp:\t2"]
    assert "permission denied" in res.stderr.lower() or "not permitted" in res.stderr


@pytest.mark.usefixtures("runtime_seccomp")
def test_container_exec_gets_the_filter(sandbox: Any) -> None:
    b = sandbox.bundle(["sleep", "60"], linux={"seccomp": deny_mkdir()})
    cid = sandbox.new_id()
    sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out")
    sandbox.rt.run_cmd("start", cid, check=True)
    res = sandbox.rt.run_cmd("exec", cid, "sh", "-c",
                             "grep Seccomp: /proc/self/status; mkdir /tmp/x; echo rc=$?")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["Seccomp:\t2", "rc=1"]
    sandbox.rt.run_cmd("kill", cid, "KILL")


@pytest.mark.pyrunc_only
@pytest.mark.usefixtures("runtime_seccomp")
def test_container_bad_profile(sandbox: Any) -> None:
    profile = deny_mkdir()
    profile["syscalls"].append({"names": ["getcwd"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1})
    res = sandbox.sh("true", linux={"seccomp": profile})
    assert res.returncode == 1
    assert res.stderr.strip().endswith(
        "config.json: linux.seccomp.syscalls[1].errnoRet: errnoRet is only valid with "
        "SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not SCMP_ACT_ALLOW")


@pytest.mark.usefixtures("runtime_seccomp")
def test_container_notify(sandbox: Any, tmp_path: Path) -> None:
    """The agent gets the container process state and the listener fd, then answers the
    container's mkdir calls: the first with success (nothing made), the next with EROFS."""
    agent = Agent(str(tmp_path / "agent.sock"))
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
               "listenerPath": agent.path, "listenerMetadata": "MKDIR=fake",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    seen: list[dict[str, Any]] = []
    failure: list[str] = []

    def supervise() -> None:
        try:
            agent.accept()
            answers = [dict(val=0), dict(error=-errno.EROFS)]
            while True:
                ready, _, _ = select.select([agent.fd], [], [], 20)
                if not ready:
                    failure.append("no notification within 20s")
                    return
                buf = bytearray(NOTIF.size)
                try:
                    fcntl.ioctl(agent.fd, SECCOMP_IOCTL_NOTIF_RECV, buf)
                except OSError:
                    return  # every process of the filter is gone (POLLHUP)
                nid, pid, _, nr, arch, *_ = NOTIF.unpack(buf)
                seen.append({"pid": pid, "nr": nr})
                answer = answers.pop(0) if answers else dict(error=-errno.EPERM)
                try:
                    notif_send(agent.fd, nid, **answer)
                except OSError:
                    pass
        except BaseException:  # noqa: BLE001 - reported below
            failure.append(traceback.format_exc())

    t = threading.Thread(target=supervise, daemon=True)
    t.start()
    try:
        b = sandbox.bundle(["sh", "-c", "mkdir /tmp/a; echo a=$?; ls -d /tmp/a; "
                                        "mkdir /tmp/b; echo b=$?"],
                           linux={"seccomp": profile})
        cid = sandbox.new_id()
        res = sandbox.rt.run(b, cid)
        t.join(25)
    finally:
        agent.close()
    assert not failure, failure[0]
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["a=0", "b=1"]
    assert "Read-only file system" in res.stderr  # mkdir /tmp/b
    assert "No such file or directory" in res.stderr  # ls: the first mkdir made nothing
    st = agent.state
    assert st["fds"] == ["seccompFd"] and st["metadata"] == "MKDIR=fake"
    assert st["state"]["id"] == cid and st["state"]["status"] == "creating"
    assert st["pid"] == st["state"]["pid"] > 0
    assert len(seen) == 2


@pytest.mark.usefixtures("runtime_seccomp")
def test_container_user_namespace_without_no_new_privs(sandbox: Any) -> None:
    """In a new user namespace the init's CAP_SYS_ADMIN is the namespace's: still enough to
    load the filter without no_new_privs."""
    maps = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup", "user")]
    res = sandbox.sh("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; mkdir /tmp/x; "
                     "echo rc=$?; cat /proc/self/uid_map",
                     process={"noNewPrivileges": False},
                     linux={"seccomp": deny_mkdir(), "namespaces": namespaces,
                            "uidMappings": maps, "gidMappings": maps})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    assert lines[:3] == ["NoNewPrivs:\t0", "Seccomp:\t2", "rc=1"]
    assert lines[3].split() == ["0", "200000", "65536"]
    assert "Permission denied" in res.stderr


@pytest.mark.usefixtures("runtime_seccomp")
def test_container_exec_notify(sandbox: Any, tmp_path: Path) -> None:
    """An exec'd process gets its own filter, so its own listener fd: the agent gets a second
    connection (process state with the exec'd pid) and answers that process's mkdir."""
    agent = Agent(str(tmp_path / "agent.sock"))
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path,
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    states: list[dict[str, Any]] = []
    seen: list[int] = []
    failure: list[str] = []

    def supervise() -> None:
        try:
            agent.accept()  # the init's listener: sleep makes no mkdir
            states.append(agent.state)
            first = agent.fd
            agent.accept()  # the exec'd process's
            states.append(agent.state)
            os.close(first)
            while True:
                ready, _, _ = select.select([agent.fd], [], [], 20)
                if not ready:
                    failure.append("no notification within 20s")
                    return
                buf = bytearray(NOTIF.size)
                try:
                    fcntl.ioctl(agent.fd, SECCOMP_IOCTL_NOTIF_RECV, buf)
                except OSError:
                    return
                nid, pid, _, nr, *_ = NOTIF.unpack(buf)
                seen.append(pid)
                try:
                    notif_send(agent.fd, nid, error=-errno.EROFS)
                except OSError:
                    pass
        except BaseException:  # noqa: BLE001 - reported below
            failure.append(traceback.format_exc())

    t = threading.Thread(target=supervise, daemon=True)
    t.start()
    try:
        b = sandbox.bundle(["sleep", "60"], linux={"seccomp": profile})
        cid = sandbox.new_id()
        sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out")
        sandbox.rt.run_cmd("start", cid, check=True)
        res = sandbox.rt.run_cmd("exec", cid, "sh", "-c", "mkdir /tmp/e; echo e=$?")
        sandbox.rt.run_cmd("kill", cid, "KILL")
        t.join(25)
    finally:
        agent.close()
    assert not failure, failure[0]
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:1] == ["e=1"]
    assert "Read-only file system" in res.stderr
    assert [s["state"]["id"] for s in states] == [cid, cid]
    assert states[0]["pid"] == states[0]["state"]["pid"]  # the init
    assert states[1]["pid"] != states[0]["pid"]  # the exec'd process
    assert len(seen) == 1


class ContinueAgent:
    """An agent that takes the listener fd and answers every notification with CONTINUE
    until every process of the filter is gone: a container that notifies on the syscalls the
    runtime itself makes after loading the filter must still start and run to its end."""

    def __init__(self, path: str) -> None:
        self.agent = Agent(path)
        self.path = path
        self.count = 0
        self.failure: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.agent.accept()
            fd = self.agent.fd
            while True:
                ready, _, _ = select.select([fd], [], [], 30)
                if not ready:
                    self.failure.append("no notification or hang-up within 30s")
                    return
                buf = bytearray(NOTIF.size)
                try:
                    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf)
                except OSError:
                    return  # POLLHUP: the filter has no process left
                nid = NOTIF.unpack(buf)[0]
                self.count += 1
                try:
                    notif_send(fd, nid, flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE)
                except OSError:
                    pass  # the process died meanwhile
        except BaseException:  # noqa: BLE001 - reported by the test
            self.failure.append(traceback.format_exc())

    def close(self) -> None:
        self.thread.join(35)
        self.agent.close()


@pytest.mark.usefixtures("runtime_seccomp")
@pytest.mark.parametrize("syscall", ["openat", "read", "close", "execve"])
def test_container_notify_runtime_syscalls(sandbox: Any, tmp_path: Path, syscall: str) -> None:
    """SCMP_ACT_NOTIFY on a syscall the init itself makes after loading the filter, with
    noNewPrivileges false (the filter is loaded early, before the user switch): the listener
    fd must reach the agent before the init makes any syscall the filter could trap, or the
    init blocks for good on a notification nobody can read (issue 16)."""
    agent = ContinueAgent(str(tmp_path / "agent.sock"))
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path,
               "syscalls": [{"names": [syscall], "action": "SCMP_ACT_NOTIFY"}]}
    try:
        b = sandbox.bundle(["sh", "-c", "cat /etc/hostname >/dev/null; echo done"],
                           process={"noNewPrivileges": False},
                           linux={"seccomp": profile})
        res = sandbox.rt.run(b, sandbox.new_id(), timeout=60)
    finally:
        agent.close()
    assert not agent.failure, agent.failure[0]
    assert res.returncode == 0, res.stderr
    assert res.stdout == "done\n"
    assert agent.count > 0  # the container's own calls were notified and answered


@pytest.mark.pyrunc_only
@pytest.mark.usefixtures("runtime_seccomp")
def test_container_notify_without_agent(sandbox: Any, tmp_path: Path) -> None:
    """No agent listens at listenerPath: runc's words, naming the socket; nothing is left
    (the sandbox's teardown checks processes, cgroup and state)."""
    path = str(tmp_path / "nobody.sock")
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
               "syscalls": [{"names": ["openat"], "action": "SCMP_ACT_NOTIFY"}]}
    b = sandbox.bundle(["true"], process={"noNewPrivileges": False}, linux={"seccomp": profile})
    cid = sandbox.new_id()
    res = sandbox.rt.run(b, cid, timeout=60)
    assert res.returncode == 1
    line = res.stderr.strip().splitlines()[-1]
    assert ("failed to connect with seccomp agent specified in the seccomp profile: "
            f"{path}: ") in line, line
    assert "No such file or directory" in line
    assert cid not in sandbox.rt.list_ids()


# --- syscalls the profile does not know: ENOSYS, as runc's patchbpf ------------------------

NR_CLONE3 = 435
NR_ACCT = 163

RAWCALL_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        long nr = strtol(argv[i], NULL, 10);
        errno = 0;
        long rc = syscall(nr, 0, 0, 0, 0, 0, 0);
        printf("%ld %ld %s\n", nr, rc, rc < 0 ? strerror(errno) : "ok");
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def rawcall(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static program that makes the raw syscalls named by number on its command line and
    prints `nr rc strerror` for each (busybox cannot)."""
    d = tmp_path_factory.mktemp("rawcall")
    (d / "rawcall.c").write_text(RAWCALL_C)
    res = subprocess.run(["gcc", "-static", "-O1", "-o", str(d / "rawcall"), str(d / "rawcall.c")],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a static helper: {res.stderr.strip()[-200:]}")
    return d / "rawcall"


def older_profile(below: int, default_errno: int = errno.EPERM) -> dict[str, Any]:
    """The engine profile as a profile of an older kernel would be: it names no syscall
    numbered `below` or above (so neither clone3 nor anything newer)."""
    profile = engine_profile()
    with open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h") as fh:
        numbers = {p[1].removeprefix("__NR_"): int(p[2]) for p in (line.split() for line in fh)
                   if len(p) == 3 and p[0] == "#define" and p[1].startswith("__NR_")}
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule["names"] if numbers.get(n, 0) < below]
    profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
    profile["defaultErrnoRet"] = default_errno
    return profile


def test_unknown_syscalls_are_enosys() -> None:
    """Above the profile's highest syscall: ENOSYS (glibc's cue to fall back); a known
    syscall the profile leaves out still gets the default errno."""
    f = seccomp.compile_profile(older_profile(NR_CLONE3))

    def body(_fd: int | None) -> dict[str, Any]:
        return {"1000": raw_syscall(1000), "clone3": raw_syscall(NR_CLONE3, 0, 0),
                "personality": raw_syscall(NR_PERSONALITY, 0x12345), "getppid": raw_syscall(NR_GETPPID)}

    res = in_child(f, body).ok()
    assert res["1000"] == [-1, errno.ENOSYS]
    assert res["clone3"] == [-1, errno.ENOSYS]
    assert res["personality"] == [-1, errno.EPERM]  # known, left out: the default errno
    assert res["getppid"][1] == 0
    # A default of ERRNO(ENOSYS) says it already: no stub (runc's generatePatch)
    assert seccomp.compile_profile(older_profile(NR_CLONE3, errno.ENOSYS)).instructions < f.instructions


@pytest.mark.usefixtures("runtime_seccomp")
def test_container_unknown_syscalls_are_enosys(sandbox: Any, rawcall: Path) -> None:
    """In a container: syscall 1000 and clone3 on a profile that does not name it fail with
    ENOSYS; acct (known, left out of the profile) with the default EPERM."""
    profile = older_profile(NR_CLONE3)
    b = sandbox.bundle(["/rawcall", "1000", str(NR_CLONE3), str(NR_ACCT), str(NR_GETPPID)],
                       linux={"seccomp": profile})
    import shutil
    shutil.copy(rawcall, b.rootfs / "rawcall")
    res = sandbox.rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "1000 -1 Function not implemented"
    assert lines[1] == f"{NR_CLONE3} -1 Function not implemented"
    assert lines[2] == f"{NR_ACCT} -1 Operation not permitted"
    assert lines[3].split()[0::2] == [str(NR_GETPPID), "ok"]
