"""Pure cgroup conversions: v1 -> v2 formulas, device rules (emulator, v1 transitions, the
eBPF program's verdicts), stats parsing, the spec -> Resources conversion, update's flags.

No root, no cgroup filesystem: every function under test takes values or a reader."""

from __future__ import annotations

import struct

import pytest

from pyrunc.cgroups import clean_path, inner_path
from pyrunc.cgroups import devices as dv
from pyrunc.cgroups import resources as conv
from pyrunc.cgroups import stats
from pyrunc.cli.cgroupcmds import _from_flags, parse_duration
from pyrunc.errors import SpecError, UnsupportedError, UsageError
from pyrunc.spec.config import DeviceRule, Resources, ThrottleDevice, _resources

# -- v1 -> v2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shares,weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000), (512, 20)])
def test_shares_to_weight_matches_runc(shares: int, weight: int) -> None:
    assert conv.shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio,io", [(0, 0), (10, 1), (500, 4950), (1000, 10000), (100, 910)])
def test_blkio_weight_to_io_weight_matches_runc(blkio: int, io: int) -> None:
    assert conv.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap,memory,expected", [
    (0, 0, 0),                        # nothing set
    (0, -1, -1),                      # memory unlimited, swap unset: both unlimited
    (-1, 100, -1),                    # unlimited swap
    (200, 100, 100),                  # memory+swap 200 = 100 memory + 100 swap
    (100, 100, 0),                    # equal: no swap at all
])
def test_swap_to_v2(swap: int, memory: int, expected: int) -> None:
    assert conv.swap_to_v2(swap, memory) == expected


@pytest.mark.parametrize("swap,memory,msg", [
    (100, 0, "needs a memory limit"), (100, -1, "needs a memory limit"),
    (50, 100, "must be >= memory.limit"),
])
def test_swap_to_v2_refuses_what_runc_refuses(swap: int, memory: int, msg: str) -> None:
    with pytest.raises(SpecError, match=msg):
        conv.swap_to_v2(swap, memory)


def test_v2_value_formats() -> None:
    assert conv.limit_v2(-1) == "max" and conv.limit_v2(4096) == "4096"
    assert conv.cpu_max(None, None) is None
    assert conv.cpu_max(50000, None) == "50000 100000"
    assert conv.cpu_max(-1, 20000) == "max 20000"
    assert conv.cpu_max(None, 20000) == "max 20000"
    assert conv.pids_max(0) is None and conv.pids_max(None) is None
    assert conv.pids_max(-1) == "max" and conv.pids_max(42) == "42"


def test_swappiness_range() -> None:
    assert conv.check_swappiness(None) is None
    assert conv.check_swappiness(-1) is None
    assert conv.check_swappiness((1 << 64) - 1) is None  # runc's "unset" as a uint64
    assert conv.check_swappiness(60) == 60
    with pytest.raises(SpecError, match="0-100"):
        conv.check_swappiness(101)


def test_throttle_lines_both_versions() -> None:
    r = Resources(blkio_throttle_read_bps=(ThrottleDevice(8, 0, 1048576),),
                  blkio_throttle_write_iops=(ThrottleDevice(8, 16, 100), ThrottleDevice(8, 0, 0)))
    assert conv.throttle_v1(r) == [("blkio.throttle.read_bps_device", "8:0 1048576"),
                                   ("blkio.throttle.write_iops_device", "8:16 100"),
                                   ("blkio.throttle.write_iops_device", "8:0 0")]
    assert conv.io_max_v2(r) == ["8:0 rbps=1048576", "8:16 wiops=100", "8:0 wiops=max"]


def test_hugetlb_and_rdma_files() -> None:
    assert conv.hugetlb_file("2MB", v2=False) == "hugetlb.2MB.limit_in_bytes"
    assert conv.hugetlb_file("1GB", v2=True) == "hugetlb.1GB.max"
    with pytest.raises(SpecError):
        conv.hugetlb_file("2M", v2=True)
    assert conv.rdma_line("mlx5_1", 3, None) == "mlx5_1 hca_handle=3"
    assert conv.rdma_line("mlx4_0", 2, 2000) == "mlx4_0 hca_handle=2 hca_object=2000"
    assert conv.rdma_line("mlx4_0", None, None) is None


