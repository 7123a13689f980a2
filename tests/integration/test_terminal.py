"""Terminals: the console socket contract engines rely on, and a foreground tty run."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from .conftest import Sandbox


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


def test_console_socket_gets_the_pty(sandbox: Sandbox) -> None:
    """create --console-socket: one message, the pty name as payload and one fd; the container's
    stdio is that pty, of the configured size, and /dev/console is its slave."""
    b = sandbox.bundle(["sh", "-c", "tty; stty size; ls -l /dev/console | cut -c1"],
                       process={"terminal": True, "consoleSize": {"height": 33, "width": 99}})
    rt = sandbox.rt
    recv = ConsoleReceiver(sandbox.tmp / "console.sock")
    cid = sandbox.new_id()
    rt.create(b, cid, "--console-socket", str(recv.path), out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    out = recv.finish()
    assert recv.name.startswith(b"/dev/pts/")
    assert len(recv.fds) == 1
    lines = [ln.strip() for ln in out.splitlines()]
    assert lines[0].startswith("/dev/pts/"), out
    assert lines[1] == "33 99", out
    assert lines[2] == "c", out
    rt.wait_status(cid, "stopped")
    rt.run_cmd("delete", cid, check=True)


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
