"""linux.memoryPolicy (runtime-spec 1.3): set_mempolicy(2) in the init, and in each process
`exec` starts, before exec; seen from inside in /proc/self/numa_maps (the policy is inherited
across exec) and from the host in /proc/PID/numa_maps. This VM has one NUMA node, 0."""

from __future__ import annotations

import os

import pytest

from .conftest import Sandbox
from .helpers import Runtime

FIRST_MAP = "grep -m1 . /proc/self/numa_maps"


@pytest.mark.parametrize(("policy", "shown"), [
    ({"mode": "MPOL_BIND", "nodes": "0"}, " bind:0 "),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
     " interleave=static:0 "),
    ({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]},
     " prefer=relative:0 "),
    ({"mode": "MPOL_LOCAL"}, " local "),
])
def test_policy_seen_inside(sandbox: Sandbox, policy: dict[str, object], shown: str) -> None:
    out = sandbox.sh_ok(FIRST_MAP, linux={"memoryPolicy": policy})
    assert shown in out, out


@pytest.mark.parametrize(("policy", "words"), [
    ({"mode": "MPOL_BIND", "nodes": "1000"}, "MPOL_BIND nodes 1000"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "MPOL_DEFAULT nodes 0"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "MPOL_BIND|MPOL_F_STATIC_NODES|MPOL_F_RELATIVE_NODES nodes 0"),
])
def test_kernel_refusal_is_one_clear_error(sandbox: Sandbox, policy: dict[str, object],
                                           words: str) -> None:
    res = sandbox.sh("true", linux={"memoryPolicy": policy})
    assert res.returncode == 1, res
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, res.stderr
    assert f"config.json: linux.memoryPolicy: the kernel refuses {words}: " in line, line
    assert not sandbox.leaks()


def test_huge_node_list_is_cheap_and_named_short(sandbox: Sandbox) -> None:
    """60000 repeats of "0-1023" (420 kB; 16 MiB of them is allowed): each range used to be
    listed node by node (61 million ints here; minutes and gigabytes at 16 MiB), and the
    kernel's refusal quoted the whole text back. Now a bit mask, and the policy is named by
    the ranges it has (MPOL_DEFAULT with nodes: the kernel's EINVAL)."""
    res = sandbox.sh("true", linux={"memoryPolicy": {"mode": "MPOL_DEFAULT",
                                                     "nodes": ",".join(["0-1023"] * 60000)}})
    assert res.returncode == 1, res
    line = res.stderr.strip()
    assert line.startswith("config.json: linux.memoryPolicy: the kernel refuses "
                           "MPOL_DEFAULT nodes 0-1023: "), line[:300]
    assert len(line) < 200 and not sandbox.leaks()


def test_exec_gets_the_containers_policy(sandbox: Sandbox, rt: Runtime) -> None:
    """As with runc (its 'run and exec memory policy' test): a process `exec` starts has the
    container's linux.memoryPolicy too, seen inside and, for a detached one, from the host."""
    b = sandbox.bundle(["sleep", "1000"], linux={"memoryPolicy": {
        "mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    init = rt.state(cid)["pid"]
    assert " prefer=relative:0 " in _first_map(init)
    res = rt.run_cmd("exec", cid, "sh", "-c", FIRST_MAP)
    assert res.returncode == 0 and " prefer=relative:0 " in res.stdout, res
    pid_file = sandbox.tmp / "exec.pid"
    rt.run_cmd("exec", "-d", "--pid-file", str(pid_file), cid,
               "sh", "-c", "exec sleep 1000 >/dev/null 2>&1", check=True)  # not holding our pipes
    pid = int(pid_file.read_text())
    try:
        assert " prefer=relative:0 " in _first_map(pid)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)  # reparented to us, a subreaper: a zombie would hold the pid ns


def test_exec_without_a_policy_keeps_the_default(sandbox: Sandbox, rt: Runtime) -> None:
    b = sandbox.bundle(["sleep", "1000"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    res = rt.run_cmd("exec", cid, "sh", "-c", FIRST_MAP)
    assert res.returncode == 0 and " default " in res.stdout, res


def _first_map(pid: int) -> str:
    with open(f"/proc/{pid}/numa_maps") as f:
        return f.readline()
