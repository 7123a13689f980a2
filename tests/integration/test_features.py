"""`features` (runtime-spec features.md) and systemd socket activation (LISTEN_FDS)."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from pyrunc.spec import schema

from .conftest import Sandbox
from .helpers import Runtime


def test_features_json_shape(rt: Runtime) -> None:
    """The keys and types features.md defines, and claims that match what pyrunc does."""
    res = rt.run_cmd("features", check=True)
    f = json.loads(res.stdout)
    assert isinstance(f["ociVersionMin"], str) and isinstance(f["ociVersionMax"], str)
    assert set(f["hooks"]) == {"prestart", "createRuntime", "createContainer", "startContainer",
                               "poststart", "poststop"}
    assert {"ro", "rbind", "nosuid", "rro", "rprivate"} <= set(f["mountOptions"])
    linux = f["linux"]
    assert set(linux["namespaces"]) == {"cgroup", "ipc", "mount", "network", "pid", "time",
                                        "user", "uts"}
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    for key in ("v1", "v2", "systemd", "systemdUser", "rdma"):
        assert isinstance(linux["cgroup"][key], bool)
    assert linux["cgroup"]["systemd"] is True  # --systemd-cgroup (tests/integration/test_systemd_cgroup.py)
    assert linux["cgroup"]["systemdUser"] is True  # the rootless driver: the user manager
    assert linux["cgroup"]["rdma"] is True  # rdma.max is written (test_cgroups rdma cases; review rev18)
    seccomp = linux["seccomp"]
    assert seccomp["enabled"] is True
    assert "SCMP_ACT_ERRNO" in seccomp["actions"] and "SCMP_CMP_MASKED_EQ" in seccomp["operators"]
    assert linux["apparmor"]["enabled"] is False and linux["selinux"]["enabled"] is False
    assert isinstance(f["annotations"], dict)
    schema.validate_features(f)  # pyrunc's features schema (schemas/features-schema.json)


def test_features_runtime_spec_1_3_fields(rt: Runtime) -> None:
    """The 1.3 fields, each matching what the config accepts (schema and converter)."""
    from pyrunc.spec.config import convert
    from pyrunc.spec.schema import validate_config
    f = json.loads(rt.run_cmd("features", check=True).stdout)
    assert f["ociVersionMax"] == "1.3.0"
    linux = f["linux"]
    assert linux["netDevices"] == {"enabled": True}
    assert linux["intelRdt"] == {"enabled": True, "schemata": True, "monitoring": True}
    assert "tmpcopyup" in f["mountOptions"]
    policy = linux["memoryPolicy"]
    assert set(policy["modes"]) == {"MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE",
                                    "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED",
                                    "MPOL_PREFERRED_MANY", "MPOL_LOCAL"}
    assert set(policy["flags"]) == {"MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES",
                                    "MPOL_F_STATIC_NODES"}
    for mode in policy["modes"]:
        doc = {"ociVersion": "1.3.0", "root": {"path": "r"},
               "linux": {"memoryPolicy": {"mode": mode, "flags": policy["flags"][:1]}}}
        validate_config(doc)
        assert convert(doc, "/b").linux.memory_policy is not None


@pytest.mark.pyrunc_only
def test_socket_activation_fds_reach_the_container(sandbox: Sandbox) -> None:
    """LISTEN_FDS=1 for the runtime: fd 3 (a listening socket) reaches the container, which
    is told LISTEN_FDS=1 and LISTEN_PID=1 (systemd socket activation through the runtime)."""
    b = sandbox.bundle(["sh", "-c", "echo fds=$LISTEN_FDS pid=$LISTEN_PID; ls /proc/self/fd"])
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sandbox.tmp / "act.sock"))
    srv.listen(1)
    argv = sandbox.rt.argv("run", "--bundle", str(b.path), sandbox.new_id())
    # The socket as fd 3, and LISTEN_PID equal to the runtime's own pid, as systemd sets them.
    script = 'LISTEN_FDS=1 LISTEN_PID=$$ exec "$@"'
    res = subprocess.run(["sh", "-c", script, "sh", *argv], capture_output=True, text=True,
                         timeout=60, pass_fds=(3,), preexec_fn=lambda: os.dup2(srv.fileno(), 3),
                         stdin=subprocess.DEVNULL)
    srv.close()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert "fds=1" in lines and "pid=1" in lines, res.stdout
    assert "3" in lines, f"fd 3 did not reach the container: {res.stdout}"
