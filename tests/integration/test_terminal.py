"""Terminals: the console socket contract engines rely on, and a foreground tty run."""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import socket
import struct
import subprocess
import termios
import threading
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import Bundle, reap_children, wait_for


class ConsoleReceiver:
    """What containerd's shim and conmon do: listen, take ONE message carrying the pty master."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.name = b""
        self.fds: list[int] = []
        self.output = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(20)
        conn, _ = self.sock.accept()
        with conn:
            self.name, self.fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        if not self.fds:
            return
        master = self.fds[0]
        while select.select([master], [], [], 10)[0]:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            self.output += data

    def finish(self) -> str:
        self.thread.join(30)
        self.sock.close()
        for fd in self.fds:
            os.close(fd)
        return self.output.decode(errors="replace")


def _start_with_console(sandbox: Sandbox, b: Bundle) -> tuple[str, ConsoleReceiver]:
    """create --console-socket, then start: the id and what receives the pty master."""
    recv = ConsoleReceiver(sandbox.tmp / "console.sock")
    cid = sandbox.new_id()
    sandbox.rt.create(b, cid, "--console-socket", str(recv.path), out_dir=sandbox.tmp / "out")
    sandbox.rt.run_cmd("start", cid, check=True)
    return cid, recv


def test_console_socket_gets_the_pty(sandbox: Sandbox) -> None:
    """create --console-socket: one message, the pty name as payload and one fd; the container's
    stdio is that pty, of the configured size, and /dev/console is its slave."""
    b = sandbox.bundle(["sh", "-c", "tty; stty size; ls -l /dev/console | cut -c1"],
                       process={"terminal": True, "consoleSize": {"height": 33, "width": 99}})
    rt = sandbox.rt
    cid, recv = _start_with_console(sandbox, b)
    out = recv.finish()
    assert recv.name.startswith(b"/dev/pts/")
    assert len(recv.fds) == 1
    lines = [ln.strip() for ln in out.splitlines()]
    assert lines[0].startswith("/dev/pts/"), out
    assert lines[1] == "33 99", out
    assert lines[2] == "c", out
    rt.wait_status(cid, "stopped")
    rt.run_cmd("delete", cid, check=True)


def test_console_size_beyond_16_bits_is_clamped(sandbox: Sandbox) -> None:
    """consoleSize is uint64 in the spec (pyrunc took uint32, and 70000 was an internal error,
    struct.error in the init): the kernel's winsize holds 16 bits, so it is clamped (runc
    truncates it)."""
    b = sandbox.bundle(["true"],
                       process={"terminal": True, "consoleSize": {"height": 2**40, "width": 70000}})
    cid, recv = _start_with_console(sandbox, b)
    assert wait_for(lambda: bool(recv.fds), 10)
    # busybox's stty reads 30000 or more as no size (24 80): ask the pty master itself
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(recv.fds[0], termios.TIOCGWINSZ, bytes(8)))
    recv.finish()
    assert (rows, cols) == (65535, 65535)
    sandbox.rt.wait_status(cid, "stopped")
    sandbox.rt.run_cmd("delete", cid, check=True)


def test_exec_console_socket(sandbox: Sandbox) -> None:
    """exec --tty --console-socket gives the exec'd process its own pty."""
    b = sandbox.bundle(["sleep", "1000"])
    rt = sandbox.rt
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    recv = ConsoleReceiver(sandbox.tmp / "exec.sock")
    res = rt.run_cmd("exec", "--tty", "--console-socket", str(recv.path), "--detach", cid,
                     "sh", "-c", "tty; echo exec-ok")
    assert res.returncode == 0, res.stderr
    out = recv.finish()
    assert "/dev/pts/" in out and "exec-ok" in out, out
    rt.run_cmd("delete", "--force", cid, check=True)


