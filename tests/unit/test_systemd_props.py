"""The systemd driver's reading of cgroupsPath and its unit properties, as runc makes them
(no systemd needed: these are the values sent over D-Bus; tests/integration/test_systemd_cgroup.py
checks what systemd does with them)."""

from __future__ import annotations

import pytest

from pyrunc.cgroups import systemd as sd
from pyrunc.errors import SpecError
from pyrunc.spec.config import Resources

U64 = (1 << 64) - 1


@pytest.mark.parametrize("path, want", [
    ("system.slice:docker:abc", ("docker-abc.scope", "system.slice", "/system.slice/docker-abc.scope")),
    ("kubepods-burstable-pod12.slice:cri-containerd:c1",
     ("cri-containerd-c1.scope", "kubepods-burstable-pod12.slice",
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-c1.scope")),
    (":docker:abc", ("docker-abc.scope", "system.slice", "/system.slice/docker-abc.scope")),
    ("-.slice:p:n", ("p-n.scope", "-.slice", "/p-n.scope")),
    ("", ("pyrunc-cid.scope", "system.slice", "/system.slice/pyrunc-cid.scope")),
    (None, ("pyrunc-cid.scope", "system.slice", "/system.slice/pyrunc-cid.scope")),
    # runc joins prefix and name with "-" whatever the prefix (getUnitName)
    ("system.slice::name", ("-name.scope", "system.slice", "/system.slice/-name.scope")),
    ("system.slice:x:kubepods-besteffort.slice",
     ("kubepods-besteffort.slice", "system.slice", "/kubepods.slice/kubepods-besteffort.slice")),
])
def test_parse_path(path: str | None, want: tuple[str, str, str]) -> None:
    assert sd.parse_path(path, "cid") == want


@pytest.mark.parametrize("path", ["/pyrunc/x", "a:b", "a:b:c:d", "system.slice:p:", "noslice:p:n",
                                  "a--b.slice:p:n", "-a.slice:p:n", "system.slice:p:a/b",
                                  "sys/tem.slice:p:n", "system.slice:p:a b",
                                  "-:p:n", ".slice:p:n"])  # runc: "invalid slice name" for both
def test_parse_path_refuses(path: str) -> None:
    with pytest.raises(SpecError):
        sd.parse_path(path, "cid")


def test_base_properties_scope_and_slice() -> None:
    scope = dict(sd.base_properties("docker-a.scope", "system.slice"))
    assert scope["Slice"] == ("s", "system.slice") and scope["Delegate"] == ("b", True)
    assert scope["DefaultDependencies"] == ("b", False)
    assert all(scope[k] == ("b", True) for k in ("MemoryAccounting", "CPUAccounting",
                                                 "IOAccounting", "TasksAccounting"))
    sl = dict(sd.base_properties("kubepods-x.slice", "kubepods.slice"))
    assert sl["Wants"] == ("as", ["kubepods.slice"]) and "Slice" not in sl and "Delegate" not in sl


def test_resource_properties() -> None:
    r = Resources(memory_limit=64 << 20, memory_reservation=32 << 20, memory_swap=128 << 20,
                  cpu_shares=1024, cpu_quota=50_000, cpu_period=100_000, cpu_cpus="0-1,3",
                  cpu_mems="0", pids_limit=42)
    props = dict(sd.resource_properties(r))
    assert props["MemoryMax"] == ("t", 64 << 20)
    assert props["MemoryLow"] == ("t", 32 << 20)
    assert props["MemorySwapMax"] == ("t", 64 << 20)   # v2 counts swap alone
    assert props["CPUWeight"] == ("t", 39)             # runc's shares->weight of 1024
    assert props["CPUQuotaPerSecUSec"] == ("t", 500_000)
    assert props["CPUQuotaPeriodUSec"] == ("t", 100_000)
    assert props["AllowedCPUs"] == ("ay", bytes([0b1011]))
    assert props["AllowedMemoryNodes"] == ("ay", b"\x01")
    assert props["TasksMax"] == ("t", 42)


def test_unlimited_and_rounding() -> None:
    props = dict(sd.resource_properties(Resources(memory_limit=-1, pids_limit=-1, cpu_quota=-1,
                                                  cpu_period=50_000)))
    assert props["MemoryMax"] == ("t", U64) and props["TasksMax"] == ("t", U64)
    assert props["CPUQuotaPerSecUSec"] == ("t", U64)
    # 12345 us per 100 ms is 123450 us/s: systemd keeps whole percents, so 130000
    assert sd.cpu_quota_per_sec(12_345, 100_000) == 130_000
    assert sd.cpu_quota_per_sec(None, None) is None
    assert sd.resource_properties(Resources()) == []


def test_unified_properties() -> None:
    props = dict(sd.resource_properties(Resources(unified=(("memory.high", "1000000"),
                                                           ("pids.max", "max"),
                                                           ("cpu.max", "20000 100000")))))
    assert props["MemoryHigh"] == ("t", 1_000_000) and props["TasksMax"] == ("t", U64)
    assert props["CPUQuotaPerSecUSec"] == ("t", 200_000)
    with pytest.raises(SpecError, match="memory.high"):
        sd.resource_properties(Resources(unified=(("memory.high", "lots"),)))


def test_annotation_properties() -> None:
    props = sd.annotation_properties({
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.TimeoutStopSec": "5",
        "org.systemd.property.After": "['a.service', \"b.service\"]",
        "org.systemd.property.IgnoreSIGPIPE": "true",
        "other": "x",
    })
    assert props == [("After", ("as", ["a.service", "b.service"])),
                     ("CollectMode", ("s", "inactive-or-failed")),
                     ("IgnoreSIGPIPE", ("b", True)),
                     ("TimeoutStopUSec", ("t", 5_000_000)),
                     ("TimeoutStopUSec", ("t", 123456789))]


@pytest.mark.parametrize("key, value", [("org.systemd.property.", "1"),
                                        ("org.systemd.property.a.b", "1"),
                                        ("org.systemd.property.CPUWeight", "not a variant"),
                                        ("org.systemd.property.XSec", "'text'"),
                                        ("org.systemd.property.Ab", "1"),
                                        ("org.systemd.property.Memory_Max", "1"),
                                        ("org.systemd.property.CPU2", "1"),
                                        # beyond the container's unit (rev21 F1)
                                        ("org.systemd.property.Conflicts", "['victim.service']"),
                                        ("org.systemd.property.Wants", "['starter.service']"),
                                        ("org.systemd.property.PropagatesStopTo", "['v.service']"),
                                        ("org.systemd.property.SuccessAction", "'reboot-force'"),
                                        ("org.systemd.property.FailureAction", "'poweroff'"),
                                        ("org.systemd.property.Slice", "'other.slice'"),
                                        ("org.systemd.property.PIDs", "[1]"),
                                        ("org.systemd.property.Delegate", "false"),
                                        # (rev23 F1)
                                        ("org.systemd.property.WantsMountsFor", "['/srv']"),
                                        ("org.systemd.property.RefuseManualStop", "true"),
                                        ("org.systemd.property.Controller", "':1.5'"),
                                        ("org.systemd.property.OnSuccessJobMode", "'fail'"),
                                        ("org.systemd.property.NFTSet", "['cgroup:inet:f:s']"),
                                        ("org.systemd.property.BPFProgram", "['egress:/x']"),
                                        ("org.systemd.property.IPIngressFilterPath", "['/x']"),
                                        # out of range: refused by name, not by the marshaller
                                        ("org.systemd.property.TimeoutStopSec", "1e999"),
                                        ("org.systemd.property.TimeoutStopSec", "-5"),
                                        ("org.systemd.property.TimeoutStopSec", "nan"),
                                        ("org.systemd.property.TasksMax", "@t -1"),
                                        ("org.systemd.property.TasksMax", "uint64 -1"),
                                        ("org.systemd.property.TasksMax", "@t 99999999999999999999999"),
                                        ("org.systemd.property.TasksMax", "byte 256"),
                                        ("org.systemd.property.CPUWeight", "4294967296")])
def test_annotation_properties_refused(key: str, value: str) -> None:
    with pytest.raises(SpecError, match="annotation") as exc:
        sd.annotation_properties({key: value})
    assert key in str(exc.value)


def test_device_properties_default_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default allow-list as systemd entries: paths for single devices, char-* for any
    major, /proc/devices' group for a major's every minor (136: pts); a device the host does
    not have (no /dev/char/M:m nor /sys/dev/char/M:m: tun unloaded) is left out, as runc."""
    monkeypatch.setattr(sd.os.path, "exists", lambda p: True)
    # an empty DeviceAllow first resets systemd's list (it appends otherwise: rev21 F6)
    assert sd.device_properties(())[1] == ("DeviceAllow", ("a(ss)", []))
    props = dict(sd.device_properties(()))
    assert props["DevicePolicy"] == ("s", "strict")
    sig, allow = props["DeviceAllow"]
    assert sig == "a(ss)"
    assert allow[:3] == [("char-*", "m"), ("block-*", "m"), ("/dev/char/1:3", "rwm")]
    assert ("char-pts", "rwm") in allow and ("/dev/char/10:200", "rwm") in allow
    assert len(allow) == 12
    asked: list[str] = []
    monkeypatch.setattr(sd.os.path, "exists", lambda p: asked.append(p) or "10:200" not in p)
    _sig, allow = dict(sd.device_properties(()))["DeviceAllow"]
    assert ("/dev/char/10:200", "rwm") not in allow and len(allow) == 11
    assert {"/dev/char/10:200", "/sys/dev/char/10:200"} <= set(asked)


def test_device_properties_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrunc.spec.config import DeviceRule
    monkeypatch.setattr(sd.os.path, "exists", lambda p: True)
    allow_all = dict(sd.device_properties((DeviceRule(True, "a", None, None, "rwm"),)))
    assert allow_all == {"DevicePolicy": ("s", "auto"), "DeviceAllow": ("a(ss)", [])}
    # allow-all with a hole: systemd has no deny entries; strict and empty until the eBPF
    # program (which has the hole) replaces systemd's
    holed = dict(sd.device_properties((DeviceRule(True, "a", None, None, "rwm"),
                                       DeviceRule(False, "b", 7, 2, "r"))))
    assert holed == {"DevicePolicy": ("s", "strict"), "DeviceAllow": ("a(ss)", [])}
    _sig, allow = dict(sd.device_properties((DeviceRule(True, "b", 7, 2, "r"),
                                             DeviceRule(True, "c", None, 9, "r"))))["DeviceAllow"]
    assert allow[0] == ("/dev/block/7:2", "r")
    assert not any(path.startswith("char-") and path != "char-*" and mode == "r"
                   for path, mode in allow)   # '*:9' has no systemd form: left out
