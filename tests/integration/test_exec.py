"""Working with a running container: `exec`, `ps`, `pause`/`resume`, default `kill` signal."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .conftest import Sandbox
from .helpers import PATH_ENV, Runtime, cgroup_dirs, readline, reap_children, wait_for


def _running(sandbox: Sandbox, rt: Runtime, args: list[str] | None = None,
             **overrides: object) -> tuple[str, int]:
    b = sandbox.bundle(args or ["sleep", "1000"], **overrides)  # type: ignore[arg-type]
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    return cid, rt.state(cid)["pid"]


def test_exec_joins_the_container(sandbox: Sandbox, rt: Runtime) -> None:
    """`exec` runs in the container's namespaces and rootfs, with its own exit code."""
    cid, pid = _running(sandbox, rt, hostname="exec-host")
    res = rt.run_cmd("exec", cid, "sh", "-c",
                     "cat /proc/sys/kernel/hostname /etc/rootfs-marker; "
                     "readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; exit 5")
    assert res.returncode == 5, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["exec-host", "pyrunc-test-rootfs"]
    assert lines[2] == os.readlink(f"/proc/{pid}/ns/pid")
    assert lines[3] == os.readlink(f"/proc/{pid}/ns/mnt")


def test_exec_user_env_cwd(sandbox: Sandbox, rt: Runtime) -> None:
    """`exec --user --env --cwd` apply to the new process only."""
    cid, _ = _running(sandbox, rt)
    res = rt.run_cmd("exec", "--user", "1000:1000", "--env", "EXTRA=yes", "--cwd", "/etc",
                     cid, "sh", "-c", "id -u; id -g; echo $EXTRA; pwd")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1000", "1000", "yes", "/etc"]


def test_exec_user_with_no_access_to_cwd(sandbox: Sandbox, rt: Runtime) -> None:
    """runc's own case (its PR 2086): the container runs as uid 42 in /root (0700, its own);
    `exec --user 0` (without CAP_DAC_OVERRIDE) still starts there, since the cwd is entered
    before the capabilities are dropped. A cwd missing in the container gives runc's error."""
    b = sandbox.bundle(["sleep", "1000"], process={"cwd": "/root", "user": {"uid": 42, "gid": 42}})
    os.chown(b.rootfs / "root", 42, 42)
    os.chmod(b.rootfs / "root", 0o700)
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    res = rt.run_cmd("exec", "--user", "0", cid, "sh", "-c", "id -u; pwd")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "/root"]
    res = rt.run_cmd("exec", "--cwd", "/no/such/dir", cid, "true")
    assert res.returncode != 0
    assert 'chdir to cwd ("/no/such/dir") set in config.json failed: no such file or directory' \
        in res.stderr, res.stderr


def test_exec_process_in_container_cgroup(sandbox: Sandbox, rt: Runtime) -> None:
    """An exec'd process is placed in the container's cgroups: seen from the host its
    /proc/PID/cgroup ends in the config's cgroupsPath for every v1 controller."""
    cid, _ = _running(sandbox, rt)
    b = sandbox.bundles[-1]
    proc = rt.popen("exec", cid, "sh", "-c", "echo $$; exec sleep 1000")
    readline(proc.stdout)  # the pid inside the pid namespace, not ours to use
    # find the exec'd sleep on the host: a second process in the container's memory cgroup
    mem = [d for d in cgroup_dirs(b.cgroups_path) if d.parent.parent.name == "memory"]
    assert mem, "container has no memory cgroup"
    assert wait_for(lambda: len((mem[0] / "cgroup.procs").read_text().split()) == 2)
    init = rt.state(cid)["pid"]
    other = [int(p) for p in (mem[0] / "cgroup.procs").read_text().split() if int(p) != init]
    cg = Path(f"/proc/{other[0]}/cgroup").read_text().splitlines()
    for ctrl in ("memory", "pids", "cpu", "devices", "freezer"):
        line = [ln for ln in cg if ln.split(":")[1].split(",").count(ctrl)]
        assert line and line[0].endswith(":" + b.cgroups_path), (ctrl, cg)
    rt.run_cmd("kill", cid, "KILL", check=True)
    proc.wait(timeout=10)


