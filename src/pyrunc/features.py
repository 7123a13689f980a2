"""`pyrunc features`: what this build really supports, in the runtime-spec features.md shape."""

from __future__ import annotations

from typing import Any

from pyrunc import OCI_VERSION, __version__


def features() -> dict[str, Any]:
    from pyrunc.linux import capabilities, mountopts, seccomp
    from pyrunc.spec import config
    # tmpcopyup is runc's extension, done by pyrunc.linux.copyup.
    options = sorted(set(mountopts._FLAGS) | set(mountopts._PROPAGATION) | set(mountopts._RECURSIVE)
                     | set(mountopts.IDMAP_OPTIONS) | {"tmpcopyup"})
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
            # systemd: on v2 and v1/hybrid hosts; systemdUser: v2 only (runc's say the same)
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True,
                       "rdma": True},  # rdma.max, v1 and v2 (cgroups/v1.py, v2.py)
            "seccomp": seccomp.features(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            # runtime-spec 1.3. intelRdt is implemented (through resctrl); a host without
            # resctrl refuses a config that asks for it, naming /sys/fs/resctrl.
            "intelRdt": {"enabled": True, "schemata": True, "monitoring": True},
            "netDevices": {"enabled": True},
            # What the runtime recognizes and passes to set_mempolicy(2); whether this kernel
            # takes a combination is its call (MPOL_WEIGHTED_INTERLEAVE needs Linux 6.9).
            "memoryPolicy": {"modes": sorted(config.MPOL_MODES), "flags": sorted(config.MPOL_FLAGS)},
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": {"org.opencontainers.runtime.name": "pyrunc",
                        "org.opencontainers.runtime.version": __version__,
                        "io.github.seccomp.libseccomp.version": seccomp.libseccomp_version()},
    }
