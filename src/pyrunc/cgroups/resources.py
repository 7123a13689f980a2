"""Pure conversions from the spec's resources to cgroup file values (no I/O).

The OCI spec was written for cgroup v1; on a v2 host runc converts the v1 fields
(shares -> cpu.weight, blkio weight -> io.weight, memory+swap -> swap alone). The
same formulas are kept here so a container behaves alike under pyrunc and runc,
and so the unit tests can pin each one down without a cgroup filesystem.
"""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc without importing collections

from pyrunc.errors import SpecError, UsageError
from pyrunc.spec.config import DeviceRule, Resources, ThrottleDevice
from pyrunc.spec.patterns import PLAIN

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any

MIN_SHARES, MAX_SHARES = 2, 262144  # kernel's cpu.shares range (MAX_SHARES = 1 << 18)
UNLIMITED_SWAPPINESS = (1 << 64) - 1  # how runc reads a uint64 -1: "not set"


# -- v1 -> v2 -------------------------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] onto cpu.weight [1, 10000], linearly, as runc does (0: unset)."""
    if shares == 0:
        return 0
    return 1 + ((shares - MIN_SHARES) * 9999) // (MAX_SHARES - MIN_SHARES)


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] onto io.weight [1, 10000], as runc does (0: unset)."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int, memory: int) -> int:
    """The spec's memory+swap total as v2's swap-only memory.swap.max (runc's rules).

    -1 means unlimited, 0 unset; memory -1 with swap unset means "both unlimited".
    """
    if memory == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise SpecError("memory.swap: a swap limit needs a memory limit")
    if memory < 0:
        raise SpecError(f"memory.limit: invalid value {memory}")
    if swap < memory:
        raise SpecError(f"memory.swap ({swap}) must be >= memory.limit ({memory}): "
                        "swap is the memory+swap total")
    return swap - memory


def limit_v2(value: int) -> str:
    """A v2 byte limit (.max/.low/.high): -1 (v1's "no limit") is "max"."""
    return "max" if value < 0 else str(value)


def cpu_max(quota: int | None, period: int | None) -> str | None:
    """cpu.max "QUOTA PERIOD": quota <= 0 is "max", period defaults to 100000 (kernel)."""
    if not quota and not period:
        return None
    q = str(quota) if quota is not None and quota > 0 else "max"
    return f"{q} {period or 100000}"


def pids_max(limit: int | None) -> str | None:
    """pids.max: 0 is unset (runc), any negative number is unlimited."""
    if not limit:
        return None
    return "max" if limit < 0 else str(limit)


def check_swappiness(value: int | None) -> int | None:
    """memory.swappiness to write, or None; runc's range check (0-100, -1 as unset)."""
    if value is None or value in (-1, UNLIMITED_SWAPPINESS):
        return None
    if not 0 <= value <= 100:
        raise SpecError(f"memory.swappiness: invalid value {value}: valid range is 0-100")
    return value


# -- blkio / io -----------------------------------------------------------------------------

THROTTLE_V1 = (
    ("blkio_throttle_read_bps", "blkio.throttle.read_bps_device", "rbps"),
    ("blkio_throttle_write_bps", "blkio.throttle.write_bps_device", "wbps"),
    ("blkio_throttle_read_iops", "blkio.throttle.read_iops_device", "riops"),
    ("blkio_throttle_write_iops", "blkio.throttle.write_iops_device", "wiops"),
)


def throttle_v1(r: Resources) -> list[tuple[str, str]]:
    """(v1 file, "MAJ:MIN RATE") for each throttle device, in spec order."""
    out: list[tuple[str, str]] = []
    for attr, filename, _key in THROTTLE_V1:
        devs: tuple[ThrottleDevice, ...] = getattr(r, attr)
        out.extend((filename, f"{d.major}:{d.minor} {d.rate}") for d in devs)
    return out


def io_max_v2(r: Resources) -> list[str]:
    """io.max lines ("MAJ:MIN rbps=N"): one write per limit, as runc does.

    A rate of 0 is written as "max" (the v1 meaning of 0 is "no limit")."""
    out: list[str] = []
    for attr, _filename, key in THROTTLE_V1:
        devs: tuple[ThrottleDevice, ...] = getattr(r, attr)
        out.extend(f"{d.major}:{d.minor} {key}={d.rate or 'max'}" for d in devs)
    return out


# -- hugetlb, rdma, net ---------------------------------------------------------------------

_PAGE_SIZE = PLAIN["^[1-9][0-9]*[KMG]B$"]  # the schema's own pattern, without re


def hugetlb_file(page_size: str, v2: bool) -> str:
    if not _PAGE_SIZE(page_size):
        raise SpecError(f"hugepageLimits: invalid page size {page_size!r}")
    return f"hugetlb.{page_size}.max" if v2 else f"hugetlb.{page_size}.limit_in_bytes"


def rdma_line(device: str, hca_handles: int | None, hca_objects: int | None) -> str | None:
    """An rdma.max line for one device, or None when neither limit is given."""
    parts = [device]
    if hca_handles is not None:
        parts.append(f"hca_handle={hca_handles}")
    if hca_objects is not None:
        parts.append(f"hca_object={hca_objects}")
    return " ".join(parts) if len(parts) > 1 else None


# -- devices --------------------------------------------------------------------------------

def rule_text(rule: DeviceRule) -> str:
    """A v1 devices.allow/deny line: "c 1:3 rwm" ("a" for all devices)."""
    if rule.type == "a":
        return "a"
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access}"


# -- what a request touches -----------------------------------------------------------------

def is_empty(r: Resources) -> bool:
    """True when the request sets nothing at all (an `update` with no flags)."""
    return r == Resources()


_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_RAM = r"^(\d+(?:\.\d+)?) ?([kmgtp]?)(?:i?b)?$"


def parse_size(text: str, flag: str) -> int:
    """A byte count as `runc update --memory` takes it ("512m", "1g", "100000", "-1")."""
    text = text.strip()
    if text == "-1":
        return -1
    import re  # only `update` parses sizes
    m = re.match(_RAM, text, re.IGNORECASE)
    if m is None:
        raise UsageError(f"invalid value for {flag}: {text!r} (a size like 512m, 1g or bytes)")
    return int(float(m.group(1)) * _RAM_UNITS[m.group(2).lower()])


def from_json(raw: Any, source: str) -> Resources:
    """An `update --resources` document (LinuxResources JSON) as a Resources.

    Checked against the config schema's resources definition, so update accepts exactly
    what create accepts; errors name `source` instead of config.json."""
    from pyrunc.spec.config import _resources
    from pyrunc.spec.schema import validate_config
    if not isinstance(raw, Mapping):
        raise SpecError(f"{source}: the resources must be a JSON object")
    try:
        validate_config({"ociVersion": "1.0.0", "root": {"path": "rootfs"},
                         "linux": {"resources": dict(raw)}})
    except SpecError as exc:
        raise SpecError(exc.msg.replace("config.json: linux.resources.", f"{source}: ", 1)
                        .replace("config.json: linux.resources: ", f"{source}: ", 1)) from None
    return _resources(raw)
