"""pyrunc's schemas against the runtime-spec 1.3.0 published schema (issue 18).

Two kinds of cases. The spec's own schema test examples (schema/test/config/good and bad),
restated here in a small form, must get the spec's verdict from our validator. And every
place where ours differed from the spec's schema and was changed has the config that used to
be wrongly refused (or wrongly accepted), checked through validation and the converter, so
what the runtime then does is what runc does. schemas/README.md lists every difference.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pyrunc.errors import SpecError
from pyrunc.spec import config as cfg
from pyrunc.spec.schema import validate_config, validate_features

Json = Any

MINIMAL: dict[str, Json] = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}


def with_linux(**linux: Json) -> dict[str, Json]:
    return {**copy.deepcopy(MINIMAL), "linux": linux}


def with_process(**process: Json) -> dict[str, Json]:
    base = {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}
    return {**copy.deepcopy(MINIMAL), "process": {**base, **process}}


def error_of(config: Json) -> str:
    with pytest.raises(SpecError) as info:
        validate_config(config)
    return info.value.msg


# -- the spec's schema/test/config examples ------------------------------------------------

# good/: each must validate.
SPEC_GOOD: dict[str, Json] = {
    "minimal": MINIMAL,
    "linux-netdevice": with_linux(netDevices={"eth0": {"name": "container_eth0"},
                                              "ens4": {}, "ens5": {}}),
    "linux-rdma": with_linux(resources={"rdma": {
        "mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000},
        "mlx4_0": {"hcaObjects": 1000},
        "rxe3": {"hcaObjects": 10000}}}),
    # The distinctive values of good/spec-example.json (the rest is runc spec's default).
    "spec-example": {
        "ociVersion": "0.5.0-dev",
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "slartibartfast",
        "process": {
            "terminal": True, "cwd": "/", "args": ["sh"],
            "user": {"uid": 1, "gid": 1, "additionalGids": [5, 6]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                             "ambient": ["CAP_NET_BIND_SERVICE"]},
            "rlimits": [{"type": "RLIMIT_CORE", "hard": 1024, "soft": 1024}],
            "apparmorProfile": "acme_secure_profile",
            "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
            "noNewPrivileges": True,
        },
        "hooks": {
            "prestart": [{"path": "/usr/bin/fix-mounts", "args": ["fix-mounts", "arg1"],
                          "env": ["key1=value1"]},
                         {"path": "/usr/bin/setup-network"}],
            "poststart": [{"path": "/usr/bin/notify-start", "timeout": 5}],
        },
        "linux": {
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                         "fileMode": 438, "uid": 0, "gid": 0}],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "cgroupsPath": "/myRuntime/myContainer",
            "resources": {
                "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
                "pids": {"limit": 32771},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 9223372036854772000}],
                "memory": {"limit": 536870912, "kernel": -1, "swappiness": 0,
                           "disableOOMKiller": False},
                "cpu": {"shares": 1024, "quota": 1000000, "cpus": "2-3", "mems": "0-7"},
                "devices": [{"allow": False, "access": "rwm"},
                            {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"}],
                "blockIO": {"weight": 10, "leafWeight": 10,
                            "weightDevice": [{"major": 8, "minor": 16, "weight": 500}],
                            "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]},
            },
            "rootfsPropagation": "slave",
            "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                        "syscalls": [{"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ERRNO"}]},
            "namespaces": [{"type": "pid"}, {"type": "user"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
        },
        "annotations": {"com.example.key1": "value1"},
    },
}

# bad/: each must be refused, with our one line naming the field.
SPEC_BAD: dict[str, tuple[Json, str]] = {
    "linux-netdevice": (with_linux(netDevices={"eth0": {"name": 23}}),
                        "config.json: linux.netDevices.eth0.name: 23 is not of type 'string'"),
    "linux-rdma": (with_linux(resources={"rdma": [{"device": "mlx5_1",
                                                    "hcaHandles": "not a uint32"}]}),
                   "config.json: linux.resources.rdma: [{'device': 'mlx5_1', 'hcaHandles': "
                   "'not a uint32'}] is not of type 'object'"),
    "linux-hugepage": (with_linux(resources={"hugepageLimits": [{"limit": 1234123,
                                                                  "pageSize": "64kB"}]}),
                       "config.json: linux.resources.hugepageLimits[0].pageSize: '64kB' is not "
                       "a page size like '2MB' or '64KB'"),
    "freebsd-vnet-disable": ({**MINIMAL, "ociVersion": "1.3.0",
                              "freebsd": {"jail": {"vnet": "disable"}}},
                             "config.json: freebsd.jail.vnet: 'disable' is not one of "
                             "['inherit', 'new']"),
}


@pytest.mark.parametrize("name", sorted(SPEC_GOOD))
def test_spec_good_examples_are_valid(name: str) -> None:
    validate_config(SPEC_GOOD[name])


@pytest.mark.parametrize("name", sorted(SPEC_BAD))
def test_spec_bad_examples_are_refused(name: str) -> None:
    config, expected = SPEC_BAD[name]
    assert error_of(config) == expected


# -- used to be refused; runc and the spec's schema accept them ------------------------------

def test_exec_cpu_affinity_in_the_spec_syntax() -> None:
    """The spec's pattern allows spaces; runc trims items and skips empty ones."""
    config = with_process(execCPUAffinity={"initial": " 0 , ,0-0,", "final": "0, 0"})
    validate_config(config)
    proc = cfg._process(config["process"])
    assert proc is not None
    assert proc.cpu_affinity_initial == frozenset({0})
    assert proc.cpu_affinity_final == frozenset({0})


