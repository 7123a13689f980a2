"""Unit tests for pyrunc.spec.schema: the runtime-spec v1.2 schemas and their one-line errors.

Valid configs must pass (runc's own `runc spec` output, a config using every field), each
invalid config must fail with exactly the expected `config.json: <path>: <problem>` line, and
random input must only ever raise SpecError. That the jsonschema-free fast path accepts exactly
what jsonschema accepts is tested in test_fastcheck.py, which reuses the configs defined here.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrunc.errors import SpecError
from pyrunc.spec import schema
from pyrunc.spec.schema import schema_path, validate_config, validate_state

Json = Any

# What `runc spec` (runc 1.1.5) writes; kept inline so the test does not need runc installed.
RUNC_DEFAULT: dict[str, Json] = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

# Every field the schema names, with an in-range value.
MAXIMAL: dict[str, Json] = {
    "ociVersion": "1.2.0-rc.1+build.5",
    "root": {"path": "/var/lib/bundle/rootfs", "readonly": False},
    "mounts": [
        {
            "destination": "/data",
            "source": "/srv/data",
            "type": "none",
            "options": ["rbind", "rw", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        },
        {"destination": "relative/is/deprecated/but/allowed"},
    ],
    "process": {
        "terminal": True,
        "consoleSize": {"height": 25, "width": 80},
        "cwd": "/root",
        "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
        "args": ["sh", "-c", "true"],
        "commandLine": "sh -c true",
        "user": {"uid": 1, "gid": 1, "umask": 0o22, "additionalGids": [5, 6], "username": "someone"},
        "rlimits": [
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
            {"type": "RLIMIT_CORE", "soft": UINT64_MAX, "hard": UINT64_MAX},
        ],
        "apparmorProfile": "acme_secure_profile",
        "capabilities": {
            "effective": ["CAP_KILL"],
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": [],
            "permitted": ["CAP_KILL"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
        },
        "noNewPrivileges": True,
        "oomScoreAdj": -500,
        "scheduler": {
            "policy": "SCHED_DEADLINE",
            "nice": -5,
            "priority": 0,
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM"],
            "runtime": 10_000_000,
            "deadline": 20_000_000,
            "period": 30_000_000,
        },
        "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
        "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4},
        "execCPUAffinity": {"initial": "7", "final": "0-3,7"},
    },
    "hostname": "slartibartfast",
    "domainname": "foobarbaz.test",
    "hooks": {
        "prestart": [{"path": "/usr/bin/fix-mounts", "args": ["fix-mounts", "a"], "env": ["k=v"]}],
        "createRuntime": [{"path": "/usr/bin/setup-network", "timeout": 5}],
        "createContainer": [{"path": "/usr/bin/mount-hook"}],
        "startContainer": [{"path": "/usr/bin/refresh-ldcache"}],
        "poststart": [{"path": "/usr/bin/notify-start", "timeout": 1}],
        "poststop": [{"path": "/usr/sbin/cleanup.sh", "args": ["cleanup.sh", "-f"]}],
    },
    "annotations": {"com.example.gpu-cores": "2", "org.opencontainers.image.os": "linux", "empty": ""},
    "linux": {
        "namespaces": [
            {"type": "pid", "path": "/proc/1234/ns/pid"},
            {"type": "network", "path": "/var/run/netns/neta"},
            {"type": "mount"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "user"},
            {"type": "cgroup"},
            {"type": "time"},
        ],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "timeOffsets": {"monotonic": {"secs": -3600, "nanosecs": 500}, "boottime": {"secs": 86400}},
        "devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0},
            {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660},
            {"path": "/dev/ttyU0", "type": "u", "major": 4, "minor": 64},
            {"path": "/dev/myfifo", "type": "p"},
        ],
        "cgroupsPath": "/myRuntime/myContainer",
        "resources": {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
                {"allow": False, "type": "a"},
            ],
            "memory": {
                "limit": 536870912,
                "reservation": 536870912,
                "swap": -1,
                "kernel": -1,
                "kernelTCP": -1,
                "swappiness": 0,
                "disableOOMKiller": False,
                "useHierarchy": True,
                "checkBeforeUpdate": True,
            },
            "cpu": {
                "shares": 1024,
                "quota": 1000000,
                "burst": 1000000,
                "period": 500000,
                "realtimeRuntime": 950000,
                "realtimePeriod": 1000000,
                "cpus": "2-3",
                "mems": "0-7",
                "idle": 0,
            },
            "blockIO": {
                "weight": 10,
                "leafWeight": 10,
                "weightDevice": [
                    {"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                    {"major": 8, "minor": 16, "weight": 500},
                    {"major": 8, "minor": 32, "leafWeight": 20},
                ],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 700}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 400}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "64KB", "limit": 1000000}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
            "pids": {"limit": 32771},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1000}},
            "unified": {"io.max": "259:0 rbps=2097152 wiops=120", "hugetlb.1GB.max": "1073741824"},
        },
        "intelRdt": {
            "closID": "guaranteed_group",
            "l3CacheSchema": "L3:0=7f0;1=1f",
            "memBwSchema": "MB:0=20;1=70",
            "enableCMT": True,
            "enableMBM": False,
            "schemata": ["L2:0=ff", "MB:0=50"],
            "enableMonitoring": True,
        },
        "netDevices": {"eth1": {}, "ens4": {"name": "ctr%d"}},
        "memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": "0-3,7", "flags": ["MPOL_F_STATIC_NODES"]},
        "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "listenerPath": "/run/seccomp-agent.socket",
            "listenerMetadata": "MKNOD=/dev/null",
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 0xFFFFFFFF, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                },
                {"names": ["mknod"], "action": "SCMP_ACT_NOTIFY"},
            ],
        },
        "rootfsPropagation": "slave",
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
        "personality": {"domain": "LINUX32", "flags": []},
    },
    "windows": {"layerFolders": ["C:\\layers"]},
    "solaris": {"milestone": "svc:/milestone/container:default"},
    "vm": {"kernel": {"path": "/path/to/vmlinuz"}},
    "zos": {"namespaces": []},
    "freebsd": {
        "devices": [{"path": "/dev/null", "mode": "0666"}],
        "jail": {
            "parent": "host", "host": "new", "ip4": "inherit", "ip6": "disable", "vnet": "new",
            "sysvmsg": "new", "sysvsem": "new", "sysvshm": "new", "enforceStatfs": 2,
            "allow": {"setHostname": True, "rawSockets": False, "chflags": False, "mount": ["tmpfs"],
                      "quotas": False, "socketAf": False, "reservedPorts": False, "suser": True},
        },
    },
}


def mutated(base: dict[str, Json], change: Callable[[dict[str, Json]], object]) -> dict[str, Json]:
    """A deep copy of `base` with `change` applied (the change may return anything)."""
    config = copy.deepcopy(base)
    change(config)
    return config


def reject(config: object, source: str = "config.json") -> str:
    """The one-line SpecError message validate_config gives for `config`."""
    with pytest.raises(SpecError) as info:
        validate_config(config, source)
    return str(info.value)


# --- schema files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", [schema.CONFIG_SCHEMA, schema.STATE_SCHEMA, schema.FEATURES_SCHEMA])
def test_schema_files_are_valid_2020_12(name: str) -> None:
    from jsonschema import Draft202012Validator

    document = json.loads(Path(schema_path(name)).read_text())
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(document)


def _declared_properties(node: Json) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from _declared_properties(value)
    elif isinstance(node, list):
        for item in node:
            yield from _declared_properties(item)


def _used_keys(node: Json) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _used_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _used_keys(item)


def test_maximal_config_uses_every_declared_property() -> None:
    """Guards the 'every field' claim: a property added to the schema must be exercised here too."""
    document = json.loads(Path(schema_path(schema.CONFIG_SCHEMA)).read_text())
    declared = set(_declared_properties(document)) - {"$defs"}
    # `type: p` under `if` is a declared property name as well; all are plain field names.
    missing = declared - set(_used_keys(MAXIMAL))
    assert not missing, f"fields the maximal config does not exercise: {sorted(missing)}"


def test_schema_path_prefers_package_then_checkout() -> None:
    installed, checkout = (Path(d) for d in schema._schema_dirs())
    assert installed.parts[-2:] == ("pyrunc", "schemas")
    assert (checkout / schema.CONFIG_SCHEMA).is_file() or (installed / schema.CONFIG_SCHEMA).is_file()
    assert Path(schema_path(schema.CONFIG_SCHEMA)).name == schema.CONFIG_SCHEMA


# --- valid configs ----------------------------------------------------------------------


def test_runc_default_config_is_valid() -> None:
    validate_config(copy.deepcopy(RUNC_DEFAULT))


@pytest.mark.parametrize("flags", [[], ["--rootless"]])
def test_real_runc_spec_output_is_valid(flags: list[str], tmp_path: Path) -> None:
    runc = shutil.which("runc") or ("/usr/sbin/runc" if os.access("/usr/sbin/runc", os.X_OK) else None)
    if runc is None:
        pytest.skip("runc is not installed")
    subprocess.run([runc, "spec", *flags], cwd=tmp_path, check=True, capture_output=True)
    validate_config(json.loads((tmp_path / "config.json").read_text()))


def test_maximal_config_is_valid() -> None:
    validate_config(copy.deepcopy(MAXIMAL))


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"ociVersion": "1.2.0", "root": {"path": "rootfs"}}, id="minimal"),
        pytest.param({"ociVersion": "0.0.0", "root": {"path": "r"}, "process": {"cwd": "/", "args": ["x"]}}, id="zero-version"),
        pytest.param({"ociVersion": "1.0.0-0.3.7+exp.sha.5114f85", "root": {"path": "r"}}, id="semver-full"),
        pytest.param({"ociVersion": "1.2.0", "root": {"path": "r"}, "annotations": {}}, id="empty-annotations"),
        pytest.param(
            {"ociVersion": "1.2.0", "root": {"path": "r"}, "future": {"x": [1]}, "linux": {"unknownKnob": 3}},
            id="unknown-properties-ignored",
        ),
        pytest.param(
            mutated(RUNC_DEFAULT, lambda c: c["linux"].__setitem__("rootfsPropagation", "rslave")),
            id="rslave-as-containerd-sends",
        ),
        pytest.param(
            mutated(RUNC_DEFAULT, lambda c: c["linux"]["resources"].__setitem__("memory", {"swappiness": UINT64_MAX})),
            id="swappiness-unset-marker",
        ),
        pytest.param(
            mutated(RUNC_DEFAULT, lambda c: c["linux"]["resources"].__setitem__("memory", {"limit": -1, "swap": INT64_MAX})),
            id="memory-int64-range",
        ),
        pytest.param(
            mutated(RUNC_DEFAULT, lambda c: c["process"].__setitem__("execCPUAffinity", {"final": ""})),
            id="empty-final-affinity",
        ),
    ],
)
def test_valid_configs(config: dict[str, Json]) -> None:
    validate_config(config)


# --- invalid configs: exact messages -----------------------------------------------------

SCHED_POLICIES = "['SCHED_BATCH', 'SCHED_DEADLINE', 'SCHED_FIFO', 'SCHED_IDLE', 'SCHED_ISO', 'SCHED_OTHER', 'SCHED_RR']"
SECCOMP_ACTIONS = (
    "['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', "
    "'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY', 'SCMP_ACT_TRACE', 'SCMP_ACT_TRAP']"
)
NAMESPACES = "['cgroup', 'ipc', 'mount', 'network', 'pid', 'time', 'user', 'uts']"

CASES: list[tuple[str, dict[str, Json], Callable[[dict[str, Json]], object], str]] = [
    # (id, base, change, expected message)
    ("ociVersion-missing", RUNC_DEFAULT, lambda c: c.pop("ociVersion"), "config.json: 'ociVersion' is a required property"),
    ("ociVersion-int", RUNC_DEFAULT, lambda c: c.update(ociVersion=1), "config.json: ociVersion: 1 is not of type 'string'"),
    ("ociVersion-two-parts", RUNC_DEFAULT, lambda c: c.update(ociVersion="1.0"),
     "config.json: ociVersion: '1.0' is not a SemVer 2.0.0 version"),
    ("ociVersion-v-prefix", RUNC_DEFAULT, lambda c: c.update(ociVersion="v1.0.2"),
     "config.json: ociVersion: 'v1.0.2' is not a SemVer 2.0.0 version"),
    ("ociVersion-leading-zero", RUNC_DEFAULT, lambda c: c.update(ociVersion="1.02.0"),
     "config.json: ociVersion: '1.02.0' is not a SemVer 2.0.0 version"),
    ("ociVersion-empty-prerelease", RUNC_DEFAULT, lambda c: c.update(ociVersion="1.0.0-"),
     "config.json: ociVersion: '1.0.0-' is not a SemVer 2.0.0 version"),
    ("root-missing", RUNC_DEFAULT, lambda c: c.pop("root"), "config.json: 'root' is a required property"),
    ("root-path-missing", RUNC_DEFAULT, lambda c: c["root"].pop("path"), "config.json: root: 'path' is a required property"),
    ("root-readonly-string", RUNC_DEFAULT, lambda c: c["root"].update(readonly="yes"),
     "config.json: root.readonly: 'yes' is not of type 'boolean'"),
    ("process-not-object", RUNC_DEFAULT, lambda c: c.update(process="sh"),
     "config.json: process: 'sh' is not of type 'object'"),
    ("args-empty", RUNC_DEFAULT, lambda c: c["process"].update(args=[]), "config.json: process.args: [] is too short"),
    ("args-missing", RUNC_DEFAULT, lambda c: c["process"].pop("args"), "config.json: process: 'args' is a required property"),
    ("args-not-strings", RUNC_DEFAULT, lambda c: c["process"].update(args=["sh", 1]),
     "config.json: process.args[1]: 1 is not of type 'string'"),
    ("cwd-missing", RUNC_DEFAULT, lambda c: c["process"].pop("cwd"), "config.json: process: 'cwd' is a required property"),
    ("cwd-relative", RUNC_DEFAULT, lambda c: c["process"].update(cwd="tmp"),
     "config.json: process.cwd: 'tmp' is not an absolute path"),
    ("env-string", RUNC_DEFAULT, lambda c: c["process"].update(env="A=1"),
     "config.json: process.env: 'A=1' is not of type 'array'"),
    ("terminal-string", RUNC_DEFAULT, lambda c: c["process"].update(terminal="true"),
     "config.json: process.terminal: 'true' is not of type 'boolean'"),
    ("console-size-no-width", RUNC_DEFAULT, lambda c: c["process"].update(consoleSize={"height": 1}),
     "config.json: process.consoleSize: 'width' is a required property"),
    ("uid-negative", RUNC_DEFAULT, lambda c: c["process"]["user"].update(uid=-1),
     "config.json: process.user.uid: -1 is less than the minimum of 0"),
    ("gid-too-big", RUNC_DEFAULT, lambda c: c["process"]["user"].update(gid=2**32),
     "config.json: process.user.gid: 4294967296 is greater than the maximum of 2147483647"),
    ("uid-float", RUNC_DEFAULT, lambda c: c["process"]["user"].update(uid=1.0),
     "config.json: process.user.uid: 1.0 is not of type 'integer'"),
    ("uid-bool", RUNC_DEFAULT, lambda c: c["process"]["user"].update(uid=True),
     "config.json: process.user.uid: True is not of type 'integer'"),
    ("uid-missing", RUNC_DEFAULT, lambda c: c["process"]["user"].pop("uid"),
     "config.json: process.user: 'uid' is a required property"),
    ("additional-gid-negative", RUNC_DEFAULT, lambda c: c["process"]["user"].update(additionalGids=[0, -5]),
     "config.json: process.user.additionalGids[1]: -5 is less than the minimum of 0"),
    ("rlimit-type", RUNC_DEFAULT, lambda c: c["process"]["rlimits"][0].update(type="NOFILE"),
     "config.json: process.rlimits[0].type: 'NOFILE' does not match '^RLIMIT_[A-Z]+$'"),
    ("rlimit-type-lowercase", RUNC_DEFAULT, lambda c: c["process"]["rlimits"][0].update(type="RLIMIT_nofile"),
     "config.json: process.rlimits[0].type: 'RLIMIT_nofile' does not match '^RLIMIT_[A-Z]+$'"),
    ("rlimit-soft-missing", RUNC_DEFAULT, lambda c: c["process"]["rlimits"][0].pop("soft"),
     "config.json: process.rlimits[0]: 'soft' is a required property"),
    ("rlimit-hard-negative", RUNC_DEFAULT, lambda c: c["process"]["rlimits"][0].update(hard=-1),
     "config.json: process.rlimits[0].hard: -1 is less than the minimum of 0"),
    ("rlimit-hard-over-uint64", RUNC_DEFAULT, lambda c: c["process"]["rlimits"][0].update(hard=2**64),
     "config.json: process.rlimits[0].hard: 18446744073709551616 is greater than the maximum of 18446744073709551615"),
    ("capability-name", RUNC_DEFAULT, lambda c: c["process"]["capabilities"]["bounding"].append(7),
     "config.json: process.capabilities.bounding[3]: 7 is not of type 'string'"),
    ("capabilities-list", RUNC_DEFAULT, lambda c: c["process"].update(capabilities=["CAP_KILL"]),
     "config.json: process.capabilities: ['CAP_KILL'] is not of type 'object'"),
    ("oom-score-string", RUNC_DEFAULT, lambda c: c["process"].update(oomScoreAdj="100"),
     "config.json: process.oomScoreAdj: '100' is not of type 'integer'"),
    ("scheduler-policy", RUNC_DEFAULT, lambda c: c["process"].update(scheduler={"policy": "SCHED_FOO"}),
     f"config.json: process.scheduler.policy: 'SCHED_FOO' is not one of {SCHED_POLICIES}"),
    ("scheduler-policy-missing", RUNC_DEFAULT, lambda c: c["process"].update(scheduler={"nice": 1}),
     "config.json: process.scheduler: 'policy' is a required property"),
    ("io-priority-class", RUNC_DEFAULT, lambda c: c["process"].update(ioPriority={"class": "RT", "priority": 0}),
     "config.json: process.ioPriority.class: 'RT' is not one of ['IOPRIO_CLASS_BE', 'IOPRIO_CLASS_IDLE', 'IOPRIO_CLASS_RT']"),
    ("cpu-affinity-syntax", RUNC_DEFAULT, lambda c: c["process"].update(execCPUAffinity={"initial": "0-3;7"}),
     "config.json: process.execCPUAffinity.initial: '0-3;7' is not a CPU list like '0-3,7'"),
    ("mount-destination-missing", RUNC_DEFAULT, lambda c: c["mounts"].append({"source": "/x", "type": "none"}),
     "config.json: mounts[7]: 'destination' is a required property"),
    ("mount-options-string", RUNC_DEFAULT, lambda c: c["mounts"][1].update(options="ro"),
     "config.json: mounts[1].options: 'ro' is not of type 'array'"),
    ("mount-not-object", RUNC_DEFAULT, lambda c: c["mounts"].insert(0, "/proc"),
     "config.json: mounts[0]: '/proc' is not of type 'object'"),
    ("mount-uid-mapping-alone", RUNC_DEFAULT,
     lambda c: c["mounts"][0].update(uidMappings=[{"containerID": 0, "hostID": 1, "size": 1}]),
     "config.json: mounts[0]: 'gidMappings' is required when 'uidMappings' is set"),
    ("hostname-int", RUNC_DEFAULT, lambda c: c.update(hostname=5), "config.json: hostname: 5 is not of type 'string'"),
    ("hook-path-missing", RUNC_DEFAULT, lambda c: c.update(hooks={"prestart": [{"args": ["x"]}]}),
     "config.json: hooks.prestart[0]: 'path' is a required property"),
    ("hook-path-relative", RUNC_DEFAULT, lambda c: c.update(hooks={"poststop": [{"path": "cleanup.sh"}]}),
     "config.json: hooks.poststop[0].path: 'cleanup.sh' is not an absolute path"),
    ("hook-timeout-zero", RUNC_DEFAULT, lambda c: c.update(hooks={"createRuntime": [{"path": "/bin/true", "timeout": 0}]}),
     "config.json: hooks.createRuntime[0].timeout: 0 is not greater than 0"),
    ("hooks-list", RUNC_DEFAULT, lambda c: c.update(hooks=[]), "config.json: hooks: [] is not of type 'object'"),
    ("annotation-value-int", RUNC_DEFAULT, lambda c: c.update(annotations={"com.example.x": 1}),
     'config.json: annotations["com.example.x"]: 1 is not of type \'string\''),
    ("annotation-empty-key", RUNC_DEFAULT, lambda c: c.update(annotations={"": "v"}),
     "config.json: annotations: key '' is too short"),
    ("namespace-type", RUNC_DEFAULT, lambda c: c["linux"]["namespaces"].__setitem__(2, {"type": "foo"}),
     f"config.json: linux.namespaces[2].type: 'foo' is not one of {NAMESPACES}"),
    ("namespace-type-missing", RUNC_DEFAULT, lambda c: c["linux"]["namespaces"].append({"path": "/proc/1/ns/net"}),
     "config.json: linux.namespaces[5]: 'type' is a required property"),
    ("namespace-path-relative", RUNC_DEFAULT, lambda c: c["linux"]["namespaces"][0].update(path="proc/1/ns/pid"),
     "config.json: linux.namespaces[0].path: 'proc/1/ns/pid' is not an absolute path"),
    ("uid-mapping-host-negative", RUNC_DEFAULT,
     lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": -1, "size": 1}]),
     "config.json: linux.uidMappings[0].hostID: -1 is less than the minimum of 0"),
    ("gid-mapping-size-missing", RUNC_DEFAULT, lambda c: c["linux"].update(gidMappings=[{"containerID": 0, "hostID": 0}]),
     "config.json: linux.gidMappings[0]: 'size' is a required property"),
    ("time-offset-nanosecs", RUNC_DEFAULT, lambda c: c["linux"].update(timeOffsets={"monotonic": {"nanosecs": -1}}),
     "config.json: linux.timeOffsets.monotonic.nanosecs: -1 is less than the minimum of 0"),
    ("device-type", RUNC_DEFAULT, lambda c: c["linux"].update(devices=[{"type": "x", "path": "/dev/x", "major": 1, "minor": 1}]),
     "config.json: linux.devices[0].type: 'x' is not one of ['b', 'c', 'p', 'u']"),
    ("device-major-missing", RUNC_DEFAULT, lambda c: c["linux"].update(devices=[{"type": "c", "path": "/dev/x", "minor": 1}]),
     "config.json: linux.devices[0]: 'major' is a required property"),
    ("device-path-missing", RUNC_DEFAULT, lambda c: c["linux"].update(devices=[{"type": "p"}]),
     "config.json: linux.devices[0]: 'path' is a required property"),
    ("device-file-mode-negative", RUNC_DEFAULT,
     lambda c: c["linux"].update(devices=[{"type": "p", "path": "/dev/f", "fileMode": -1}]),
     "config.json: linux.devices[0].fileMode: -1 is less than the minimum of 0"),
    ("cgroup-device-allow-missing", RUNC_DEFAULT, lambda c: c["linux"]["resources"]["devices"][0].pop("allow"),
     "config.json: linux.resources.devices[0]: 'allow' is a required property"),
    ("cgroup-device-type", RUNC_DEFAULT, lambda c: c["linux"]["resources"]["devices"][0].update(type="u"),
     "config.json: linux.resources.devices[0].type: 'u' is not one of ['a', 'b', 'c']"),
    ("cgroup-device-access", RUNC_DEFAULT, lambda c: c["linux"]["resources"]["devices"][0].update(access="rwx"),
     "config.json: linux.resources.devices[0].access: 'rwx' is not made of 'r', 'w' and 'm'"),
    ("memory-limit-string", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(memory={"limit": "1G"}),
     "config.json: linux.resources.memory.limit: '1G' is not of type 'integer'"),
    ("memory-limit-over-int64", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(memory={"limit": 2**63}),
     "config.json: linux.resources.memory.limit: 9223372036854775808 is greater than the maximum of 9223372036854775807"),
    ("memory-oom-killer-int", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(memory={"disableOOMKiller": 1}),
     "config.json: linux.resources.memory.disableOOMKiller: 1 is not of type 'boolean'"),
    ("cpu-shares-negative", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(cpu={"shares": -1}),
     "config.json: linux.resources.cpu.shares: -1 is less than the minimum of 0"),
    ("cpu-cpus-int", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(cpu={"cpus": 3}),
     "config.json: linux.resources.cpu.cpus: 3 is not of type 'string'"),
    ("pids-limit-missing", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(pids={}),
     "config.json: linux.resources.pids: 'limit' is a required property"),
    ("hugepage-size", RUNC_DEFAULT,
     lambda c: c["linux"]["resources"].update(hugepageLimits=[{"pageSize": "64kB", "limit": 1}]),
     "config.json: linux.resources.hugepageLimits[0].pageSize: '64kB' is not a page size like '2MB' or '64KB'"),
    ("hugepage-limit-missing", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(hugepageLimits=[{"pageSize": "2MB"}]),
     "config.json: linux.resources.hugepageLimits[0]: 'limit' is a required property"),
    ("blkio-weight-uint16", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(blockIO={"weight": 70000}),
     "config.json: linux.resources.blockIO.weight: 70000 is greater than the maximum of 65535"),
    ("blkio-weight-device-no-weight", RUNC_DEFAULT,
     lambda c: c["linux"]["resources"].update(blockIO={"weightDevice": [{"major": 8, "minor": 0}]}),
     "config.json: linux.resources.blockIO.weightDevice[0]: at least one of 'weight', 'leafWeight' is required"),
    ("blkio-throttle-rate-missing", RUNC_DEFAULT,
     lambda c: c["linux"]["resources"].update(blockIO={"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}),
     "config.json: linux.resources.blockIO.throttleReadBpsDevice[0]: 'rate' is a required property"),
    ("network-priority-missing", RUNC_DEFAULT,
     lambda c: c["linux"]["resources"].update(network={"priorities": [{"name": "eth0"}]}),
     "config.json: linux.resources.network.priorities[0]: 'priority' is a required property"),
    ("network-class-id-negative", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(network={"classID": -1}),
     "config.json: linux.resources.network.classID: -1 is less than the minimum of 0"),
    ("rdma-empty-entry", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(rdma={"mlx5_1": {}}),
     "config.json: linux.resources.rdma.mlx5_1: at least one of 'hcaHandles', 'hcaObjects' is required"),
    ("unified-value-int", RUNC_DEFAULT, lambda c: c["linux"]["resources"].update(unified={"pids.max": 10}),
     'config.json: linux.resources.unified["pids.max"]: 10 is not of type \'string\''),
    ("intel-rdt-mb-prefix", RUNC_DEFAULT, lambda c: c["linux"].update(intelRdt={"memBwSchema": "L3:0=20"}),
     "config.json: linux.intelRdt.memBwSchema: 'L3:0=20' must start with 'MB:' and have no newline"),
    ("intel-rdt-mb-newline", RUNC_DEFAULT, lambda c: c["linux"].update(intelRdt={"memBwSchema": "MB:0=20\n"}),
     "config.json: linux.intelRdt.memBwSchema: 'MB:0=20\\n' must start with 'MB:' and have no newline"),
    ("sysctl-value-int", RUNC_DEFAULT, lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": 1}),
     'config.json: linux.sysctl["net.ipv4.ip_forward"]: 1 is not of type \'string\''),
    ("seccomp-default-missing", RUNC_DEFAULT, lambda c: c["linux"].update(seccomp={"syscalls": []}),
     "config.json: linux.seccomp: 'defaultAction' is a required property"),
    ("seccomp-default-action", RUNC_DEFAULT, lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_DENY"}),
     f"config.json: linux.seccomp.defaultAction: 'SCMP_ACT_DENY' is not one of {SECCOMP_ACTIONS}"),
    ("seccomp-syscall-action", MAXIMAL, lambda c: c["linux"]["seccomp"]["syscalls"][1].update(action="ALLOW"),
     f"config.json: linux.seccomp.syscalls[1].action: 'ALLOW' is not one of {SECCOMP_ACTIONS}"),
    ("seccomp-names-empty", MAXIMAL, lambda c: c["linux"]["seccomp"]["syscalls"][0].update(names=[]),
     "config.json: linux.seccomp.syscalls[0].names: [] is too short"),
    ("seccomp-arg-op", MAXIMAL, lambda c: c["linux"]["seccomp"]["syscalls"][2]["args"][0].update(op="=="),
     "config.json: linux.seccomp.syscalls[2].args[0].op: '==' is not one of ['SCMP_CMP_EQ', 'SCMP_CMP_GE', "
     "'SCMP_CMP_GT', 'SCMP_CMP_LE', 'SCMP_CMP_LT', 'SCMP_CMP_MASKED_EQ', 'SCMP_CMP_NE']"),
    ("seccomp-arg-value-negative", MAXIMAL, lambda c: c["linux"]["seccomp"]["syscalls"][2]["args"][0].update(value=-1),
     "config.json: linux.seccomp.syscalls[2].args[0].value: -1 is less than the minimum of 0"),
    ("seccomp-arch", MAXIMAL, lambda c: c["linux"]["seccomp"]["architectures"].append("x86_64"),
     "config.json: linux.seccomp.architectures[3]: 'x86_64' is not one of ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM', "
     "'SCMP_ARCH_LOONGARCH64', 'SCMP_ARCH_M68K', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32', "
     "'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_PARISC', 'SCMP_ARCH_PARISC64', "
     "'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_RISCV64', 'SCMP_ARCH_S390', "
     "'SCMP_ARCH_S390X', 'SCMP_ARCH_SH', 'SCMP_ARCH_SHEB', 'SCMP_ARCH_X32', 'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64']"),
    ("seccomp-flag", MAXIMAL, lambda c: c["linux"]["seccomp"].update(flags=["TSYNC"]),
     "config.json: linux.seccomp.flags[0]: 'TSYNC' is not one of ['SECCOMP_FILTER_FLAG_LOG', "
     "'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV']"),
    ("seccomp-metadata-without-listener", MAXIMAL, lambda c: c["linux"]["seccomp"].pop("listenerPath"),
     "config.json: linux.seccomp: 'listenerPath' is required when 'listenerMetadata' is set"),
    ("seccomp-errno-negative", MAXIMAL, lambda c: c["linux"]["seccomp"].update(defaultErrnoRet=-1),
     "config.json: linux.seccomp.defaultErrnoRet: -1 is less than the minimum of 0"),
    ("rootfs-propagation", RUNC_DEFAULT, lambda c: c["linux"].update(rootfsPropagation="bogus"),
     "config.json: linux.rootfsPropagation: 'bogus' is not one of ['private', 'rprivate', 'rshared', 'rslave', "
     "'runbindable', 'shared', 'slave', 'unbindable']"),
    ("masked-path-relative", RUNC_DEFAULT, lambda c: c["linux"]["maskedPaths"].append("proc/kcore"),
     "config.json: linux.maskedPaths[10]: 'proc/kcore' is not an absolute path"),
    ("readonly-paths-string", RUNC_DEFAULT, lambda c: c["linux"].update(readonlyPaths="/proc/sys"),
     "config.json: linux.readonlyPaths: '/proc/sys' is not of type 'array'"),
    ("personality-domain", RUNC_DEFAULT, lambda c: c["linux"].update(personality={"domain": "LINUX64"}),
     "config.json: linux.personality.domain: 'LINUX64' is not one of ['LINUX', 'LINUX32']"),
    ("linux-not-object", RUNC_DEFAULT, lambda c: c.update(linux=None), "config.json: linux: None is not of type 'object'"),
    ("long-value-shortened", RUNC_DEFAULT, lambda c: c.update(hostname=["x" * 100]),
     "config.json: hostname: ['" + "x" * 67 + "... is not of type 'string'"),
]


@pytest.mark.pyrunc_only
@pytest.mark.parametrize(("base", "change", "expected"), [pytest.param(b, f, e, id=i) for i, b, f, e in CASES])
def test_invalid_config_message(
    base: dict[str, Json], change: Callable[[dict[str, Json]], object], expected: str
) -> None:
    message = reject(mutated(base, change))
    assert message == expected
    assert "\n" not in message


def test_enough_invalid_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("top", [[], "config", 1, None, True])
def test_top_level_not_an_object(top: object) -> None:
    assert reject(top) == f"config.json: {top!r} is not of type 'object'"


def test_source_prefixes_the_message() -> None:
    bad = mutated(RUNC_DEFAULT, lambda c: c["process"].update(args=[]))
    assert reject(bad, "/bundles/x/config.json") == "/bundles/x/config.json: process.args: [] is too short"


def test_specerror_carries_einval() -> None:
    import errno

    with pytest.raises(SpecError) as info:
        validate_config({})
    assert info.value.errno == errno.EINVAL


def test_deep_nesting_is_a_spec_error() -> None:
    deep: Json = "x"
    for _ in range(5000):
        deep = [deep]
    config = mutated(RUNC_DEFAULT, lambda c: c["linux"].update(unknownDeep=deep))
    # Unknown properties are not walked by either validator, so this is valid ...
    validate_config(config)
    # ... and where the schema does walk, depth is a one-line SpecError rather than a crash.
    message = reject(mutated(RUNC_DEFAULT, lambda c: c.update(hostname=deep)))
    assert message.startswith("config.json: ") and "\n" not in message


# --- state ----------------------------------------------------------------------------


def test_valid_states() -> None:
    validate_state({"ociVersion": "1.2.0", "id": "c1", "status": "running", "pid": 4422, "bundle": "/b"})
    validate_state({"ociVersion": "1.2.0", "id": "c1", "status": "stopped", "bundle": "/b", "annotations": {"k": "v"}})
    validate_state({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "bundle": "/b"})
    # runtime-defined states are allowed (runc reports "paused"); pid 0 is what runc shows once stopped
    validate_state({"ociVersion": "1.0.2-dev", "id": "c1", "status": "paused", "pid": 0, "bundle": "/b", "x": 1})
    # the state's ociVersion is any string (runtime.md asks no format of it; config.md does of a config's)
    validate_state({"ociVersion": "1.2", "id": "c1", "status": "stopped", "bundle": "/b"})


@pytest.mark.pyrunc_only
@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"id": "c", "status": "created", "pid": 1, "bundle": "/b"}, "state: 'ociVersion' is a required property"),
        ({"ociVersion": "1.2.0", "status": "stopped", "bundle": "/b"}, "state: 'id' is a required property"),
        ({"ociVersion": "1.2.0", "id": "c", "status": "created", "bundle": "/b"}, "state: 'pid' is a required property"),
        ({"ociVersion": "1.2.0", "id": "c", "status": "running", "pid": -1, "bundle": "/b"},
         "state: pid: -1 is less than the minimum of 0"),
        ({"ociVersion": "1.2.0", "id": "c", "status": "stopped", "bundle": "b"}, "state: bundle: 'b' is not an absolute path"),
        ({"ociVersion": 1.2, "id": "c", "status": "stopped", "bundle": "/b"},
         "state: ociVersion: 1.2 is not of type 'string'"),
        ({"ociVersion": "1.2.0", "id": "", "status": "stopped", "bundle": "/b"}, "state: id: '' is too short"),
        ({"ociVersion": "1.2.0", "id": "c", "status": 3, "bundle": "/b"}, "state: status: 3 is not of type 'string'"),
        ({"ociVersion": "1.2.0", "id": "c", "status": "stopped", "bundle": "/b", "annotations": {"k": 1}},
         "state: annotations.k: 1 is not of type 'string'"),
    ],
)
def test_invalid_states(state: dict[str, Json], expected: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_state(state)
    assert str(info.value) == expected


# --- random input -----------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _paths(node: Json, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _replace(node: Json, path: tuple[str | int, ...], value: Json) -> Json:
    if not path:
        return value
    parent = node
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return node


ALL_PATHS = {id(MAXIMAL): list(_paths(MAXIMAL)), id(RUNC_DEFAULT): list(_paths(RUNC_DEFAULT))}


def _same_type(value: Json) -> st.SearchStrategy[Json]:
    """Random values of the JSON type `value` has: probes ranges, enums and patterns, often still valid."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-(2**64), 2**65) | st.integers(-3, 3) | st.sampled_from([2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1])
    if isinstance(value, str):
        return st.text(max_size=10) | st.sampled_from(["/abs", "rel", "1.2.0", "RLIMIT_CPU", "CAP_X", "SCMP_ACT_LOG", "2MB"])
    return json_values


