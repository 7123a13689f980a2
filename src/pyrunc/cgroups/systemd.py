"""The systemd cgroup driver (`--systemd-cgroup`), as runc's: on cgroup v2 (SystemdManager)
and, on v1 and hybrid hosts, runc's legacy manager (pyrunc.cgroups.systemd_v1).

`linux.cgroupsPath` is `slice:prefix:name` (empty: `:pyrunc:<id>`; an empty slice is
system.slice, `-.slice` the root slice). The container gets a transient unit: the scope
`<prefix>-<name>.scope` in that slice, or the slice `name` itself when it ends in
`.slice`. systemd owns the unit (Delegate=yes: the cgroup below it is ours to write);
the limits that systemd knows as unit properties are given to it as properties, so a
`systemctl daemon-reload` keeps them, and all of them are also written to the cgroup's
files by the v2 (or v1) manager, as runc does.

A scope cannot be started empty, and the container's init does not exist yet when the
cgroup is made (the stage joins it itself, before its namespaces): so the scope is started
around a placeholder process, which is killed once the init has joined.

Only create, update and delete talk to systemd (pyrunc.cgroups.dbus, which imports the
D-Bus client); state, kill, pause, ps and events read and write the cgroup's files.
"""

from __future__ import annotations

import os

from pyrunc.cgroups import CGROUP_ROOT
from pyrunc.cgroups.v2 import V2Manager
from pyrunc.errors import InvalidStateError, PyruncError, SpecError, SystemError_, UnsupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyrunc.cgroups import Manager
    from pyrunc.cgroups.dbus import Props
    from pyrunc.spec.config import DeviceRule, Resources

PREFIX = "systemd:"          # how a state's cgroup_path says "this driver"
DEFAULT_SLICE = "system.slice"
USER_SLICE = "user.slice"          # a user manager's default, as runc's rootless driver
DEFAULT_PREFIX = "pyrunc"
PROPERTY_ANNOTATION = "org.systemd.property."
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")
MAX_U64 = (1 << 64) - 1


