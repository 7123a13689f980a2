"""containerd with its CRI plugin on the runtime under test, and a small CRI v1 client (grpcio).

The client's messages come from cri/runtime_v1.proto (our subset of the CRI v1 API), compiled in
memory at import time by grpcio-tools (`grpc.protos_and_services`): nothing generated is kept.
grpcio and grpcio-tools are test dependencies (`scripts/setup.sh --test`); pyrunc never imports them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients_support import (
    ContainerdBase,
    MountNamespace,
    containerd_config,
    run,
    wait_for,
)

HERE = Path(__file__).resolve().parent
PROTO = "cri/runtime_v1.proto"  # relative to HERE, which is on sys.path (conftest)
BUSYBOX_REF = "docker.io/library/pyrunc-busybox:latest"
PAUSE_REF = "docker.io/library/pyrunc-pause:latest"
# The pause image: the same busybox layer, sleeping for ever (the sandbox's pid 1 holds the pod's
# namespaces; containerd kills it with SIGKILL on StopPodSandbox, so no signal handling is needed).
PAUSE_ENTRYPOINT = ["/bin/sleep", "2147483647"]
POD_ADDRESS = "10.199.77.2/24"  # what the test CNI plugin gives the pod's eth0
CRI_NAMESPACE = "k8s.io"  # containerd namespace of everything the CRI plugin makes


def load_api() -> tuple[Any, Any]:
    """(messages, services) modules of cri/runtime_v1.proto; ImportError names what is missing."""
    try:
        import grpc
    except ImportError as exc:
        raise ImportError(f"grpcio is not installed ({exc}): run scripts/setup.sh --test") from exc
    try:
        return grpc.protos_and_services(PROTO)  # type: ignore[no-any-return]
    except (ImportError, NotImplementedError) as exc:
        raise ImportError(f"grpcio-tools is not installed ({exc}): run scripts/setup.sh --test") from exc


class CriClient:
    """The RuntimeService and ImageService of one containerd socket. Each call is timed (`timings`)."""

    def __init__(self, sock: str, timeout: float) -> None:
        import grpc

        self.pb, services = load_api()
        self.channel = grpc.insecure_channel(f"unix://{sock}")
        self.runtime = services.RuntimeServiceStub(self.channel)
        self.images = services.ImageServiceStub(self.channel)
        self.timeout = timeout
        self.timings: list[tuple[str, float]] = []

    def call(self, method: str, deadline: float | None = None, **fields: Any) -> Any:
        """RuntimeService.<method>(<method>Request(**fields)) (ImageStatus goes to ImageService);
        `deadline` (seconds) bounds the RPC, apart from requests' own `timeout` fields."""
        request = getattr(self.pb, f"{method}Request")(**fields)
        service = self.images if method.startswith("Image") else self.runtime
        start = time.monotonic()
        try:
            return getattr(service, method)(request, timeout=deadline or self.timeout)
        finally:
            self.timings.append((method, time.monotonic() - start))

    def info_pid(self, method: str, **fields: Any) -> int:
        """The "pid" in a verbose PodSandboxStatus/ContainerStatus answer (the host pid of its init)."""
        resp = self.call(method, verbose=True, **fields)
        return int(json.loads(resp.info["info"])["pid"])

    def close(self) -> None:
        self.channel.close()


