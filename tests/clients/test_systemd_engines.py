"""podman and dockerd on a systemd host, each with its systemd cgroup manager, through pyrunc.

podman (`cgroup_manager = "systemd"`, its default there) and dockerd (its defaults: the systemd
driver on cgroup v2) pass the runtime `--systemd-cgroup` and `machine.slice:libpod:<id>` /
`system.slice:docker:<id>`; the container must live in the transient scope pyrunc's systemd
driver starts: its limits are unit properties (`systemctl show`) and cgroup files, exec joins
it, pause freezes it, update changes both, and nothing of it stays after stop and rm.
Runs only where systemd is PID 1 (the guest of tests/vm/run-systemd-host.sh); the build host
has no systemd and skips. Each engine call takes 5-30 s there (emulated), each daemon a minute
to come up: hence the long timeouts and one container per engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clients_support import (CONTAINER_PATH, DOCKER_IMAGE_REF, Containerd, Dockerd,
                             build_rootfs_tar, clean_env, detect_runtime, run)

CG = Path("/sys/fs/cgroup")
SLOW = 300.0
PODMAN_IMAGE = "localhost/pyrunc-busybox:latest"
MiB = 1 << 20

pytestmark = [
    pytest.mark.skipif(not os.path.isdir("/run/systemd/system"),
                       reason="systemd is not PID 1 here (tests/vm/run-systemd-host.sh runs it)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

Cli = Callable[..., str]


def _runtime() -> str:
    runtime = os.environ.get("PYRUNC_BIN") or shutil.which("pyrunc") or ""
    if not os.path.isabs(runtime):
        pytest.skip("PYRUNC_BIN must name the runtime by absolute path")
    return runtime


def _scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/run"))


def _unmount_below(path: Path) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for mp in sorted((p for p in points if p.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


@pytest.fixture(scope="module")
def podman() -> Iterator[Cli]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    runtime, work = _runtime(), _scratch("pyrunc-sdpodman-")
    (work / "containers.conf").write_text(f"""[containers]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "systemd"