def test_exec_stopped_container_fails(sandbox: Sandbox, rt: Runtime) -> None:
    """`exec` into a stopped container is an error."""
    cid, _ = _running(sandbox, rt, ["true"])
    rt.wait_status(cid, "stopped")
    res = rt.run_cmd("exec", cid, "true")
    assert res.returncode != 0
    assert res.stderr.strip()


def test_ps_json_lists_container_processes(sandbox: Sandbox, rt: Runtime) -> None:
    """`ps --format json` lists the host pids in the container."""
    cid, pid = _running(sandbox, rt)
    res = rt.run_cmd("ps", "--format", "json", cid)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [pid]


def test_pause_resume(sandbox: Sandbox, rt: Runtime) -> None:
    """`pause` freezes the container (status paused, no progress); `resume` thaws it."""
    host = sandbox.host_dir("ticks")
    cid, _ = _running(
        sandbox, rt, ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /mnt/t/n; "
                                  "sleep 0.02; done"],
        extra_mounts=[{"destination": "/mnt/t", "type": "bind", "source": str(host),
                       "options": ["bind", "rw"]}])
    counter = host / "n"
    assert wait_for(lambda: counter.exists() and counter.read_text().strip() != "")
    rt.run_cmd("pause", cid, check=True)
    assert rt.state(cid)["status"] == "paused"
    frozen = counter.read_text()
    time.sleep(0.3)
    assert counter.read_text() == frozen, "paused container kept running"
    rt.run_cmd("resume", cid, check=True)
    assert rt.state(cid)["status"] == "running"
    assert wait_for(lambda: counter.read_text() != frozen)


def test_kill_default_signal_is_term(sandbox: Sandbox, rt: Runtime) -> None:
    """`kill ID` without a signal sends SIGTERM."""
    host = sandbox.host_dir("sig")
    cid, _ = _running(
        sandbox, rt, ["sh", "-c", "trap 'echo TERM > /mnt/s/got; exit 0' TERM; "
                                  "echo up > /mnt/s/up; while :; do sleep 0.05; done"],
        extra_mounts=[{"destination": "/mnt/s", "type": "bind", "source": str(host),
                       "options": ["bind", "rw"]}])
    assert wait_for(lambda: (host / "up").exists())
    rt.run_cmd("kill", cid, check=True)
    rt.wait_status(cid, "stopped")
    assert (host / "got").read_text() == "TERM\n"