@pytest.mark.parametrize(("text", "problem"), [
    ("0 - 1", "'0 - 1' is not a CPU list like 0-3,7"),  # runc: ParseUint("0 ") fails
    (" , ", "' , ' names no CPU"),
    ("1-0", "'1-0': the range '1-0' is empty"),
])
def test_exec_cpu_affinity_the_spec_allows_but_is_no_list(text: str, problem: str) -> None:
    config = with_process(execCPUAffinity={"final": text})
    validate_config(config)  # the spec's pattern takes it: the converter decides
    with pytest.raises(SpecError) as info:
        cfg._process(config["process"])
    assert info.value.msg == f"config.json: process.execCPUAffinity.final: {problem}"


@pytest.mark.parametrize(("text", "problem"), [
    ("1" * 3_000_000, "'" + "1" * 60 + "'... is not a CPU list like 0-3,7"),
    ("0-1, " * 500_000 + "7", "'" + "0-1, " * 12 + "'...: CPU 7 does not exist"),
    ("9" * 4000, "'" + "9" * 60 + "'...: CPU " + "9" * 17 + "... does not exist"),
])
def test_exec_cpu_affinity_huge_list_named_short(text: str, problem: str) -> None:
    """The spec's pattern lets a list of any length through: an error quoted it whole (3 MB
    on one stderr line); now its first 60 characters (review rev18)."""
    config = with_process(execCPUAffinity={"initial": text})
    with pytest.raises(SpecError) as info:
        cfg._process(config["process"])
    assert info.value.msg.startswith(f"config.json: process.execCPUAffinity.initial: {problem}")
    assert len(info.value.msg) < 200


def test_exec_cpu_affinity_other_characters_refused_by_the_schema() -> None:
    assert error_of(with_process(execCPUAffinity={"initial": "0;1"})) == (
        "config.json: process.execCPUAffinity.initial: '0;1' is not a CPU list like '0-3,7'")


def test_console_size_beyond_uint32_is_taken_and_clamped() -> None:
    """uint64 in the spec; the kernel's winsize holds 16 bits (runc truncates, we clamp)."""
    config = with_process(terminal=True, consoleSize={"height": 2**32, "width": 80})
    validate_config(config)
    proc = cfg._process(config["process"])
    assert proc is not None and proc.console_size == (65535, 80)


@pytest.mark.parametrize(("umask", "applied"), [(4294967295, 0o777), (0o10022, 0o022)])
def test_umask_is_a_uint32_and_keeps_what_umask_keeps(umask: int, applied: int) -> None:
    config = with_process(user={"uid": 0, "gid": 0, "umask": umask})
    validate_config(config)
    proc = cfg._process(config["process"])
    assert proc is not None and proc.user.umask == applied


def test_umask_beyond_uint32_refused() -> None:
    assert error_of(with_process(user={"uid": 0, "gid": 0, "umask": 2**32})) == (
        "config.json: process.user.umask: 4294967296 is greater than the maximum of 4294967295")


def test_io_priority_class_alone() -> None:
    """Only class is required by the spec's schema; runc reads a missing priority as 0."""
    config = with_process(ioPriority={"class": "IOPRIO_CLASS_BE"})
    validate_config(config)
    proc = cfg._process(config["process"])
    assert proc is not None and proc.io_priority == 2 << 13  # IOPRIO_CLASS_BE, level 0