def test_pty_is_owned_by_the_process_user(sandbox: Sandbox) -> None:
    """runc gives the console to the process's uid, keeping the group devpts set (gid=5,
    the tty group): for the init (its tty and /dev/console) and for `exec --tty --user`.
    Owning it, the user can chmod its terminal (mesg, script, ssh-style tools do)."""
    b = sandbox.bundle(["sh", "-c", "stat -c %u:%g $(tty) /dev/console; "
                        "chmod 600 $(tty) && echo chmod-ok; read line"],
                       process={"terminal": True, "user": {"uid": 1000, "gid": 1000}})
    rt = sandbox.rt
    cid, recv = _start_with_console(sandbox, b)
    erecv = ConsoleReceiver(sandbox.tmp / "exec.sock")
    res = rt.run_cmd("exec", "--tty", "--console-socket", str(erecv.path), "--user", "2000:2000",
                     "--detach", cid, "sh", "-c", "stat -c %u:%g $(tty); id -u")
    assert res.returncode == 0, res.stderr
    out = [ln.strip() for ln in erecv.finish().splitlines()]
    assert out == ["2000:5", "2000"], out
    assert wait_for(lambda: bool(recv.fds))
    os.write(recv.fds[0], b"done\n")  # the init's `read` returns: it exits
    out = [ln.strip() for ln in recv.finish().splitlines()]
    assert out[:3] == ["1000:5", "1000:5", "chmod-ok"], out
    # The detached exec'd sh was adopted by this process (a subreaper): the init cannot finish
    # exiting (zap_pid_ns_processes) until that zombie is reaped.
    assert wait_for(lambda: reap_children() is None and rt.state(cid)["status"] == "stopped")
    rt.run_cmd("delete", cid, check=True)


def test_terminal_without_console_socket_is_refused(sandbox: Sandbox) -> None:
    """A detached terminal container needs somewhere to send the pty: a clear error."""
    b = sandbox.bundle(["true"], process={"terminal": True})
    res = sandbox.rt.run_cmd("create", "--bundle", str(b.path), sandbox.new_id())
    assert res.returncode == 1
    assert "console-socket" in res.stderr
    assert not sandbox.leaks()


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) from util-linux")
def test_foreground_run_with_a_terminal(sandbox: Sandbox) -> None:
    """`run` of a terminal process under a real tty: pyrunc proxies it and returns the status."""
    b = sandbox.bundle(["sh", "-c", "tty; read line; echo got:$line; exit 4"],
                       process={"terminal": True})
    argv = " ".join(sandbox.rt.argv("run", "--bundle", str(b.path), sandbox.new_id()))
    res = subprocess.run(["script", "-qec", argv, "/dev/null"], input="hello\n",
                         capture_output=True, text=True, timeout=60)
    assert "/dev/pts/" in res.stdout, res
    assert "got:hello" in res.stdout, res
    assert res.returncode == 4, res


def test_foreground_run_with_a_terminal_ends_with_its_input(sandbox: Sandbox) -> None:
    """`run` of an interactive shell on a pty with stdin a pipe that ends (the config `spec`
    writes, run by a script): the shell gets end-of-file, as from ^D, and exits; pyrunc waited
    for ever (newc23). What was piped in ran first."""
    b = sandbox.bundle(["sh"], process={"terminal": True})
    cid = sandbox.new_id()
    try:
        res = sandbox.rt.run_cmd("run", "--bundle", str(b.path), cid, input="echo ran:$((6*7))\n",
                                 timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("run of a terminal sh did not end when its input did")
    finally:
        sandbox.rt.run_cmd("delete", "--force", cid)
    assert res.returncode == 0, res
    assert "ran:42" in res.stdout, res
    assert not sandbox.leaks()


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) from util-linux")
def test_foreground_exec_with_a_terminal_starts_at_the_callers_size(sandbox: Sandbox) -> None:
    """`exec -t` under a real tty: the process finds the caller's window size on its pty from
    its first instruction. pyrunc copied the size over only once the process had exec'd, so
    an early `stty size` often saw 0 rows (busybox: 'stty: standard input', about half the
    runs here, more since termios and tty are imported at that moment)."""
    b = sandbox.bundle(["sleep", "1000"])
    cid = sandbox.new_id()
    sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out")
    sandbox.rt.run_cmd("start", cid, check=True)
    argv = " ".join(sandbox.rt.argv("exec", "-t", cid, "stty", "size"))
    for _ in range(10):
        res = subprocess.run(["script", "-qec", f"stty rows 33 cols 111; {argv}", "/dev/null"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "33 111" in res.stdout, res