@pytest.mark.parametrize("text,value", [("100", 100), ("1k", 1024), ("512m", 512 << 20),
                                        ("1g", 1 << 30), ("2GiB", 2 << 30), ("1.5m", 1572864),
                                        ("64MB", 64 << 20), ("-1", -1)])
def test_parse_size_as_runc_update(text: str, value: int) -> None:
    assert conv.parse_size(text, "--memory") == value


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(UsageError, match="--memory"):
        conv.parse_size("lots", "--memory")


# -- cgroupsPath ------------------------------------------------------------------------------


def test_v2_relative_paths_go_below_the_parent_of_our_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own v2 cgroup has processes, so it cannot delegate controllers: runc uses its parent."""
    import pyrunc.cgroups as cg
    monkeypatch.setattr(cg, "own_cgroup", lambda ctrl: "/user.slice/session-1.scope")
    assert cg.resolve_path("ctr", "id1", None) == "/user.slice/ctr"
    assert cg.resolve_path(None, "id1", None) == "/user.slice/id1"
    assert cg.resolve_path("../../x", "id1", None) == "/user.slice/x"
    assert cg.resolve_path("/abs/p", "id1", None) == "/abs/p"
    monkeypatch.setattr(cg, "own_cgroup", lambda ctrl: "/")
    assert cg.resolve_path("a/b", "id1", None) == "/a/b"


def test_v1_relative_paths_are_per_controller_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """On v1 each controller has its own "own cgroup"; the record keeps every path."""
    from pyrunc.cgroups import v1
    mounts = {"cpu": "/sys/fs/cgroup/cpu", "memory": "/sys/fs/cgroup/memory"}
    monkeypatch.setattr(v1, "hierarchies", lambda: dict(mounts))
    monkeypatch.setattr(v1, "own_cgroup", lambda ctrl: {"cpu": "/", "memory": "/m/1"}[ctrl])
    mgr = v1.V1Manager.for_spec("x/y", "id1")
    assert mgr._dir("cpu") == "/sys/fs/cgroup/cpu/x/y"
    assert mgr._dir("memory") == "/sys/fs/cgroup/memory/m/1/x/y"
    again = v1.V1Manager.load(mgr.path)
    assert again._dir("memory") == mgr._dir("memory") and again._dir("cpu") == mgr._dir("cpu")
    same = v1.V1Manager.for_spec("/abs", "id1")
    assert same.path == "/abs"                      # one path: recorded as a plain string
    assert v1.V1Manager.load("/abs")._dir("memory") == "/sys/fs/cgroup/memory/abs"


def test_clean_path_is_runc_cleanpath() -> None:
    assert clean_path("") == ""
    assert clean_path("/a/../b//c/") == "/b/c"
    assert clean_path("../../etc") == "etc"        # relative paths cannot climb out
    assert clean_path("a/./b/../c") == "a/c"
    assert inner_path(None, "ctr1") == "ctr1"      # absent: the container id, relative
    assert inner_path("/x/y", "ctr1") == "/x/y"


# -- spec -> Resources ------------------------------------------------------------------------


def test_resources_from_spec_every_field() -> None:
    r = _resources({
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1,
                                                         "minor": -1, "access": "r"}],
        "memory": {"limit": 1, "reservation": 2, "swap": 3, "kernel": 4, "kernelTCP": 5,
                   "swappiness": 6, "disableOOMKiller": True, "useHierarchy": True,
                   "checkBeforeUpdate": True},
        "cpu": {"shares": 7, "quota": 8, "burst": 9, "period": 10, "realtimeRuntime": 11,
                "realtimePeriod": 12, "cpus": "0", "mems": "0", "idle": 1},
        "pids": {"limit": 13},
        "blockIO": {"weight": 14, "leafWeight": 15,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 16}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 17}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 18}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 19}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 20}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 21}],
        "network": {"classID": 22, "priorities": [{"name": "eth0", "priority": 23}]},
        "rdma": {"mlx5_1": {"hcaHandles": 24, "hcaObjects": 25}},
        "unified": {"memory.high": "26"},
    })
    assert r.devices == (DeviceRule(False, "a", None, None, "rwm"), DeviceRule(True, "c", 1, None, "r"))
    assert (r.memory_limit, r.memory_reservation, r.memory_swap, r.memory_kernel,
            r.memory_kernel_tcp, r.memory_swappiness) == (1, 2, 3, 4, 5, 6)
    assert r.memory_disable_oom_killer and r.memory_use_hierarchy and r.memory_check_before_update
    assert (r.cpu_shares, r.cpu_quota, r.cpu_burst, r.cpu_period, r.cpu_realtime_runtime,
            r.cpu_realtime_period, r.cpu_cpus, r.cpu_mems, r.cpu_idle) == (7, 8, 9, 10, 11, 12, "0", "0", 1)
    assert r.pids_limit == 13 and r.blkio_weight == 14 and r.blkio_leaf_weight == 15
    assert r.blkio_weight_device[0].weight == 16
    assert [t.rate for t in (r.blkio_throttle_read_bps + r.blkio_throttle_write_bps +
                             r.blkio_throttle_read_iops + r.blkio_throttle_write_iops)] == [17, 18, 19, 20]
    assert r.hugepage_limits[0].page_size == "2MB" and r.hugepage_limits[0].limit == 21
    assert r.net_class_id == 22 and r.net_priorities == (("eth0", 23),)
    assert r.rdma[0].device == "mlx5_1" and (r.rdma[0].hca_handles, r.rdma[0].hca_objects) == (24, 25)
    assert r.unified == (("memory.high", "26"),)


def test_absent_resources_still_mean_the_default_device_list() -> None:
    r = _resources(None)
    assert r == Resources() and r.devices is None
    assert conv.is_empty(r)


def test_update_json_is_schema_checked_with_its_own_name() -> None:
    r = conv.from_json({"memory": {"limit": 1 << 20}, "pids": {"limit": 5}}, "res.json")
    assert r.memory_limit == 1 << 20 and r.pids_limit == 5 and r.devices is None
    with pytest.raises(SpecError, match=r"^res.json: memory.limit"):
        conv.from_json({"memory": {"limit": "big"}}, "res.json")
    with pytest.raises(SpecError, match="JSON object"):
        conv.from_json([1], "res.json")


def test_update_flags() -> None:
    r = _from_flags({"memory": "64m", "memory_swap": "-1", "cpu_share": "512", "cpu_quota": "-1",
                     "cpuset_cpus": "0", "pids_limit": 10, "blkio_weight": 300})
    assert (r.memory_limit, r.memory_swap, r.cpu_shares, r.cpu_quota, r.cpu_cpus, r.pids_limit,
            r.blkio_weight) == (64 << 20, -1, 512, -1, "0", 10, 300)
    assert r.devices is None  # flags never touch the device rules
    assert conv.is_empty(_from_flags({"pids_limit": 0}))
    with pytest.raises(UsageError, match="--cpu-share"):
        _from_flags({"cpu_share": "-5"})
    with pytest.raises(UsageError, match="blkio-weight"):
        _from_flags({"blkio_weight": 5})
    with pytest.raises(UnsupportedError, match="Intel RDT"):
        _from_flags({"l3_cache_schema": "L3:0=f"})


@pytest.mark.parametrize("text,seconds", [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0),
                                          ("2", 2.0), ("1.5s", 1.5), ("100us", 1e-4)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(UsageError):
        parse_duration("soon")


# -- devices ----------------------------------------------------------------------------------

DENY_ALL = DeviceRule(False, "a", None, None, "rwm")


def verdict(state: dv.DeviceState, t: str, major: int, minor: int, access: str) -> bool:
    return dv.evaluate(dv.program(state), t, major, minor, access)


def test_default_list_on_deny_all() -> None:
    st = dv.DeviceState.from_rules((DENY_ALL,))
    assert not st.default_allow
    assert verdict(st, "c", 1, 3, "rw")            # null
    assert verdict(st, "c", 1, 7, "r")             # full
    assert verdict(st, "c", 136, 4, "rw")          # any pts
    assert verdict(st, "c", 99, 1, "m")            # mknod of anything
    assert not verdict(st, "c", 99, 1, "r")        # but no access to it
    assert not verdict(st, "b", 8, 0, "r")         # no disk
    assert verdict(st, "c", 1, 3, "rwm")


def test_spec_rules_cannot_remove_defaults_but_add_devices() -> None:
    st = dv.DeviceState.from_rules((DENY_ALL, DeviceRule(False, "c", 1, 3, "rwm"),
                                    DeviceRule(True, "b", 8, 0, "r")))
    assert verdict(st, "c", 1, 3, "rw")           # the default list comes last (runc)
    assert verdict(st, "b", 8, 0, "r")
    assert not verdict(st, "b", 8, 0, "w")
    assert not verdict(st, "b", 8, 0, "rw")       # a request needs all its accesses


def test_allow_all_then_deny_exceptions() -> None:
    st = dv.DeviceState.from_rules((DeviceRule(True, "a", None, None, "rwm"),
                                    DeviceRule(False, "c", 10, 229, "rw")), defaults=False)
    assert st.default_allow
    assert verdict(st, "b", 8, 0, "rw")
    assert not verdict(st, "c", 10, 229, "r")
    assert verdict(st, "c", 10, 229, "m")


def test_wildcard_hole_punching_is_refused() -> None:
    st = dv.DeviceState.from_rules((DENY_ALL, DeviceRule(True, "c", 4, None, "rw")), defaults=False)
    with pytest.raises(SpecError, match="punch a hole"):
        st.apply(DeviceRule(False, "c", 4, 1, "r"))


def test_program_is_valid_bpf_bytes() -> None:
    insns = dv.program(dv.DeviceState.from_rules((DENY_ALL,)))
    code = dv.assemble(insns)
    assert len(code) == 8 * len(insns)
    op, regs, off, imm = struct.unpack("<BBhi", code[:8])
    assert (op, regs & 0xF, regs >> 4, off, imm) == (0x61, 2, 1, 0, 0)  # r2 = *(u32 *)(r1 + 0)
    assert code[-8] == 0x95                                          # exit
    for i in insns:                                                  # every jump lands inside
        if i.code in (0x55, 0x5D):
            assert 0 < i.off < len(insns)


def test_v1_transition_from_allow_all_host_default() -> None:
    current = dv.from_devices_list("a *:* rwm\n")
    target = dv.DeviceState.from_rules((DENY_ALL, DeviceRule(True, "b", 8, 0, "r")))
    writes = [conv.rule_text(r) + (" +" if r.allow else " -") for r in current.transition(target)]
    assert writes[0] == "a -"                 # the disruptive deny-all first
    assert "b 8:0 r +" in writes and "c 1:3 rwm +" in writes and "c *:* m +" in writes


def test_v1_rules_are_written_in_spec_order_then_defaults() -> None:
    """devices.list lists exceptions in the order they were added; the runtime-spec says
    entries apply in the listed order, and runtime-tools checks exactly that."""
    spec = (DENY_ALL, DeviceRule(True, "c", 10, 229, "rwm"), DeviceRule(True, "b", 8, 20, "rw"),
            DeviceRule(True, "b", 10, 200, "r"))
    writes = [conv.rule_text(r) for r in
              dv.from_devices_list("a *:* rwm").transition(dv.DeviceState.from_rules(spec))]
    assert writes[:4] == ["a", "c 10:229 rwm", "b 8:20 rw", "b 10:200 r"]
    assert writes[4:6] == ["c *:* m", "b *:* m"]


def test_v1_transition_update_is_minimal() -> None:
    old = dv.DeviceState.from_rules((DENY_ALL, DeviceRule(True, "b", 8, 0, "rw")))
    listed = dv.from_devices_list("\n".join(
        f"{t} {'*' if ma is None else ma}:{'*' if mi is None else mi} {''.join(sorted(p, key='rwm'.index))}"
        for (t, ma, mi), p in old.ordered()))
    assert listed == old
    new = dv.DeviceState.from_rules((DENY_ALL, DeviceRule(True, "b", 8, 0, "r"),
                                     DeviceRule(True, "c", 10, 229, "rwm")))
    writes = [(r.allow, conv.rule_text(r)) for r in listed.transition(new)]
    assert writes == [(False, "b 8:0 w"), (True, "c 10:229 rwm")]  # no "a": nothing disrupted


# -- stats ------------------------------------------------------------------------------------


def test_stats_v2_shape() -> None:
    files = {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
                    "nr_throttled 1\nthrottled_usec 20\n",
        "memory.stat": "anon 4096\nfile 8192\n",
        "memory.current": "12288\n", "memory.max": "67108864\n", "memory.peak": "20000\n",
        "memory.swap.current": "0\n", "memory.swap.max": "max\n",
        "pids.current": "3\n", "pids.max": "max\n",
        "io.stat": "254:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        "hugetlb.2MB.current": "0\n", "hugetlb.2MB.events": "max 2\n",
    }
    s = stats.v2(files.get, ["2MB", "1GB"])
    assert s["cpu"]["usage"] == {"total": 1500000, "kernel": 500000, "user": 1000000}
    assert s["cpu"]["throttling"] == {"periods": 4, "throttledPeriods": 1, "throttledTime": 20000}
    assert s["memory"]["usage"] == {"limit": 67108864, "usage": 12288, "max": 20000, "failcnt": 0}
    assert s["memory"]["swap"]["limit"] == stats.MAX_UINT64
    assert s["memory"]["cache"] == 8192 and s["memory"]["raw"]["anon"] == 4096
    assert s["pids"] == {"current": 3}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 254, "op": "Read", "value": 4096}, {"major": 254, "op": "Write"}]
    assert s["hugetlb"] == {"2MB": {"failcnt": 2}}
    assert set(s) == {"cpu", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"}


def test_stats_v1_shape() -> None:
    files = {
        ("cpuacct", "cpuacct.usage"): "3000\n", ("cpuacct", "cpuacct.usage_percpu"): "1000 2000\n",
        ("cpuacct", "cpuacct.stat"): "user 3\nsystem 1\n",
        ("cpu", "cpu.stat"): "nr_periods 2\nnr_throttled 0\nthrottled_time 0\n",
        ("memory", "memory.stat"): "cache 100\nrss 200\n",
        ("memory", "memory.usage_in_bytes"): "300\n", ("memory", "memory.limit_in_bytes"): "1000\n",
        ("memory", "memory.max_usage_in_bytes"): "400\n", ("memory", "memory.failcnt"): "5\n",
        ("pids", "pids.current"): "2\n", ("pids", "pids.max"): "10\n",
        ("blkio", "blkio.throttle.io_service_bytes_recursive"): "254:0 Read 512\n254:0 Write 0\nTotal 512\n",
    }
    s = stats.v1(lambda c, n: files.get((c, n)), 100, ["2MB"])
    assert s["cpu"]["usage"] == {"total": 3000, "percpu": [1000, 2000], "kernel": 10_000_000,
                                 "user": 30_000_000}
    assert s["memory"]["usage"] == {"limit": 1000, "usage": 300, "max": 400, "failcnt": 5}
    assert s["memory"]["swap"] == {"limit": 0, "failcnt": 0}
    assert s["memory"]["cache"] == 100
    assert s["pids"] == {"current": 2, "limit": 10}
    assert s["blkio"]["ioServiceBytesRecursive"][0] == {"major": 254, "op": "Read", "value": 512}
    assert s["hugetlb"] == {}


@pytest.mark.parametrize("size,name", [(2 << 20, "2MB"), (1 << 30, "1GB"), (64 << 10, "64KB")])
def test_hugepage_size_names(size: int, name: str) -> None:
    assert stats.size_name(size) == name