def expand_slice(slice_name: str) -> str:
    """systemd's path of a slice: `a-b-c.slice` is /a.slice/a-b.slice/a-b-c.slice."""
    if not slice_name.endswith(".slice") or "/" in slice_name:
        raise SpecError(f"invalid systemd slice name {slice_name!r}: it must end in .slice "
                        "and contain no /")
    if slice_name == "-.slice":
        return "/"
    stem = slice_name[:-len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise SpecError(f"invalid systemd slice name {slice_name!r}")
    path, prefix = "", ""
    for part in stem.split("-"):
        path += f"/{prefix}{part}.slice"
        prefix += part + "-"
    return path


def user_manager() -> bool:
    """Whether the container's systemd is the caller's user manager: a non-root caller's, or
    root's of a user namespace that runs below one (rootless podman's); a root of a user
    namespace elsewhere (systemd as a container's PID 1) keeps the system manager."""
    from pyrunc.rootless import in_user_ns
    if os.geteuid() != 0:
        return True
    return in_user_ns() and _user_manager_root() is not None


def _user_manager_root() -> str | None:
    from pyrunc.cgroups import own_cgroup
    parts = own_cgroup(None).strip("/").split("/")
    for i, part in enumerate(parts):
        if part.startswith("user@") and part.endswith(".service") and part[5:-8].isdigit():
            return "/" + "/".join(parts[:i + 1])
    return None


def user_manager_root() -> str:
    """The cgroup of the user manager this process runs under (.../user@UID.service): its
    units' cgroups are below it. A caller outside one (a login session's scope is root's)
    cannot have its processes moved there by the manager, so it is refused by name."""
    from pyrunc.cgroups import own_cgroup
    root = _user_manager_root()
    if root is None:
        raise UnsupportedError(f"--systemd-cgroup as a rootless user: this process's cgroup "
                               f"{own_cgroup(None)} is not below a systemd user manager "
                               "(user@UID.service); start it in a user scope (systemd-run --user "
                               "--scope) or use the cgroupfs driver")
    return root


def parse_path(cgroups_path: str | None, container_id: str,
               user: bool = False) -> tuple[str, str, str]:
    """(unit name, its parent slice, cgroup path) from `slice:prefix:name`, as runc reads it;
    `user`: a user manager's, whose default slice is user.slice (the path is below its root)."""
    text = cgroups_path or f":{DEFAULT_PREFIX}:{container_id}"
    parts = text.split(":")
    if len(parts) != 3:
        raise SpecError(f"config.json: linux.cgroupsPath {text!r}: the systemd cgroup driver "
                        "expects \"slice:prefix:name\"")
    slice_name, prefix, name = parts
    if not slice_name:
        slice_name = USER_SLICE if user else DEFAULT_SLICE
    if not name:
        raise SpecError(f"config.json: linux.cgroupsPath {text!r}: the name part is empty")
    if name.endswith(".slice"):
        unit, path = name, expand_slice(name)
        expand_slice(slice_name)  # checked all the same
    else:
        unit = f"{prefix}-{name}.scope"  # an empty prefix too (-name.scope), as runc
        parent = expand_slice(slice_name)
        path = parent.rstrip("/") + "/" + unit
    if not set(unit) <= _UNIT_CHARS or len(unit) > 255:
        raise SpecError(f"config.json: linux.cgroupsPath {text!r}: {unit!r} is not a valid "
                        "systemd unit name")
    return unit, slice_name, path


def check_host() -> None:
    """Refuse early, and say why, where the driver cannot work."""
    from pyrunc.cgroups import is_v2_host
    if not os.path.isdir("/run/systemd/system"):
        raise UnsupportedError("--systemd-cgroup: systemd is not running on this host "
                               "(no /run/systemd/system); use the cgroupfs driver (without "
                               "--systemd-cgroup: docker's native.cgroupdriver=cgroupfs, "
                               "podman's cgroup_manager = \"cgroupfs\", containerd's "
                               "SystemdCgroup = false)")
    if not is_v2_host() and user_manager():
        # runc's legacy manager refuses it too: a user manager cannot delegate v1 hierarchies
        raise UnsupportedError("--systemd-cgroup: cannot use the rootless systemd cgroup "
                               "driver on cgroup v1 (this host is v1 or hybrid); use the "
                               "cgroupfs driver")


class UnitReplacedError(PyruncError):
    """The container's unit name is another start's now (Unit.replaced)."""


class Unit:
    """The transient unit of either manager: started around a placeholder, its properties
    set, stopped. The manager it is mixed into holds the cgroup's files."""

    def _init_unit(self, cgroup_path: str, unit: str, slice_name: str,
                   annotations: dict[str, str] | None, new: bool, invocation: str) -> None:
        self.cgroup_path = cgroup_path
        self.user = user_manager()  # decided per call, as the rootless mode is
        self.unit = unit or cgroup_path.rstrip("/").rsplit("/", 1)[-1]
        self.slice = slice_name
        self.annotations = annotations or {}
        self._placeholder = 0
        # Whether this unit is ours to stop: one loaded from a container's state was started
        # by the create that recorded it; a new one once systemd made it (StartTransientUnit).
        self.started = not new
        # Called once systemd made the unit (its start job queued), before anything else is
        # made: the runtime records the path then (a create killed earlier leaves its delete
        # nothing of systemd's to stop).
        self.on_started: Callable[[], None] | None = None
        # systemd's id of the start that made the unit (the state keeps it): delete and kill
        # leave alone a unit of the same name that another has started since.
        self.invocation = invocation

    def _start_unit(self, v1: bool) -> None:
        from pyrunc.cgroups import dbus
        props = base_properties(self.unit, self.slice, v1) + annotation_properties(self.annotations)
        bus = dbus.connect(self.user)
        try:
            self._check_unit_free(bus)
            if self.unit.endswith(".scope"):
                self._placeholder = _start_placeholder()
                props.append(("PIDs", ("au", [self._placeholder])))

            def made() -> None:  # systemd made the unit: ours, even if its job then fails
                self.started = True
                if self.on_started is not None:
                    self.on_started()
            try:
                bus.start_transient_unit(self.unit, props, made)
                self.invocation = bus.invocation_id(self.unit)
            except BaseException:
                self._kill_placeholder()
                raise
        finally:
            bus.close()

    def replaced(self, bus: Any = None) -> bool:
        """Whether the unit was stopped and started again since this container's create
        (another container given the same cgroupsPath, or a `systemctl start`): its cgroup
        and processes are another's then. Only a stopped container's can be: a live init
        keeps the unit active."""
        if not self.invocation:
            return False  # not known (a state written before pyrunc kept it)
        from pyrunc.cgroups import dbus
        own = bus is None
        if own:
            bus = dbus.connect(self.user)
        try:
            now = bus.invocation_id(self.unit)
        finally:
            if own:
                bus.close()
        return bool(now) and now != self.invocation

    def _check_unit_free(self, bus: Any) -> None:
        """Refuse a unit systemd already runs. StartTransientUnit refuses most of them itself
        (UnitExists), but takes over a loaded unit that has no unit file: a slice systemd made
        implicitly as another unit's parent (system-getty.slice for getty@tty1.service), whose
        units stop with it at delete. A failed leftover is reset first, as runc does."""
        state = bus.active_state(self.unit)
        if state == "failed":
            bus.reset_failed(self.unit)
        elif state not in (None, "inactive"):
            raise InvalidStateError(f"systemd unit {self.unit} already exists ({state}): give the "
                                    "container a linux.cgroupsPath of its own")

    def _check_started(self, d: str) -> None:
        if not os.path.isdir(d):
            raise SystemError_(f"systemd started {self.unit} but its cgroup {d} is not there "
                               "(is systemd's cgroup root this process's?)")

    def _kill_placeholder(self) -> None:
        if self._placeholder:
            try:
                os.kill(self._placeholder, 9)
            except ProcessLookupError:
                pass
            self._placeholder = 0

    def _set_unit_properties(self, props: Props, applied: bool = False) -> None:
        """SetUnitProperties; `applied`: return only once systemd has written them to the
        cgroup (it does that after its reply, before it reads the next call: one more)."""
        from pyrunc.cgroups import dbus
        bus = dbus.connect(self.user)
        try:
            bus.set_unit_properties(self.unit, props)
            if applied:
                bus.ping()
        finally:
            bus.close()

    def _destroy_unit(self, mgr: Manager, dirs: list[str], kill: bool) -> None:
        """Kill what is left (with `kill`; without, a process still there keeps the unit and
        fails this), stop the unit and forget it, remove what systemd leaves of `dirs`."""
        from pyrunc.cgroups.common import kill_all_and_rmdir
        from pyrunc.cgroups import dbus
        self._kill_placeholder()
        if not self.started:
            return  # a create that failed before systemd gave it the unit: not ours to touch
        present = any(os.path.isdir(d) for d in dirs)
        try:
            bus = dbus.connect(self.user)
        except UnsupportedError:
            if present:
                kill_all_and_rmdir(mgr, [] if kill else dirs, kill=kill)
                raise
            return  # systemd never had it (create was refused before it)
        try:
            if self.replaced(bus):
                raise UnitReplacedError(f"systemd unit {self.unit} was started again since "
                                        "this container's create: it is another's, left alone")
            if present:
                # with kill: SIGKILL all; without: refuse (EBUSY) before StopUnit kills them
                kill_all_and_rmdir(mgr, [] if kill else dirs, kill=kill)
            bus.stop_unit(self.unit)
        finally:
            bus.close()
        kill_all_and_rmdir(mgr, dirs, kill=kill)


class SystemdManager(Unit, V2Manager):
    """A v2 cgroup whose directory a transient systemd unit owns."""

    def __init__(self, cgroup_path: str, unit: str = "", slice_name: str = "",
                 annotations: dict[str, str] | None = None, new: bool = False,
                 invocation: str = "") -> None:
        V2Manager.__init__(self, cgroup_path)
        self._init_unit(cgroup_path, unit, slice_name, annotations, new, invocation)

    @property
    def path(self) -> str:
        return PREFIX + self.cgroup_path

    @path.setter
    def path(self, value: str) -> None:
        self.cgroup_path = value

    def create(self) -> None:
        self._start_unit(v1=False)
        self._check_started(self.dir)
        # Every controller the ancestors have, enabled down to the unit (as runc does after
        # StartTransientUnit): systemd enables only those it manages, not hugetlb, rdma, misc.
        V2Manager(self.cgroup_path).create()

    def join(self, defer: bool = False) -> None:
        super().join(defer)
        self._kill_placeholder()

    def sub(self, paths: dict[str, str]) -> V2Manager:
        """exec --cgroup: a sub-cgroup of the scope (ours: Delegate=yes), by its files."""
        return V2Manager(self.cgroup_path).sub(paths)

    def set(self, resources: Resources, update: bool = False) -> list[str]:
        if update:
            # systemd re-applies all of a unit's memory and cpu properties to its files when
            # one changes (after the writes below): what an update keeps must be a property too
            quota, period = self.kept_cpu_max(resources)
            resources = resources._replace(
                memory_swap=self.kept_swap_total(resources) or resources.memory_swap,
                cpu_quota=quota, cpu_period=period)
        props = resource_properties(resources)
        if not update or resources.devices:  # as the v2 manager: an update without rules keeps them
            props = device_properties(resources.devices or ()) + props
        if props:
            self._set_unit_properties(props)
        return super().set(resources, update)

    def destroy(self, kill: bool = True) -> None:
        """Kill what is left (with `kill`; without, a process still there keeps the unit and
        fails this, as on v2), stop the unit and forget it: nothing stays in systemd."""
        self._destroy_unit(self, [self.dir], kill)


def _start_placeholder() -> int:
    """A process for the scope to hold until the stage joins it: its own session, no fds."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            # It dies with the runtime: a create killed before the init joined the scope
            # would leave it holding the scope, which nothing would stop.
            import _prctl  # python-prctl's C module (see pyrunc/linux/capabilities.py)
            _prctl.prctl(_prctl.PR_SET_PDEATHSIG, 9)
            if os.getppid() != parent:
                os._exit(0)
            os.setsid()
            os.closerange(0, 65536)
            import signal
            while True:
                signal.pause()
        finally:
            os._exit(0)
    return pid


def base_properties(unit: str, slice_name: str, v1: bool = False) -> Props:
    """What runc gives every unit it starts (v1: BlockIOAccounting, its legacy manager's)."""
    props: Props = [("Description", ("s", f"pyrunc container {unit}"))]
    if unit.endswith(".slice"):
        props.append(("Wants", ("as", [slice_name])))
    else:
        props += [("Slice", ("s", slice_name)), ("Delegate", ("b", True))]
    props += [(name, ("b", True)) for name in
              ("MemoryAccounting", "CPUAccounting",
               "BlockIOAccounting" if v1 else "IOAccounting", "TasksAccounting")]
    props.append(("DefaultDependencies", ("b", False)))
    return props


def _u64(value: int) -> tuple[str, int]:
    return ("t", MAX_U64 if value < 0 else value)


def cpu_quota_per_sec(quota: int | None, period: int | None) -> int | None:
    """runc's CPUQuotaPerSecUSec: systemd keeps a percentage, so round up to 10 ms."""
    if not quota and not period:
        return None
    if quota is None or quota <= 0:
        return MAX_U64
    per_sec = quota * 1_000_000 // (period or 100_000)
    if per_sec % 10_000:
        per_sec = (per_sec // 10_000 + 1) * 10_000
    return per_sec


def cpuset_bytes(spec: str) -> bytes:
    """`0-2,5` as systemd's AllowedCPUs byte array (bit n of byte n/8)."""
    bits: set[int] = set()
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        lo, _, hi = item.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise SpecError(f"invalid cpuset {spec!r}") from None
        if first > last or last > 1 << 16:
            raise SpecError(f"invalid cpuset {spec!r}")
        bits.update(range(first, last + 1))
    out = bytearray((max(bits) // 8 + 1) if bits else 0)
    for b in bits:
        out[b // 8] |= 1 << (b % 8)
    return bytes(out)


def resource_properties(r: Resources, v1: bool = False) -> Props:
    """The limits runc hands systemd as unit properties: on v2, and (v1) those of its legacy
    manager (MemoryLimit, CPUShares, BlockIOWeight; unified is refused on v1 before this)."""
    from pyrunc.cgroups import resources as conv
    props: Props = []
    if v1:
        if r.memory_limit:
            props.append(("MemoryLimit", _u64(r.memory_limit)))
        if r.cpu_shares:
            props.append(("CPUShares", ("t", r.cpu_shares)))
        if r.blkio_weight:
            props.append(("BlockIOWeight", ("t", r.blkio_weight)))
    else:
        if r.memory_limit:
            props.append(("MemoryMax", _u64(r.memory_limit)))
        if r.memory_reservation:
            props.append(("MemoryLow", _u64(r.memory_reservation)))
        if r.memory_swap:
            swap = conv.swap_to_v2(r.memory_swap, r.memory_limit or 0)
            if swap:
                props.append(("MemorySwapMax", _u64(swap)))
        if r.cpu_shares:
            props.append(("CPUWeight", ("t", conv.shares_to_weight(r.cpu_shares))))
    if r.cpu_period:
        props.append(("CPUQuotaPeriodUSec", ("t", r.cpu_period)))
    per_sec = cpu_quota_per_sec(r.cpu_quota, r.cpu_period)
    if per_sec is not None:
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    if r.cpu_cpus:
        props.append(("AllowedCPUs", ("ay", cpuset_bytes(r.cpu_cpus))))
    if r.cpu_mems:
        props.append(("AllowedMemoryNodes", ("ay", cpuset_bytes(r.cpu_mems))))
    if r.pids_limit is not None and (r.pids_limit > 0 or r.pids_limit == -1):
        props.append(("TasksMax", _u64(r.pids_limit)))
    if not v1:
        props += _unified_properties(r.unified)
    return props


def device_properties(rules: tuple[DeviceRule, ...]) -> Props:
    """DevicePolicy and DeviceAllow for the container's allow-list, as runc gives systemd, so
    that systemd re-applying the unit (daemon-reload, set-property) keeps the same devices.

    systemd knows only allow-lists: an allow-all list is DevicePolicy=auto without entries;
    one with deny exceptions becomes strict with none (the v2 manager's eBPF program, or on v1
    the devices files, written right after systemd's, have the exceptions). Entries: `/dev/char/M:m`
    (of a device the host has), `char-*`
    (any major), `char-<name>` (a major's group in /proc/devices); `*:m` rules and majors
    without a group have no systemd form and stay with the eBPF program alone."""
    from pyrunc.cgroups.devices import DeviceState
    state = DeviceState.from_rules(rules)
    if state.default_allow:
        return [("DevicePolicy", ("s", "auto" if not state.exceptions else "strict")),
                ("DeviceAllow", ("a(ss)", []))]
    kind = {"c": "char", "b": "block"}
    groups: dict[tuple[str, int], str] | None = None
    allow: list[tuple[str, str]] = []
    for (dtype, major, minor), perms in state.ordered():
        access = "".join(c for c in "rwm" if c in perms)
        if major is None:
            if minor is None:
                allow.append((f"{kind[dtype]}-*", access))
        elif minor is None:
            groups = _device_groups() if groups is None else groups
            if (dtype, major) in groups:
                allow.append((f"{kind[dtype]}-{groups[dtype, major]}", access))
        else:
            path = f"/dev/{kind[dtype]}/{major}:{minor}"
            # As runc: a device this host does not have (docker's /dev/net/tun without the
            # tun module) is left to the cgroup's own rules; systemd would warn of the path
            if os.path.exists(path) or os.path.exists("/sys" + path):
                allow.append((path, access))
    # An empty DeviceAllow first, as runc: systemd appends to the unit's list otherwise, and a
    # rule an update took away would come back whenever systemd re-applies the unit
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", [])),
            ("DeviceAllow", ("a(ss)", allow))]


def _device_groups() -> dict[tuple[str, int], str]:
    """(type, major) -> the group name /proc/devices gives it (the first, if several)."""
    out: dict[tuple[str, int], str] = {}
    dtype = ""
    try:
        with open("/proc/devices") as f:
            for line in f:
                text = line.strip()
                if text in ("Character devices:", "Block devices:"):
                    dtype = "c" if text.startswith("Character") else "b"
                    continue
                num, _, name = text.partition(" ")
                if dtype and num.isdigit() and name:
                    out.setdefault((dtype, int(num)), name.strip())
    except OSError:
        pass
    return out


def _unified_properties(unified: tuple[tuple[str, str], ...]) -> Props:
    """linux.resources.unified keys systemd has properties for (runc's list)."""
    props: Props = []
    for key, raw in unified:
        value = raw.strip()
        try:
            if key in ("memory.max", "memory.low", "memory.high", "memory.min", "memory.swap.max"):
                name = {"memory.max": "MemoryMax", "memory.low": "MemoryLow",
                        "memory.high": "MemoryHigh", "memory.min": "MemoryMin",
                        "memory.swap.max": "MemorySwapMax"}[key]
                props.append((name, ("t", MAX_U64 if value == "max" else int(value))))
            elif key == "pids.max":
                props.append(("TasksMax", ("t", MAX_U64 if value == "max" else int(value))))
            elif key == "cpu.weight":
                props.append(("CPUWeight", ("t", int(value))))
            elif key == "cpu.max":
                quota, _, period = value.partition(" ")
                p = int(period) if period else 100_000
                props.append(("CPUQuotaPeriodUSec", ("t", p)))
                props.append(("CPUQuotaPerSecUSec",
                              ("t", cpu_quota_per_sec(-1 if quota == "max" else int(quota), p))))
            elif key in ("cpuset.cpus", "cpuset.mems"):
                name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                props.append((name, ("ay", cpuset_bytes(value))))
        except ValueError:
            raise SpecError(f"linux.resources.unified[{key!r}]: invalid value {raw!r}") from None
    return props


def annotation_properties(annotations: dict[str, str]) -> Props:
    """`org.systemd.property.NAME` annotations, GVariant text values, as runc passes them."""
    props: Props = []
    for key, text in sorted(annotations.items()):
        if not key.startswith(PROPERTY_ANNOTATION):
            continue
        name = key[len(PROPERTY_ANNOTATION):]
        if len(name) < 3 or not name.isascii() or not name.isalpha() or not name[0].isupper():
            # (runc: three ASCII letters or more)
            raise SpecError(f"annotation {key}: malformed systemd property name")
        if name in _REFUSED_PROPERTIES or name.endswith("Action"):
            raise SpecError(f"annotation {key}: the systemd property {name} acts on other units "
                            "or the host (dependencies, *Action, placement): refused")
        value = parse_gvariant(text, key)
        if name.endswith("Sec") and not name.endswith("USec"):
            # runc takes seconds here and hands systemd the USec property it means
            if value[0] not in "yqutnix" + "d":
                raise SpecError(f"annotation {key}: {text!r} is not a number of seconds")
            usec = float(value[1]) * 1_000_000
            if not 0 <= usec <= MAX_U64:  # (inf and nan too)
                raise SpecError(f"annotation {key}: {text!r} is not a number of seconds "
                                "systemd can take")
            name, value = name[:-3] + "USec", ("t", int(usec))
        props.append((name, value))
    return props


# Properties that would let a container's config act beyond its own unit: start, stop or
# reload other units with it (dependencies, propagation), reboot or power off the host
# (*Action, checked by suffix), or move the unit or what it holds (Slice, PIDs, Delegate);
# keep delete from stopping it (RefuseManualStop), tell another bus client to stop it
# (Controller), or hang host objects on its cgroup (NFTSet: the host's nftables sets;
# BPFProgram, IP*FilterPath: programs pinned on the host). runc passes every one; pyrunc
# refuses them by name. (Ordering, After/Before, stays: it acts
# on this unit's start alone, and a start job that times out is stopped as any failed one.)
_REFUSED_PROPERTIES = frozenset((
    "Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Upholds", "Conflicts",
    "OnFailure", "OnSuccess", "PropagatesReloadTo", "ReloadPropagatedFrom",
    "PropagatesStopTo", "StopPropagatedFrom", "JoinsNamespaceOf", "RequiresMountsFor",
    "WantsMountsFor", "OnFailureJobMode", "OnSuccessJobMode", "RebootArgument",
    "JobTimeoutRebootArgument", "Slice", "PIDs", "PIDFDs", "Delegate", "DelegateSubgroup",
    "DefaultDependencies", "User", "Group", "RefuseManualStop", "Controller", "NFTSet",
    "BPFProgram", "IPIngressFilterPath", "IPEgressFilterPath"))
_GV_RANGES = {"y": (0, 0xFF), "n": (-(1 << 15), (1 << 15) - 1), "q": (0, 0xFFFF),
              "i": (-(1 << 31), (1 << 31) - 1), "u": (0, 0xFFFFFFFF),
              "x": (-(1 << 63), (1 << 63) - 1), "t": (0, MAX_U64)}
_GV_TYPES = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
             "int64": "x", "uint64": "t", "double": "d", "boolean": "b", "string": "s",
             "objectpath": "o"}


def parse_gvariant(text: str, where: str) -> tuple[str, Any]:
    """The GVariant text forms runc's annotations use: `'s'`, `true`, `123`, `uint64 5`,
    `@t 5`, `1.5`, `['a', 'b']`; anything else is refused by name."""
    t = text.strip()
    sig = ""
    head, _, rest = t.partition(" ")
    if head in _GV_TYPES:
        sig, t = _GV_TYPES[head], rest.strip()
    elif head.startswith("@") and len(head) == 2 and head[1] in "ynqiuxtdbso":
        sig, t = head[1], rest.strip()
    try:
        if t.startswith("[") and t.endswith("]") and sig in ("", "s"):
            items = [i.strip() for i in t[1:-1].split(",") if i.strip()]
            return ("as", [_gv_string(i) for i in items])
        if t[:1] in ("'", '"'):
            return (sig or "s", _gv_string(t))
        if t in ("true", "false"):
            return ("b", t == "true")
        if sig == "d" or (not sig and ("." in t or "e" in t.lower())):
            return ("d", float(t))
        n = int(t, 0)
        lo, hi = _GV_RANGES[sig or "i"]
        if not lo <= n <= hi:
            raise SpecError(f"annotation {where}: {text!r} is out of range for GVariant type "
                            f"{sig or 'i'} ({lo}..{hi})")
        return (sig or "i", n)
    except (ValueError, KeyError):
        pass
    raise SpecError(f"annotation {where}: cannot read {text!r} as a GVariant value")


def _gv_string(item: str) -> str:
    if len(item) < 2 or item[0] not in "'\"" or item[-1] != item[0]:
        raise ValueError(item)
    return item[1:-1].replace("\\" + item[0], item[0]).replace("\\\\", "\\")


def is_systemd_path(path: str) -> bool:
    return path.startswith(PREFIX)


def cgroup_dir(path: str) -> str:
    return CGROUP_ROOT + path[len(PREFIX):]
