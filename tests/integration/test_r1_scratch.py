from __future__ import annotations
import os, threading
from pathlib import Path
from typing import Any
from .test_seccomp import Agent


def test_listener_fd_not_in_container(sandbox: Any, tmp_path: Path) -> None:
    agent = Agent(str(tmp_path / "agent.sock"))
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path,
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    def supervise() -> None:
        agent.accept(); first = agent.fd
        agent.accept(); os.close(first)
    t = threading.Thread(target=supervise, daemon=True); t.start()
    try:
        b = sandbox.bundle(["sleep", "60"], linux={"seccomp": profile})
        cid = sandbox.new_id()
        sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out")
        pid = sandbox.rt.state(cid)["pid"]
        init_fds = {n: os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
        sandbox.rt.run_cmd("start", cid, check=True)
        res = sandbox.rt.run_cmd("exec", cid, "sh", "-c", "ls -l /proc/self/fd/ /proc/1/fd/")
        after = {n: os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
        sandbox.rt.run_cmd("kill", cid, "KILL")
        t.join(25)
    finally:
        agent.close()
    print("INIT created", init_fds)
    print("INIT running", after)
    print(res.stdout, res.stderr)
    assert False