@st.composite
def near_valid_configs(draw: st.DrawFn) -> Json:
    """A valid config with a few nodes deleted, re-drawn with the same JSON type, or replaced by any JSON."""
    config: Json = copy.deepcopy(draw(st.sampled_from([MAXIMAL, RUNC_DEFAULT])))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(config))))
        old = config
        for part in path:
            old = old[part]
        how = draw(st.sampled_from(["delete", "same-type", "same-type", "any"]))
        if how == "delete" and path:
            parent = config
            for part in path[:-1]:
                parent = parent[part]
            del parent[path[-1]]
        elif how == "same-type":
            config = _replace(config, path, draw(_same_type(old)))
        else:
            config = _replace(config, path, draw(json_values))
    return config


def _outcome(config: Json) -> str | None:
    """None when valid, else the exact message; anything but SpecError escapes and fails the test."""
    try:
        validate_config(config)
    except SpecError as exc:
        return str(exc)
    return None


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_only_raises_specerror(value: Json) -> None:
    message = _outcome(value)
    assert message is None or (message.startswith("config.json: ") and "\n" not in message)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(MAXIMAL)), json_values, max_size=6))
def test_random_top_level_fields_only_raise_specerror(value: Json) -> None:
    message = _outcome(value)
    assert message is None or (message.startswith("config.json: ") and "\n" not in message)


@settings(max_examples=200, deadline=None)
@given(near_valid_configs())
def test_mutated_configs_only_raise_specerror(config: Json) -> None:
    message = _outcome(config)
    assert message is None or (message.startswith("config.json: ") and "\n" not in message)