def test_hook_timeout_beyond_int32_is_taken() -> None:
    """The wait itself (beyond what poll() takes) is tested in test_hooks_wait.py."""
    hook = {"path": "/bin/true", "timeout": 2**40}
    config = {**MINIMAL, "hooks": {"poststop": [hook]}}
    validate_config(config)
    assert cfg._hooks(config["hooks"]).poststop[0].timeout == 2**40


def test_hook_timeout_beyond_a_go_int_refused() -> None:
    config = {**MINIMAL, "hooks": {"poststop": [{"path": "/bin/true", "timeout": 2**63}]}}
    assert error_of(config) == ("config.json: hooks.poststop[0].timeout: 9223372036854775808 "
                                "is greater than the maximum of 9223372036854775807")


# -- used to be accepted; the spec's schema refuses them -------------------------------------

@pytest.mark.parametrize("size", ["1TB", "2PB", "1EB"])
def test_hugepage_sizes_the_kernel_never_names_refused(size: str) -> None:
    config = with_linux(resources={"hugepageLimits": [{"pageSize": size, "limit": 1}]})
    assert error_of(config) == (f"config.json: linux.resources.hugepageLimits[0].pageSize: "
                                f"{size!r} is not a page size like '2MB' or '64KB'")


@pytest.mark.parametrize("size", ["64KB", "2MB", "1GB", "16GB"])
def test_hugepage_sizes_the_kernel_names_accepted(size: str) -> None:
    validate_config(with_linux(resources={"hugepageLimits": [{"pageSize": size, "limit": 1}]}))


@pytest.mark.parametrize(("freebsd", "expected"), [
    (5, "config.json: freebsd: 5 is not of type 'object'"),
    ({"jail": {"host": "disable"}}, "config.json: freebsd.jail.host: 'disable' is not one of "
                                    "['inherit', 'new']"),
    ({"jail": {"enforceStatfs": 256}}, "config.json: freebsd.jail.enforceStatfs: 256 is greater "
                                       "than the maximum of 255"),
    ({"devices": [{"path": 1}]}, "config.json: freebsd.devices[0].path: 1 is not of type 'string'"),
])
def test_freebsd_section_checked_as_the_spec_does(freebsd: Json, expected: str) -> None:
    assert error_of({**MINIMAL, "freebsd": freebsd}) == expected


def test_freebsd_section_the_spec_accepts() -> None:
    validate_config({**MINIMAL, "freebsd": {"jail": {"ip4": "disable", "vnet": "inherit"}}})


# -- features: the spec's schema/test/features examples --------------------------------------

FEATURES_RUNC = {  # the shape of good/runc.json (runc 1.1's features), shortened
    "ociVersionMin": "1.0.0", "ociVersionMax": "1.0.2-dev",
    "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop"],
    "mountOptions": ["acl", "bind", "rbind", "ro", "rro", "tmpcopyup"],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
        "capabilities": ["CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"],
        "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True},
        "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_NOTIFY"],
                    "operators": ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"],
                    "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_X86_64"],
                    "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"],
                    "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"]},
        "apparmor": {"enabled": True},
        "selinux": {"enabled": True},
    },
    "annotations": {"io.github.seccomp.libseccomp.version": "2.5.4",
                    "org.opencontainers.runc.version": "1.1.0+dev"},
}


@pytest.mark.parametrize("features", [
    pytest.param({"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0"}, id="good-minimal"),
    pytest.param(FEATURES_RUNC, id="good-runc"),
])
def test_spec_features_good_examples_are_valid(features: Json) -> None:
    validate_features(features)


@pytest.mark.parametrize(("features", "expected"), [
    pytest.param({"ociVersionMin": "1.1.0"}, "features: 'ociVersionMax' is a required property",
                 id="bad-missing-ociVersionMax"),
    pytest.param({**FEATURES_RUNC, "linux": {"namespaces": ["net"]}},
                 "features: linux.namespaces[0]: 'net' is not one of ['cgroup', 'ipc', 'mount', "
                 "'network', 'pid', 'time', 'user', 'uts']", id="namespace-name"),
    pytest.param({**FEATURES_RUNC, "linux": {"capabilities": ["cap_chown"]}},
                 "features: linux.capabilities[0]: 'cap_chown' is not a capability name like "
                 "'CAP_KILL'", id="capability-name"),
    pytest.param({**FEATURES_RUNC, "linux": {"intelRdt": {"schemata": "yes"}}},
                 "features: linux.intelRdt.schemata: 'yes' is not of type 'boolean'",
                 id="intelrdt-schemata"),
])
def test_spec_features_bad_examples_are_refused(features: Json, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_features(features)
    assert info.value.msg == expected
