"""What the runtime writes through /proc and /dev inside the container must land where it
means to, never on the host.

- sysctls are written through the container's /proc/sys: if a config mount puts a host
  directory there (or over /proc), the runtime must refuse, or at least not write into it;
- the exec fifo is reopened through /proc/self/fd after pivot_root: a fake /proc must not
  start the container early or receive the write;
- a sysctl that is not namespaced (vm.*, most of kernel.*), or a net.* sysctl without a
  network namespace, would set the HOST's value: refused (runc: "sysctl ... is not in a
  separate kernel namespace"). The tests ask for the host's current value, so even a
  runtime that wrongly writes it changes nothing;
- masked files are hidden by a bind of /dev/null that must be the real null device, not a
  file the rootfs calls /dev/null.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox
from .helpers import Runtime, mounts_under


def _proc_mount_index(config: dict[str, Any]) -> int:
    return next(i for i, m in enumerate(config["mounts"]) if m["destination"] == "/proc")


def _files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sysctl_not_written_through_a_bind_over_proc_sys(sandbox: Sandbox, rt: Runtime) -> None:
    """mounts: proc on /proc, then a host directory bound over /proc/sys; sysctl
    kernel.shmmax. Writing it would write the host file fake/kernel/shmmax."""
    fake = sandbox.host_dir("fake-proc-sys")
    (fake / "kernel").mkdir()
    (fake / "kernel" / "shmmax").write_text("host file\n")
    before = _files_under(fake)
    b = sandbox.bundle(["true"], linux={"sysctl": {"kernel.shmmax": "4096"}},
                       extra_mounts=[{"destination": "/proc/sys", "type": "bind",
                                      "source": str(fake), "options": ["rbind"]}])
    res = rt.run(b, sandbox.new_id())
    assert _files_under(fake) == before, (
        f"the runtime wrote a sysctl into a host directory bound over /proc/sys "
        f"(exit {res.returncode}, stderr {res.stderr!r})")
    assert mounts_under(fake) == []


def test_sysctl_not_written_through_a_bind_over_proc(sandbox: Sandbox, rt: Runtime) -> None:
    """A host directory bound on /proc instead of procfs; sysctl kernel.shmmax."""
    fake = sandbox.host_dir("fake-proc")
    (fake / "sys" / "kernel").mkdir(parents=True)
    (fake / "sys" / "kernel" / "shmmax").write_text("host file\n")
    before = _files_under(fake)
    b = sandbox.bundle(["true"], linux={"sysctl": {"kernel.shmmax": "4096"}})
    b.config["mounts"][_proc_mount_index(b.config)] = {
        "destination": "/proc", "type": "bind", "source": str(fake), "options": ["rbind"]}
    b.write()
    res = rt.run(b, sandbox.new_id())
    assert _files_under(fake) == before, (
        f"the runtime wrote a sysctl into a host directory bound over /proc "
        f"(exit {res.returncode}, stderr {res.stderr!r})")


def test_exec_fifo_not_reopened_through_a_fake_proc(sandbox: Sandbox, rt: Runtime) -> None:
    """A host directory bound on /proc, holding regular files self/fd/0..255: the init's
    wait for `start` (reopening the exec fifo through /proc/self/fd/N) must not succeed on
    a file of that directory -- which would run the container before `start` and write to
    the host."""
    fake = sandbox.host_dir("fake-proc")
    (fake / "self" / "fd").mkdir(parents=True)
    for n in range(256):
        (fake / "self" / "fd" / str(n)).write_bytes(b"")
    before = _files_under(fake)
    marker = sandbox.host_dir("marker")
    # No masked or read-only paths: nothing else goes through /proc before the fifo.
    b = sandbox.bundle(["sh", "-c", "echo started > /marker/started"],
                       linux={"maskedPaths": [], "readonlyPaths": []},
                       extra_mounts=[{"destination": "/marker", "type": "bind",
                                      "source": str(marker), "options": ["rbind"]}])
    b.config["mounts"][_proc_mount_index(b.config)] = {
        "destination": "/proc", "type": "bind", "source": str(fake), "options": ["rbind"]}
    b.write()
    cid = sandbox.new_id()
    res = rt.create(b, cid, out_dir=sandbox.tmp / "out", check=False)
    if res.returncode == 0:
        st = rt.state(cid)
        assert st["status"] == "created", f"the container did not wait for start: {st}"
        assert not (marker / "started").exists(), "the container ran before start"
    else:
        assert len(res.stderr.splitlines()) == 1, res.stderr
    assert _files_under(fake) == before, "the runtime wrote into a host directory posing as /proc"


def _host_sysctl(key: str) -> str:
    return Path("/proc/sys/" + key.replace(".", "/")).read_text().strip()


@pytest.mark.parametrize("key,drop_netns", [
    ("vm.overcommit_ratio", False),     # not namespaced at all
    ("kernel.ctrl-alt-del", False),     # kernel.* beyond the ipc ones is global
    ("net.core.somaxconn", True),       # namespaced, but the container shares the host's netns
])
def test_host_sysctl_refused(sandbox: Sandbox, rt: Runtime, key: str, drop_netns: bool) -> None:
    """A sysctl the container would share with the host is refused with a message naming
    it (the value asked is the host's current one, so nothing changes either way)."""
    value = _host_sysctl(key)
    linux: dict[str, Any] = {"sysctl": {key: value}}
    b = sandbox.bundle(["true"], linux=linux)
    if drop_netns:
        b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"]
                                           if ns["type"] != "network"]
        b.write()
    res = rt.run(b, sandbox.new_id())
    assert _host_sysctl(key) == value
    assert res.returncode == 1, f"a host-wide sysctl {key} was accepted (exit {res.returncode})"
    assert key in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_namespaced_sysctl_still_works(sandbox: Sandbox, rt: Runtime) -> None:
    """The refusal above must not cost the legitimate case: kernel.shmmax (ipc namespace)
    and net.ipv4.ip_forward (network namespace) are set inside, not on the host."""
    host = (_host_sysctl("kernel.shmmax"), _host_sysctl("net.ipv4.ip_forward"))
    want_fwd = "0" if host[1] == "1" else "1"
    out = sandbox.sh_ok("cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward",
                        linux={"sysctl": {"kernel.shmmax": "123456789",
                                          "net.ipv4.ip_forward": want_fwd}})
    assert out.split() == ["123456789", want_fwd]
    assert (_host_sysctl("kernel.shmmax"), _host_sysctl("net.ipv4.ip_forward")) == host


