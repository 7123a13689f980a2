"""containerd's CRI plugin drives the runtime as kubelet would (issue 17).

One pod: a sandbox (RunPodSandbox) with its own network (a test CNI plugin, nothing on the host
changes), pid, ipc and uts namespaces, and two containers that share them (CreateContainer,
StartContainer), then ExecSync, ContainerStats, StopContainer, RemoveContainer, StopPodSandbox,
RemovePodSandbox; afterwards nothing of the runtime's may be left (state, cgroups, mounts,
processes). Sharing is checked from inside (hostname, each other's processes, /dev/shm, eth0) and
from the host (the namespace inodes of the three init processes).

PYRUNC_CRI_SYSTEMD=1 or PYRUNC_TEST_CGROUP_DRIVER=systemd (the systemd guest,
tests/vm/run-systemd-host.sh): the runc.v2 runtime gets
SystemdCgroup = true and the pod a slice as cgroup parent, kubelet's systemd form; the containers
must then be systemd scopes in that slice, with their properties and cgroup files checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

from clients_support import (
    DEFAULT_TIMEOUT,
    MountNamespace,
    Runtime,
    build_image_archive,
    cgroup_dirs,
    close_namespace,
    memory_limit_of,
    pid_alive,
    wait_for,
)
from cri_support import (
    BUSYBOX_REF,
    CRI_NAMESPACE,
    PAUSE_ENTRYPOINT,
    PAUSE_REF,
    POD_ADDRESS,
    BusNamespace,
    CriClient,
    CriContainerd,
    load_api,
)

# the systemd guest's "systemd" phase says PYRUNC_TEST_CGROUP_DRIVER=systemd for all its tests
SYSTEMD = (os.environ.get("PYRUNC_CRI_SYSTEMD") == "1"
           or os.environ.get("PYRUNC_TEST_CGROUP_DRIVER") == "systemd")
MEMORY_LIMIT = 48 * 1024 * 1024
HOSTNAME = "pyrunc-cri-pod"
NAMESPACES = ("net", "pid", "ipc", "uts")


@pytest.fixture(scope="module")
def cri_ns(clients_workdir: Path, clients_token: str) -> Iterator[MountNamespace]:
    """The namespace containerd runs in: the clients' one, plus the system bus in systemd mode.
    Its teardown is the backstop: what is left inside is killed, our cgroups and slice removed."""
    ns = BusNamespace() if SYSTEMD else MountNamespace()
    ns.start()
    try:
        yield ns
    finally:
        if SYSTEMD:
            subprocess.run(["systemctl", "stop", pod_slice(clients_token)], capture_output=True, timeout=60)
        # go-cni keeps its results cache there whatever containerd's config says
        close_namespace(ns, [f"pyrunc-clients-{clients_token}-cri"], ["/var/lib/cni/"])


@pytest.fixture(scope="module")
def cri(clients_workdir: Path, cri_ns: MountNamespace, runtime: Runtime,
        image_files: tuple[Path, Path]) -> Iterator[tuple[CriContainerd, CriClient]]:
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "ip", "nsenter"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed: run tests/clients/setup.sh")
    try:
        load_api()
    except ImportError as exc:
        pytest.skip(str(exc))
    if SYSTEMD and not os.path.isdir("/run/systemd/system"):
        pytest.skip("PYRUNC_CRI_SYSTEMD=1 needs systemd as PID 1 (tests/vm/run-systemd-host.sh)")
    pause = clients_workdir / "pause.tar"
    build_image_archive(image_files[0], pause, ref=PAUSE_REF, docker_ref="pyrunc-pause:latest",
                        entrypoint=PAUSE_ENTRYPOINT)
    cd = CriContainerd(clients_workdir / "cri", cri_ns, runtime, systemd=SYSTEMD)
    client = None
    try:
        client = cd.start(timeout=max(60, 2 * DEFAULT_TIMEOUT))
        cd.import_image(image_files[1])
        cd.import_image(pause)
        yield cd, client
    finally:
        try:
            if client is not None:
                cd.remove_all(client)
                client.close()
        finally:
            cd.stop()


def pod_slice(token: str) -> str:
    """The slice all of this session's pods go in (systemd mode), under kubelet's kubepods.slice."""
    return f"kubepods-pyrunc{token}.slice"


def cgroup_parent(token: str, uid: str) -> str:
    """kubelet's per-pod parent: cgroupfs `/kubepods/besteffort/pod<uid>`, or with the systemd
    driver the slice path whose last element containerd hands on (`slice:cri-containerd:<id>`)."""
    if SYSTEMD:
        return f"/kubepods.slice/{pod_slice(token)}/kubepods-pyrunc{token}-pod{uid}.slice"
    return f"/pyrunc-clients-{token}-cri/besteffort/pod{uid}"


def ns_ids(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}


def cgroup_lines(pid: int) -> list[tuple[str, str]]:
    """(controllers, path) of each hierarchy pid is in."""
    out = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _hid, controllers, path = line.split(":", 2)
        out.append((controllers, path))
    return out


def systemctl_show(unit: str, *props: str) -> dict[str, str]:
    res = subprocess.run(["systemctl", "show", unit, "-p", ",".join(props)], capture_output=True,
                         text=True, timeout=60, check=True)
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def mounts_in(ns: MountNamespace, *needles: str) -> list[str]:
    text = Path(f"/proc/{ns.pid}/mountinfo").read_text()
    return [line for line in text.splitlines() if any(n in line for n in needles)]


def exec_sync(client: CriClient, cid: str, *cmd: str) -> Any:
    return client.call("ExecSync", container_id=cid, cmd=list(cmd), timeout=int(DEFAULT_TIMEOUT))


def test_pod_two_containers_kubelet_flow(cri: tuple[CriContainerd, CriClient], clients_token: str,
                                         cri_ns: MountNamespace, runtime: Runtime) -> None:
    calls_before = runtime.trace_log.read_text().count("\n") if runtime.trace_log else 0
    try:
        kubelet_flow(cri, clients_token, cri_ns, runtime, calls_before)
    except BaseException:
        # what anyone debugging this wants first: the runtime's calls and containerd's complaints
        cd = cri[0]
        calls = runtime.trace_log.read_text().splitlines()[calls_before:] if runtime.trace_log else []
        print("\nruntime calls:\n" + "\n".join(c.split("]", 1)[-1] for c in calls))
        if cd.daemon is not None:
            print("containerd:\n" + "\n".join(line for line in cd.daemon.log_tail(400).splitlines()
                                                if "level=error" in line or "level=warn" in line))
        raise


def kubelet_flow(cri: tuple[CriContainerd, CriClient], clients_token: str, mount_ns: MountNamespace,
                 runtime: Runtime, calls_before: int) -> None:
    cd, client = cri
    pb = client.pb
    assert client.call("ImageStatus", image=pb.ImageSpec(image=PAUSE_REF)).image.id, "pause image not seen by CRI"
    uid = uuid.uuid4().hex[:12]
    parent = cgroup_parent(clients_token, uid)
    pod_ns = pb.NamespaceOption(network=pb.POD, pid=pb.POD, ipc=pb.POD)
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="pod", uid=uid, namespace="pyrunc-test", attempt=0),
        hostname=HOSTNAME, log_directory=str(cd.log_dir / uid),
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=parent,
                                       security_context=pb.LinuxSandboxSecurityContext(namespace_options=pod_ns)))
    started = time.monotonic()

    sb = client.call("RunPodSandbox", config=sandbox_config).pod_sandbox_id
    status = client.call("PodSandboxStatus", pod_sandbox_id=sb).status
    assert status.state == pb.SANDBOX_READY
    assert status.network.ip == POD_ADDRESS.split("/")[0]
    sb_pid = client.info_pid("PodSandboxStatus", pod_sandbox_id=sb)

    def container(name: str, script: str, memory: int = 0) -> str:
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=BUSYBOX_REF),
            command=["sh", "-c", script], log_path=f"{name}/0.log",
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory),
                security_context=pb.LinuxContainerSecurityContext(namespace_options=pod_ns)))
        cid: str = client.call("CreateContainer", pod_sandbox_id=sb, config=cfg,
                               sandbox_config=sandbox_config).container_id
        client.call("StartContainer", container_id=cid)
        return cid

    # a: writes to the pod's /dev/shm, then sleeps (not pid 1: SIGTERM ends it); b: just sleeps
    a = container("a", "echo from-a > /dev/shm/marker; exec sleep 1001", memory=MEMORY_LIMIT)
    b = container("b", "exec sleep 1002")
    pids = {"sandbox": sb_pid, "a": client.info_pid("ContainerStatus", container_id=a),
            "b": client.info_pid("ContainerStatus", container_id=b)}
    for cid in (a, b):
        assert client.call("ContainerStatus", container_id=cid).status.state == pb.CONTAINER_RUNNING

    # From the host: one set of namespaces for all three, none of them the host's.
    ids = {k: ns_ids(p) for k, p in pids.items()}
    assert ids["a"] == ids["sandbox"] and ids["b"] == ids["sandbox"], ids
    host = ns_ids(os.getpid())
    assert all(ids["sandbox"][ns] != host[ns] for ns in NAMESPACES), (ids["sandbox"], host)

    # From inside: the pod's hostname, each other's processes, the shared /dev/shm and eth0.
    for cid in (a, b):
        r = exec_sync(client, cid, "hostname")
        assert (r.exit_code, r.stdout.decode().strip()) == (0, HOSTNAME)
    wait_for(lambda: exec_sync(client, b, "cat", "/dev/shm/marker").stdout == b"from-a\n", DEFAULT_TIMEOUT,
             "a's marker")
    ps = exec_sync(client, b, "ps", "-o", "pid,args").stdout.decode()
    assert "sleep 1001" in ps and "sleep 1002" in ps, ps
    assert "sleep 2147483647" in ps.splitlines()[1], ps  # pid 1 of the pod: the pause process
    ip = exec_sync(client, a, "ip", "-o", "-4", "addr", "show", "eth0").stdout.decode()
    assert POD_ADDRESS in ip, ip

    # ExecSync: stdout and stderr apart, the exit status.
    r = exec_sync(client, a, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 7)

    # Cgroups: the memory limit as set, seen from the host and inside; the container's place.
    assert memory_limit_of(pids["a"]) == MEMORY_LIMIT
    inside = exec_sync(client, a, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                       "2>/dev/null || cat /sys/fs/cgroup/memory.max").stdout.decode().strip()
    assert inside == str(MEMORY_LIMIT)
    check_cgroup_placement(parent, a, pids["a"])

    # ContainerStats (the shim reads the cgroup the runtime made): memory and CPU in use.
    stats = client.call("ContainerStats", container_id=a).stats
    assert stats.attributes.id == a
    assert stats.memory.working_set_bytes.value > 0 or stats.memory.usage_bytes.value > 0, stats
    assert stats.cpu.usage_core_nano_seconds.value > 0, stats

    # StopContainer: SIGTERM ends `sleep` (exit 143; 137 would be the SIGKILL after the grace period).
    client.call("StopContainer", container_id=a, timeout=int(DEFAULT_TIMEOUT))
    st = client.call("ContainerStatus", container_id=a).status
    assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, 143), st
    assert not pid_alive(pids["a"])
    client.call("RemoveContainer", container_id=a)
    # b is left running: StopPodSandbox must stop it (kubelet stops containers first; the API
    # requires the sandbox stop to kill what is left).
    client.call("StopPodSandbox", pod_sandbox_id=sb)
    assert not pid_alive(pids["b"]) and not pid_alive(pids["sandbox"])
    client.call("RemoveContainer", container_id=b)
    client.call("RemovePodSandbox", pod_sandbox_id=sb)
    elapsed = time.monotonic() - started

    # Nothing of the runtime's is left: state, processes (shim included), mounts, cgroups.
    root = cd.runtime_root / CRI_NAMESPACE
    assert not root.exists() or not os.listdir(root), os.listdir(root)
    wait_for(lambda: not [p for p in mount_ns.members() if p not in (cd.daemon.proc.pid if cd.daemon else 0,)
                          and "containerd-shim" in _cmdline(p)], DEFAULT_TIMEOUT, "the pod's shim to exit")
    assert not mounts_in(mount_ns, sb, a, b)
    check_cgroups_gone(parent, (sb, a, b))

    calls = runtime.trace_log.read_text().splitlines()[calls_before:] if runtime.trace_log else []
    verbs = Counter(_verb(c) for c in calls)
    if runtime.trace_log:
        assert {"create", "start", "exec", "kill", "delete"} <= set(verbs), verbs
    per_method: dict[str, float] = {}
    for method, seconds in client.timings:
        if method != "Version":
            per_method[method] = per_method.get(method, 0.0) + seconds
    timing = ", ".join(f"{m} {t:.2f}s" for m, t in per_method.items())
    print(f"\nCRI flow through {runtime.flavor} ({'systemd' if SYSTEMD else 'cgroupfs'}): "
          f"{elapsed:.1f} s, {len(calls)} runtime calls ({dict(verbs)}); {timing}")


def _verb(call: str) -> str:
    """The subcommand of a traced runtime call (the first word after the global options)."""
    words = call.split("]", 1)[-1].split()
    while words and words[0].startswith("--"):
        words = words[1:] if "=" in words[0] or words[0] == "--systemd-cgroup" else words[2:]
    return words[0] if words else "?"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def check_cgroup_placement(parent: str, cid: str, pid: int) -> None:
    """cgroupfs: /<parent>/<id> in every hierarchy. systemd: the scope cri-containerd-<id>.scope
    in the pod's slice, which systemd knows as the unit's cgroup, with the limit as a property."""
    lines = cgroup_lines(pid)
    if not SYSTEMD:
        want = f"{parent}/{cid}"
        wrong = [(c, p) for c, p in lines if p != want and c != "name=systemd"]
        assert not wrong, (want, lines)
        return
    slice_name = parent.rsplit("/", 1)[1]
    scope = f"cri-containerd-{cid}.scope"
    want = f"{parent}/{scope}"
    assert lines == [("", want)], (want, lines)
    props = systemctl_show(scope, "ActiveState", "Slice", "ControlGroup", "MemoryMax", "Delegate",
                           "MemoryAccounting", "TasksAccounting")
    assert props["ActiveState"] == "active", props
    # as runc makes them: the cgroup delegated to the runtime, accounting on (kubelet reads it)
    assert (props["Delegate"], props["MemoryAccounting"], props["TasksAccounting"]) == ("yes", "yes", "yes"), props
    assert props["Slice"] == slice_name and props["ControlGroup"] == want, props
    assert props["MemoryMax"] == str(MEMORY_LIMIT), props
    assert Path(f"/sys/fs/cgroup{want}/memory.max").read_text().strip() == str(MEMORY_LIMIT)
    assert str(pid) in Path(f"/sys/fs/cgroup{want}/cgroup.procs").read_text().split()


def check_cgroups_gone(parent: str, ids: tuple[str, ...]) -> None:
    """No cgroup of the pod's containers and sandbox is left, nor (systemd) their scopes."""
    if SYSTEMD:
        for cid in ids:
            scope = f"cri-containerd-{cid}.scope"
            state = systemctl_show(scope, "ActiveState", "LoadState")
            assert state.get("ActiveState") != "active" or state.get("LoadState") == "not-found", (scope, state)
            assert not Path(f"/sys/fs/cgroup{parent}/{scope}").exists()
        return
    left = [str(d / cid) for d in cgroup_dirs(parent.strip("/")) for cid in ids if (d / cid).exists()]
    assert not left, left
