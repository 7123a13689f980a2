"""Cgroup statistics in the shape `runc events` prints (runc's types.Stats JSON).

Pure functions over a `Reader` (file name -> contents, or None when the file is not
there), so the parsing is unit-tested without a cgroup filesystem. The JSON keeps
runc's field names and its omitempty habits: callers that parse runc's output
(containerd's shim, monitoring scripts) read ours the same way.
"""

from __future__ import annotations

import os
from typing import Any, Callable

Reader = Callable[[str], "str | None"]
MAX_UINT64 = (1 << 64) - 1


def _int(text: str | None) -> int:
    """A single-number cgroup file; "max" (v2) reads as runc's MaxUint64."""
    if text is None:
        return 0
    text = text.strip()
    if text == "max":
        return MAX_UINT64
    try:
        return int(text)
    except ValueError:
        return 0


def flat_keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events) as a dict."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def _omit(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Go's omitempty for the named keys: drop zero numbers and empty lists/dicts."""
    return {k: v for k, v in d.items() if not (k in keys and not v)}


def _memory_entry(limit: int, usage: int, max_usage: int, failcnt: int) -> dict[str, Any]:
    return _omit({"limit": limit, "usage": usage, "max": max_usage, "failcnt": failcnt},
                 "usage", "max")


def hugepage_sizes(sysfs: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """Huge page sizes as cgroup file names spell them ("2MB", "1GB"), from sysfs."""
    try:
        names = os.listdir(sysfs)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if name.startswith("hugepages-") and name.endswith("kB"):
            out.append(size_name(int(name[len("hugepages-"):-2]) * 1024))
    return out


def size_name(size: int) -> str:
    """Bytes as the hugetlb controller names a page size: 2097152 -> "2MB", 65536 -> "64KB"."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size < 1024 or size % 1024:
            return f"{size}{unit}"
        size //= 1024
    return f"{size}EB"


def _blkio_v1(text: str | None) -> list[dict[str, Any]]:
    """blkio.*_recursive lines "MAJ:MIN Op VALUE" (the "Total" line is skipped)."""
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, minor = parts[0].split(":", 1)
        out.append(_omit({"major": int(major), "minor": int(minor), "op": parts[1],
                          "value": int(parts[2])}, "major", "minor", "op", "value"))
    return out


def _empty() -> dict[str, Any]:
    return {"cpu": {}, "memory": {}, "pids": {}, "blkio": {}, "hugetlb": {},
            "intel_rdt": {}, "network_interfaces": None}


def v1(read: Callable[[str, str], "str | None"], clk_tck: int,
       page_sizes: list[str]) -> dict[str, Any]:
    """Stats of a v1 cgroup; `read(controller, file)`."""
    out = _empty()
    # cpu: cpuacct for usage (ns), cpu for throttling
    percpu = [int(x) for x in (read("cpuacct", "cpuacct.usage_percpu") or "").split()]
    pk = [int(x) for x in (read("cpuacct", "cpuacct.usage_percpu_sys") or "").split()]
    pu = [int(x) for x in (read("cpuacct", "cpuacct.usage_percpu_user") or "").split()]
    user_ns = read("cpuacct", "cpuacct.usage_user")
    sys_ns = read("cpuacct", "cpuacct.usage_sys")
    if user_ns is not None and sys_ns is not None:
        user, kernel = _int(user_ns), _int(sys_ns)
    else:
        ticks = flat_keyed(read("cpuacct", "cpuacct.stat"))
        ns_per_tick = 1_000_000_000 // clk_tck
        user, kernel = ticks.get("user", 0) * ns_per_tick, ticks.get("system", 0) * ns_per_tick
    usage = _omit({"total": _int(read("cpuacct", "cpuacct.usage")), "percpu": percpu,
                   "percpu_kernel": pk, "percpu_user": pu, "kernel": kernel, "user": user},
                  "total", "percpu", "percpu_kernel", "percpu_user")
    cs = flat_keyed(read("cpu", "cpu.stat"))
    out["cpu"] = {"usage": usage, "throttling": _omit(
        {"periods": cs.get("nr_periods", 0), "throttledPeriods": cs.get("nr_throttled", 0),
         "throttledTime": cs.get("throttled_time", 0)},
        "periods", "throttledPeriods", "throttledTime")}

    # memory
    def entry(prefix: str) -> dict[str, Any]:
        if read("memory", f"{prefix}.usage_in_bytes") is None:
            return _memory_entry(0, 0, 0, 0)
        return _memory_entry(_int(read("memory", f"{prefix}.limit_in_bytes")),
                             _int(read("memory", f"{prefix}.usage_in_bytes")),
                             _int(read("memory", f"{prefix}.max_usage_in_bytes")),
                             _int(read("memory", f"{prefix}.failcnt")))
    raw = flat_keyed(read("memory", "memory.stat"))
    out["memory"] = _omit({"cache": raw.get("cache", 0), "usage": entry("memory"),
                           "swap": entry("memory.memsw"), "kernel": entry("memory.kmem"),
                           "kernelTCP": entry("memory.kmem.tcp"), "raw": raw}, "cache", "raw")

    pids_max = read("pids", "pids.max")
    out["pids"] = _omit({"current": _int(read("pids", "pids.current")),
                         "limit": 0 if pids_max is None or pids_max.strip() == "max"
                         else _int(pids_max)}, "current", "limit")

    # blkio: bfq's counters when the device uses bfq, else the throttle layer's
    blkio: dict[str, Any] = {}
    for key, names in (("ioServiceBytesRecursive", ("blkio.io_service_bytes_recursive",
                                                    "blkio.bfq.io_service_bytes_recursive",
                                                    "blkio.throttle.io_service_bytes_recursive")),
                       ("ioServicedRecursive", ("blkio.io_serviced_recursive",
                                                "blkio.bfq.io_serviced_recursive",
                                                "blkio.throttle.io_serviced_recursive"))):
        for name in names:
            entries = _blkio_v1(read("blkio", name))
            if entries:
                blkio[key] = entries
                break
    out["blkio"] = blkio

    for size in page_sizes:
        if read("hugetlb", f"hugetlb.{size}.usage_in_bytes") is None:
            continue
        out["hugetlb"][size] = _omit({
            "usage": _int(read("hugetlb", f"hugetlb.{size}.usage_in_bytes")),
            "max": _int(read("hugetlb", f"hugetlb.{size}.max_usage_in_bytes")),
            "failcnt": _int(read("hugetlb", f"hugetlb.{size}.failcnt"))}, "usage", "max")
    return out


def v2(read: Reader, page_sizes: list[str]) -> dict[str, Any]:
    """Stats of a v2 cgroup, mapped onto the v1 names as runc maps them."""
    out = _empty()
    cs = flat_keyed(read("cpu.stat"))
    out["cpu"] = {
        "usage": _omit({"total": cs.get("usage_usec", 0) * 1000,
                        "kernel": cs.get("system_usec", 0) * 1000,
                        "user": cs.get("user_usec", 0) * 1000}, "total"),
        "throttling": _omit({"periods": cs.get("nr_periods", 0),
                             "throttledPeriods": cs.get("nr_throttled", 0),
                             "throttledTime": cs.get("throttled_usec", 0) * 1000},
                            "periods", "throttledPeriods", "throttledTime"),
    }

    raw = flat_keyed(read("memory.stat"))
    mem_usage = _int(read("memory.current"))
    mem_limit = _int(read("memory.max"))
    usage = _memory_entry(mem_limit, mem_usage, _int(read("memory.peak")), 0)
    # v1 reported swap as memory+swap: so does runc on v2, and so do we.
    swap_cur = read("memory.swap.current")
    swap: dict[str, Any] = _memory_entry(0, 0, 0, 0)
    if swap_cur is not None:
        swap_limit = _int(read("memory.swap.max"))
        if swap_limit != MAX_UINT64 and mem_limit != MAX_UINT64:
            swap_limit += mem_limit
        else:
            swap_limit = MAX_UINT64
        swap = _memory_entry(swap_limit, _int(swap_cur) + mem_usage, 0, 0)
    out["memory"] = _omit({"cache": raw.get("file", 0), "usage": usage, "swap": swap,
                           "kernel": _memory_entry(0, 0, 0, 0),
                           "kernelTCP": _memory_entry(0, 0, 0, 0), "raw": raw}, "cache", "raw")

    pids_max = read("pids.max")
    out["pids"] = _omit({"current": _int(read("pids.current")),
                         "limit": 0 if pids_max is None or pids_max.strip() == "max"
                         else _int(pids_max)}, "current", "limit")

    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in (read("io.stat") or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":", 1))
        for item in parts[1:]:
            key, _, value = item.partition("=")
            table = {"rbytes": (service_bytes, "Read"), "wbytes": (service_bytes, "Write"),
                     "rios": (serviced, "Read"), "wios": (serviced, "Write")}.get(key)
            if table is not None and value.isdigit():
                table[0].append(_omit({"major": major, "minor": minor, "op": table[1],
                                       "value": int(value)}, "major", "minor", "value"))
    out["blkio"] = _omit({"ioServiceBytesRecursive": service_bytes,
                          "ioServicedRecursive": serviced},
                         "ioServiceBytesRecursive", "ioServicedRecursive")

    for size in page_sizes:
        cur = read(f"hugetlb.{size}.current")
        if cur is None:
            continue
        out["hugetlb"][size] = _omit({
            "usage": _int(cur),
            "failcnt": flat_keyed(read(f"hugetlb.{size}.events")).get("max", 0)}, "usage")
    return out