events_logger = "file"
events_logfile_path = "{work}/events.log"
tmp_dir = "{work}/libpod-tmp"
static_dir = "{work}/storage/libpod"
volume_path = "{work}/volumes"
conmon_path = ["/usr/bin/conmon"]
runtime_supports_json = ["runc", "crun", "pyrunc", "{Path(runtime).name}"]
""")
    (work / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{work}/storage"\nrunroot = "{work}/runroot"\n')
    (work / "registries.conf").write_text("unqualified-search-registries = []\n")
    env = clean_env(work, {
        "CONTAINERS_CONF": str(work / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf"),
    })

    def cli(*args: str, check: bool = True) -> str:
        return run(["podman", "--runtime", runtime, *args], timeout=SLOW, check=check,
                   env=env).stdout.strip()

    try:
        build_rootfs_tar(work / "rootfs.tar")
        cli("import", "--change", "CMD=sh", "--change", f"ENV=PATH={CONTAINER_PATH}",
            str(work / "rootfs.tar"), PODMAN_IMAGE)
        yield cli
    finally:
        cli("rm", "-af", "-t", "0", check=False)
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)


class _NoNamespace:
    """The guest is throwaway: the daemons run in its own mount namespace."""

    def prefix(self) -> list[str]:
        return []


@pytest.fixture(scope="module")
def docker(request: pytest.FixtureRequest) -> Iterator[Cli]:
    missing = [t for t in ("dockerd", "docker", "containerd", "containerd-shim-runc-v2")
               if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    work = _scratch("pyrunc-sddocker-")
    rt = detect_runtime(_runtime(), work, trace=False)
    ns = _NoNamespace()
    cd = Containerd(work / "containerd", ns, rt, "moby", start_timeout=SLOW)  # type: ignore[arg-type]
    dk = Dockerd(work / "docker", ns, rt, cd, cgroup_parent="", cgroup_driver=None,  # type: ignore[arg-type]
                 start_timeout=SLOW)

    def cli(*args: str, check: bool = True) -> str:
        return dk.docker(*args, timeout=SLOW, check=check).stdout.strip()

    try:
        t0 = time.monotonic()
        cd.start()   # first, and waited for on its socket: dockerd would time out starting it
        t1 = time.monotonic()
        dk.start()
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():  # the numbers belong in the boot's log
            print(f"\nsystemd-engines: containerd up in {t1 - t0:.0f} s, dockerd in "
                  f"{time.monotonic() - t1:.0f} s", flush=True)
        assert cli("info", "-f", "{{.CgroupDriver}} {{.CgroupVersion}}") == "systemd 2"
        build_rootfs_tar(work / "rootfs.tar")
        cli("import", "--change", 'CMD ["sh"]', "--change", f"ENV PATH={CONTAINER_PATH}",
            str(work / "rootfs.tar"), DOCKER_IMAGE_REF)
        yield cli
    finally:
        if dk.daemon is not None:
            ids = cli("ps", "-aq", check=False).split()
            if ids:
                cli("rm", "-f", *ids, check=False)
        dk.stop()
        cd.stop()
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)


def show(unit: str, *props: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)],
                         check=True, capture_output=True, text=True, timeout=SLOW).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_gone(path: Path, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not path.exists()


def scope_flow(cli: Cli, run_args: list[str], image: str, slice_name: str, prefix: str) -> None:
    """One container through an engine's systemd cgroup manager, checked in systemd and the fs."""
    name = f"pyrunc-sd-{os.getpid()}"
    cid = cli("run", "-d", "--name", name, *run_args, "--memory", "64m", "--cpus", "0.5",
              "--pids-limit", "50", image, "sleep", "1000")
    unit = f"{prefix}-{cid}.scope"
    scope = CG / slice_name / unit

    def cgfile(name: str) -> str:
        return (scope / name).read_text().strip()

    try:
        pid = int(cli("inspect", "-f", "{{.State.Pid}}", name))
        assert Path(f"/proc/{pid}/cgroup").read_text().strip() == f"0::/{slice_name}/{unit}"
        props = show(unit, "ActiveState", "Delegate", "Slice", "MemoryMax", "TasksMax",
                     "CPUQuotaPerSecUSec")
        assert props == {"ActiveState": "active", "Delegate": "yes", "Slice": slice_name,
                         "MemoryMax": str(64 * MiB), "TasksMax": "50",
                         "CPUQuotaPerSecUSec": "500ms"}, props
        assert cgfile("memory.max") == str(64 * MiB)
        assert cgfile("pids.max") == "50"
        assert cgfile("cpu.max") == "50000 100000"

        # exec joins the same scope; inside, its own cgroup namespace shows the limits at /
        out = cli("exec", name, "sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/memory.max")
        assert out.split() == ["0::/", str(64 * MiB)], out

        cli("pause", name)
        assert cgfile("cgroup.freeze") == "1"
        assert cli("inspect", "-f", "{{.State.Status}}", name) == "paused"
        cli("unpause", name)
        assert cgfile("cgroup.freeze") == "0"

        cli("update", "--memory", "32m", name)
        assert show(unit, "MemoryMax") == {"MemoryMax": str(32 * MiB)}
        assert cgfile("memory.max") == str(32 * MiB)

        cli("stop", "-t", "2", name)   # sleep as pid 1 ignores TERM: KILL after 2 s
        assert cli("inspect", "-f", "{{.State.Status}}", name) == "exited"
        cli("rm", name)
        assert cli("ps", "-aq") == ""
        assert show(unit, "LoadState") == {"LoadState": "not-found"}
        assert wait_gone(scope), f"{scope} is still there"
        assert not Path("/run/systemd/transient", unit).exists()
    finally:
        cli("rm", "-f", name, check=False)
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=SLOW)


def test_podman_systemd_scope(podman: Cli) -> None:
    """podman run/exec/pause/unpause/update/stop/rm with cgroup_manager = "systemd"."""
    scope_flow(podman, [], PODMAN_IMAGE, "machine.slice", "libpod")


def test_docker_systemd_scope(docker: Cli) -> None:
    """docker run --runtime pyrunc ... on dockerd's defaults (the systemd cgroup driver)."""
    scope_flow(docker, ["--runtime", "pyrunc", "--network", "none"], DOCKER_IMAGE_REF,
               "system.slice", "docker")