def test_masked_path_source_is_the_real_dev_null(sandbox: Sandbox, rt: Runtime) -> None:
    """/dev is a bind of a host directory whose `null` is a regular file: masking
    /etc/secret.txt with it would show that file's content in the container and let the
    container write to the host file. Refused, or masked by the real null device."""
    fake_dev = sandbox.host_dir("fake-dev")
    (fake_dev / "null").write_text("FAKE NULL\n")
    before = _files_under(fake_dev)
    b = sandbox.bundle(["sh", "-c", "cat /etc/secret.txt; echo appended >> /etc/secret.txt; echo rc=$?"],
                       linux={"maskedPaths": ["/etc/secret.txt"]})
    b.config["root"]["readonly"] = False
    for m in b.config["mounts"]:
        if m["destination"] == "/dev":
            m.update(type="bind", source=str(fake_dev), options=["rbind"])
    b.config["mounts"] = [m for m in b.config["mounts"]
                          if not m["destination"].startswith("/dev/")]
    b.write()
    res = rt.run(b, sandbox.new_id())
    assert "FAKE NULL" not in res.stdout
    assert "top secret" not in res.stdout
    assert _files_under(fake_dev) == before
    if res.returncode == 1:
        assert "null" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_net_sysctl_refused_in_a_joined_host_netns(sandbox: Sandbox, rt: Runtime) -> None:
    """linux.namespaces joins a network namespace by a path that is the host's under another
    name than /proc/1/ns/net (here the test process's own /proc/PID/ns/net): a net.* sysctl
    would set the host's value. runc compares the namespace's inode with the host's and
    refuses ("not allowed in host network namespace"); so must pyrunc."""
    key = "net.core.somaxconn"
    value = _host_sysctl(key)
    b = sandbox.bundle(["true"], linux={"sysctl": {key: value}})
    for ns in b.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/proc/{os.getpid()}/ns/net"
    b.write()
    res = rt.run(b, sandbox.new_id())
    assert _host_sysctl(key) == value
    assert res.returncode == 1, "a net.* sysctl was accepted for a joined host network namespace"
    assert key in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_kernel_hostname_sysctl_refused(sandbox: Sandbox, rt: Runtime) -> None:
    """kernel.hostname as a sysctl would fight the `hostname` field (runc 1.2+ refuses it,
    naming the field); kernel.domainname has no such conflict and is set inside."""
    b = sandbox.bundle(["cat", "/proc/sys/kernel/hostname"], hostname="box-a",
                       linux={"sysctl": {"kernel.hostname": "box-b"}})
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 1, f"kernel.hostname was accepted: {res.stdout!r}"
    assert "kernel.hostname" in res.stderr and "hostname" in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert "box-b" not in res.stdout
    assert rt.list_ids() == []
    out = sandbox.sh_ok("cat /proc/sys/kernel/domainname", hostname="box-a",
                        linux={"sysctl": {"kernel.domainname": "example.test"}})
    assert out == "example.test\n"


