"""`pyrunc features`: what this build really supports, in the runtime-spec features.md shape."""

from __future__ import annotations

from typing import Any

from pyrunc import OCI_VERSION, __version__


def features() -> dict[str, Any]:
    from pyrunc.linux import capabilities, mountopts, seccomp
    options = sorted(set(mountopts._FLAGS) | set(mountopts._PROPAGATION) | set(mountopts._RECURSIVE)
                     | set(mountopts.IDMAP_OPTIONS))
    top = capabilities.last_cap()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": sorted(n for n, v in capabilities.CAP_NUMBERS.items() if v <= top),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": seccomp.features(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": {"org.opencontainers.runtime.name": "pyrunc",
                        "org.opencontainers.runtime.version": __version__,
                        "io.github.seccomp.libseccomp.version": seccomp.libseccomp_version()},
    }