def _fstype(path: Path) -> str:
    """The file system type of the mount that holds path."""
    best, fstype = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            mnt = parts[4]
            if (str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fstype = mnt, parts[parts.index("-") + 1]
    return fstype


class BusNamespace(MountNamespace):
    """The clients' namespace (a fresh /run tmpfs, /etc and /var overlays) that still shows the
    host's /run/dbus and /run/systemd: the runtime's systemd cgroup driver needs the system bus.
    Each is opened before /run is covered and bound back from the open descriptor (mount must not
    canonicalize /proc/self/fd/N: its target name now resolves into the new tmpfs)."""

    KEEP = ("/run/dbus", "/run/systemd")

    def setup_lines(self) -> list[str]:
        keep = [d for d in self.KEEP if os.path.isdir(d)]
        fds = range(7, 7 + len(keep))
        lines = [f"exec {fd}<{d}" for fd, d in zip(fds, keep)]
        lines += super().setup_lines()
        for fd, d in zip(fds, keep):
            lines += [f"mkdir -p {d}", f"mount --no-canonicalize --bind /proc/self/fd/{fd} {d}", f"exec {fd}<&-"]
        return lines


@dataclass
class CriContainerd(ContainerdBase):
    """containerd with CRI enabled (its CNI config under workdir too).

    The runtime is a runc.v2 runtime whose BinaryName is the runtime under test; `systemd` sets its
    SystemdCgroup option (the shim then calls the runtime with --systemd-cgroup).
    """

    systemd: bool = False

    @property
    def log_dir(self) -> Path:
        return self.workdir / "pods"

    def _cni(self) -> tuple[Path, Path]:
        bindir, confdir = self.workdir / "cni-bin", self.workdir / "cni-conf"
        for d in (bindir, confdir):
            d.mkdir(parents=True, exist_ok=True)
        for name in ("loopback", "pyrunc-veth"):
            shutil.copy(HERE / "cri" / "cni-plugin", bindir / name)
            (bindir / name).chmod(0o755)
        (confdir / "10-pyrunc.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "pyrunc-test",
            "plugins": [{"type": "pyrunc-veth", "address": POD_ADDRESS}],
        }))
        return bindir, confdir

    def config(self) -> str:
        w = self.workdir
        bindir, confdir = self._cni()
        # overlayfs cannot put its upper dir on an overlay (the systemd guest's root); native can.
        snapshotter = "native" if _fstype(w) == "overlay" else "overlayfs"
        return containerd_config(w, self.sock, [], f"""  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_REF}"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_apparmor = true
    enable_selinux = false
    restrict_oom_score_adj = true  # lowering it needs CAP_SYS_RESOURCE, which a CI sandbox may lack
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{bindir}"
      conf_dir = "{confdir}"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "{snapshotter}"
      default_runtime_name = "under-test"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.under-test]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.under-test.options]
          BinaryName = "{self.runtime.path}"
          Root = "{self.runtime_root}"
          SystemdCgroup = {"true" if self.systemd else "false"}
""")

    def start(self, timeout: float = 60) -> CriClient:
        """Write the config, start containerd in the namespace; returns a client once CRI answers."""
        daemon = self._launch("containerd-cri", self.config(), [self.log_dir])
        client = CriClient(self.sock, timeout)  # RunPodSandbox: CNI, create and start

        def up() -> bool:
            daemon.check_alive()
            if not os.path.exists(self.sock):
                return False
            try:
                client.call("Version", deadline=5, version="v1")
            except Exception:  # noqa: BLE001 - not listening yet, or CRI still initialising
                return False
            return True

        wait_for(up, timeout, "containerd's CRI to answer", interval=0.2)
        return client

    def ctr(self, *args: str, timeout: float = 120) -> None:
        run(["ctr", "-a", self.sock, "-n", CRI_NAMESPACE, *args], timeout=timeout, env=self.env)

    def import_image(self, archive: Path) -> None:
        self.ctr("images", "import", str(archive))

    def remove_all(self, client: CriClient) -> None:
        """Teardown: stop and remove every pod sandbox (and so its containers); errors ignored."""
        try:
            items = client.call("ListPodSandbox", deadline=30).items
        except Exception:  # noqa: BLE001
            return
        for sb in items:
            for method in ("StopPodSandbox", "RemovePodSandbox"):
                try:
                    client.call(method, deadline=60, pod_sandbox_id=sb.id)
                except Exception:  # noqa: BLE001
                    pass