@pytest.mark.parametrize("dest", ["/proc/1", "/sneaky"])
def test_bind_inside_proc_is_refused(sandbox: Sandbox, rt: Runtime, dest: str) -> None:
    """The image's `evilproc` (fd/0..63 symlinks to /decoy) bound on /proc/1 -- or on an
    image symlink /sneaky -> /proc/1 -- redirected every masked and read-only path (they
    are bound from /proc/1/fd/N) to /decoy: core_pattern stayed writable, /proc/keys
    unmasked. runc refuses any destination inside /proc but a few: so do we, in its words."""
    b = sandbox.bundle(["cat", "/proc/keys"], extra_mounts=[
        {"destination": dest, "type": "bind", "source": "evilproc", "options": ["rbind"]}])
    evil = b.rootfs / "evilproc"
    (evil / "fd").mkdir(parents=True)
    (b.rootfs / "decoy").write_text("decoy\n")
    for n in range(64):
        os.symlink("/decoy", evil / "fd" / str(n))
    if dest == "/sneaky":
        os.symlink("/proc/1", b.rootfs / "sneaky")
    b.config["mounts"][-1]["source"] = str(evil)
    b.write()
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 1, f"a bind on {dest} was accepted: {res}"
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert '"/proc/1" cannot be mounted because it is inside /proc' in res.stderr, res.stderr
    assert (b.rootfs / "decoy").read_text() == "decoy\n"


def test_host_oom_score_adj_bound_on_a_sysctl_is_refused(sandbox: Sandbox, rt: Runtime) -> None:
    """A host process's /proc/PID/oom_score_adj (a `sleep` of the test) bound on
    /proc/sys/net/ipv4/ip_forward, and the sysctl net.ipv4.ip_forward=777: the file passes
    a procfs magic check, so the sysctl wrote the host process's oom_score_adj. Refused
    (inside /proc), and the process is untouched."""
    import subprocess
    victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        adj = Path(f"/proc/{victim.pid}/oom_score_adj")
        before = adj.read_text()
        b = sandbox.bundle(["true"], linux={"sysctl": {"net.ipv4.ip_forward": "777"}},
                           extra_mounts=[{"destination": "/proc/sys/net/ipv4/ip_forward",
                                          "type": "bind", "source": str(adj),
                                          "options": ["bind"]}])
        res = rt.run(b, sandbox.new_id())
        assert adj.read_text() == before, "a sysctl wrote a host process's oom_score_adj"
        assert res.returncode == 1, res
        assert len(res.stderr.splitlines()) == 1, res.stderr
        assert "cannot be mounted because it is inside /proc" in res.stderr, res.stderr
    finally:
        victim.kill()
        victim.wait(5)


def test_the_mounts_runc_allows_inside_proc_still_work(sandbox: Sandbox, rt: Runtime) -> None:
    """lxcfs-style binds on /proc/uptime and /proc/meminfo are allowed (runc's list)."""
    fake = sandbox.host_dir("lxcfs")
    (fake / "uptime").write_text("12345.00 0.00\n")
    (fake / "meminfo").write_text("MemTotal: 1 kB\n")
    out = sandbox.sh_ok("cat /proc/uptime /proc/meminfo", extra_mounts=[
        {"destination": f"/proc/{n}", "type": "bind", "source": str(fake / n),
         "options": ["bind", "ro"]} for n in ("uptime", "meminfo")])
    assert out == "12345.00 0.00\nMemTotal: 1 kB\n"


def test_host_process_dir_bound_on_proc_is_refused(sandbox: Sandbox, rt: Runtime) -> None:
    """A host process's /proc/PID (on procfs, so runc takes it) bound on /proc: the masked
    paths would find nothing to mask and /proc/root would be that process's root. Only a
    procfs root (a proc mount, or a bind of one) may go on /proc."""
    b = sandbox.bundle(["cat", "/proc/status"], linux={"maskedPaths": [], "readonlyPaths": []})
    b.config["mounts"][_proc_mount_index(b.config)] = {
        "destination": "/proc", "type": "bind", "source": "/proc/1", "options": ["rbind"]}
    b.write()
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 1, f"a host /proc/1 bound on /proc was accepted: {res}"
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert '"/proc" cannot be mounted because it is not of type proc' in res.stderr, res.stderr