def test_state_pid_is_the_user_process(sandbox: Sandbox, rt: Runtime) -> None:
    """The pid in `state` stays the same from created to running, becomes the user process
    at start, and is pid 1 of the container's pid namespace."""
    b = sandbox.bundle(["sleep", "1000"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    pid = rt.state(cid)["pid"]
    rt.run_cmd("start", cid, check=True)
    assert rt.state(cid)["pid"] == pid
    assert wait_for(lambda: Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\0" b"1000\0")
    nspid = [ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
             if ln.startswith("NSpid:")][0].split()
    assert nspid[1] == str(pid) and nspid[-1] == "1"


def _running_with_bad_binary(sandbox: Sandbox, rt: Runtime) -> str:
    b = sandbox.bundle(["sleep", "1000"])
    bad = b.path / "rootfs" / "bad"
    bad.write_bytes(b"\x7fELF but not really\n")
    bad.chmod(0o755)
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    return cid


def test_exec_that_the_kernel_refuses_is_one_error(sandbox: Sandbox, rt: Runtime) -> None:
    """An executable file the kernel cannot run (ENOEXEC) passes every check before the
    exec itself, which happens in pyrunc-init: its failure must still come back as the
    exec's one-line error, not as a process that exits 127."""
    cid = _running_with_bad_binary(sandbox, rt)
    res = rt.run_cmd("exec", cid, "/bad")
    assert res.returncode not in (0, 127), res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "exec format error" in lines[0].lower(), res.stderr


@pytest.mark.pyrunc_only
def test_detached_exec_that_the_kernel_refuses_fails(sandbox: Sandbox, rt: Runtime) -> None:
    """The same with `exec -d`: the caller learns of it from the exit status, not only
    from the process's stderr (runc 1.1.5 exits 0 here)."""
    cid = _running_with_bad_binary(sandbox, rt)
    reap_children()  # the container's exec fifo relay, gone since `start` (process/init.py)
    res = rt.run_cmd("exec", "-d", cid, "/bad")
    # The failed process was reparented to us (a subreaper), as it would be to a shim:
    # reap it once it has exited, or the container's pid namespace cannot die.
    assert wait_for(lambda: os.waitpid(-1, os.WNOHANG)[0] != 0, timeout=10)
    assert res.returncode == 255, res  # runc 1.5: "exec failed: ...", 255
    assert res.stderr.strip().lower().endswith("exec: /bad: exec format error"), res.stderr


def test_exec_process_json_without_capabilities_has_none(sandbox: Sandbox, rt: Runtime) -> None:
    """issue 15.1: `exec --process` with a process.json that has no capabilities runs the
    process with none (CapEff 0 and every other set empty), not with root's full set."""
    cid, _ = _running(sandbox, rt)
    pj = sandbox.tmp / "process.json"
    pj.write_text(json.dumps({"args": ["grep", "^Cap", "/proc/self/status"], "cwd": "/",
                              "env": [PATH_ENV], "user": {"uid": 0, "gid": 0}}))
    res = rt.run_cmd("exec", "--process", str(pj), cid)
    assert res.returncode == 0, res.stderr
    masks = {line.split(":")[0]: int(line.split()[1], 16) for line in res.stdout.splitlines()}
    assert masks == dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), 0), masks


def test_exec_cpu_affinity_in_the_spec_syntax(sandbox: Sandbox, rt: Runtime) -> None:
    """execCPUAffinity (exec only: the spec says it is not for the init) takes the spec's
    pattern: spaces and empty items, which runc trims and skips, were refused. The exec'd
    process runs on CPU 0 only, while the container's init keeps every CPU."""
    cid, pid = _running(sandbox, rt)
    pj = sandbox.tmp / "process.json"
    pj.write_text(json.dumps({"args": ["grep", "Cpus_allowed_list", "/proc/self/status"],
                              "cwd": "/", "env": [PATH_ENV], "user": {"uid": 0, "gid": 0},
                              "execCPUAffinity": {"initial": " 0 ,", "final": "0 , ,0-0"}}))
    res = rt.run_cmd("exec", "--process", str(pj), cid)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["Cpus_allowed_list:", "0"]

    def allowed(status: str) -> list[str]:
        with open(status) as f:
            return [line.split()[1] for line in f if line.startswith("Cpus_allowed_list")]

    assert allowed(f"/proc/{pid}/status") == allowed("/proc/self/status")


def test_exec_env_past_execve_limit_refused(sandbox: Sandbox, rt: Runtime) -> None:
    """--env adds to the container's env after config.json's execve check: 1.2 MB there
    plus 1.2 MB of --env is past what execve takes (2 MiB here), and was an internal error
    (a TypeError); now one line naming the limit, exit 255 as runc, nothing started."""
    big = [f"A{i}=" + "x" * 100_000 for i in range(12)]
    cid, pid = _running(sandbox, rt, process={"env": [PATH_ENV, *big]})
    flags = [f for i in range(12) for f in ("--env", f"B{i}=" + "x" * 100_000)]
    res = rt.run_cmd("exec", *flags, cid, "true")
    assert res.returncode == 255, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "more than execve takes" in lines[0], res.stderr
    assert "internal error" not in lines[0]
    assert rt.log_entries()[-1]["msg"] == lines[0]
    assert open(f"/proc/{pid}/task/{pid}/children").read().split() == []


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="LINUX32 shows as i686 on x86_64")
def test_exec_gets_the_containers_personality(sandbox: Sandbox, rt: Runtime) -> None:
    """linux.personality applies to exec'd processes too, as runc's setns init sets it: an
    exec'd `uname -m` says i686 under LINUX32, and the kernel shows PER_LINUX32 (0x0008) for
    the exec'd process from the host, as for the init."""
    cid, pid = _running(sandbox, rt, linux={"personality": {"domain": "LINUX32"}})
    assert Path(f"/proc/{pid}/personality").read_text().strip() == "00000008"
    res = rt.run_cmd("exec", cid, "sh", "-c", "uname -m; cat /proc/self/personality")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["i686", "00000008"], res.stdout
    cid2, _ = _running(sandbox, rt)
    res = rt.run_cmd("exec", cid2, "uname", "-m")
    assert res.stdout.strip() == "x86_64", res


_NO_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


def test_exec_keeps_the_linux_settings_the_container_was_created_with(
        sandbox: Sandbox, rt: Runtime) -> None:
    """An exec'd process gets the seccomp profile, personality and memory policy the
    container was created with, as runc's (from the config it saved at create), whatever
    config.json says by then: pyrunc read them from the bundle at each exec, so an edit of
    config.json after create (by the container itself when it can reach it, root.path ".")
    dropped the seccomp filter of every later exec (Seccomp 0, mkdir allowed) and a
    config.json broken or gone made `exec --process` fail."""
    b = sandbox.bundle(["sleep", "1000"], linux={"seccomp": _NO_MKDIR})
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    pj = sandbox.tmp / "process.json"
    pj.write_text(json.dumps({**b.config["process"], "args": [
        "sh", "-c", "grep '^Seccomp:' /proc/self/status; cat /proc/self/personality; "
        "mkdir /dev/made && echo MADE"]}))  # /dev: a tmpfs
    del b.config["linux"]["seccomp"]
    b.config["linux"]["personality"] = {"domain": "LINUX32"}
    b.write()
    for config in ("edited", "broken", "gone"):
        if config == "broken":
            b.config_path.write_text("{")
        elif config == "gone":
            b.config_path.unlink()
        res = rt.run_cmd("exec", "--process", str(pj), cid)
        assert res.returncode != 0 and "MADE" not in res.stdout, (config, res)
        assert res.stdout.split() == ["Seccomp:", "2", "00000000"], (config, res)
        assert "Operation not permitted" in res.stderr, (config, res.stderr)
    # a container made by a pyrunc that kept nothing for exec: the bundle's config, as before
    (rt.root / cid / "exec.json").unlink()
    b.write()
    res = rt.run_cmd("exec", "--process", str(pj), cid)
    assert res.stdout.split()[:2] == ["Seccomp:", "0"] and "MADE" in res.stdout, res


def test_exec_command_starts_from_the_process_as_created(sandbox: Sandbox, rt: Runtime) -> None:
    """`exec ID CMD` (no --process) starts from the container's process as created:
    capabilities, noNewPrivileges, user, env. runc rereads config.json there, so a container
    that can write its bundle (root.path ".", or a bind of it) raised its next exec's
    capabilities and dropped no_new_privs by editing config.json (rev20a, finding 1)."""
    caps = ["CAP_KILL"]
    b = sandbox.bundle(["sleep", "1000"])
    b.config["process"].update(
        capabilities={"bounding": caps, "effective": caps, "permitted": caps},
        noNewPrivileges=True, env=["PATH=/bin", "WHO=created"])
    b.write()
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    b.config["process"].update(
        capabilities={k: ["CAP_SYS_ADMIN", "CAP_KILL"] for k in ("bounding", "effective",
                                                                 "permitted")},
        noNewPrivileges=False, env=["PATH=/bin", "WHO=edited"])
    b.write()
    script = "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; echo $WHO"
    res = rt.run_cmd("exec", cid, "sh", "-c", script)
    assert res.returncode == 0, res
    assert res.stdout.split() == ["CapEff:", "0000000000000020", "NoNewPrivs:", "1",
                                  "created"], res
    # a broken config.json no longer matters to it either
    b.config_path.write_text("{")
    res = rt.run_cmd("exec", cid, "sh", "-c", "echo $WHO")
    assert res.returncode == 0 and res.stdout.split() == ["created"], res
    # a container made by a pyrunc that kept no process: the bundle's config, as before
    kept = json.loads((rt.root / cid / "exec.json").read_text())
    del kept["process"]
    (rt.root / cid / "exec.json").write_text(json.dumps(kept))
    b.write()
    res = rt.run_cmd("exec", cid, "sh", "-c", script)
    assert res.stdout.split()[-1] == "edited" and "0000000000200020" in res.stdout, res
