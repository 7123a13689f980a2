"""The internal config: config.json converted once into immutable records (NamedTuple:
cheaper to define at import than frozen dataclasses, which every create pays for).

Nothing after `convert()` reads the raw dict. Conversion also does the checks a
schema cannot express (duplicates, cross-field rules), so a Config that exists is
one the runtime can act on.
"""

from __future__ import annotations

import os
import posixpath

from pyrunc.records import NamedTuple

from pyrunc.errors import SpecError
from pyrunc.linux import mountopts

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any, Mapping

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


class User(NamedTuple):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


class Capabilities(NamedTuple):
    """The five sets; an absent set is an empty one (runc, crun: no capabilities unless granted)."""

    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


RLIM_MAX = 2**63 - 1
RLIM_UNLIMITED = 2**64 - 1  # RLIM_INFINITY as the spec's uint64 says it
# <asm-generic/resource.h> (x86_64 and aarch64): the names Python's `resource` module has
# (an extension module every create loaded for them), OFILE its alias of NOFILE, and LOCKS,
# which `resource` lacks but getrlimit(2) and runc have.
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_OFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


class Rlimit(NamedTuple):
    type: str
    soft: int
    hard: int


class Scheduler(NamedTuple):
    policy: int
    nice: int = 0
    priority: int = 0
    flags: int = 0
    runtime: int = 0
    deadline: int = 0
    period: int = 0


class Process(NamedTuple):
    args: tuple[str, ...]
    cwd: str
    env: tuple[str, ...] = ()
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    user: User = User()
    capabilities: Capabilities = Capabilities()  # absent: none at all, never "keep root's"
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    oom_score_adj: int | None = None
    scheduler: Scheduler | None = None
    io_priority: int | None = None  # ioprio value: class << 13 | level
    cpu_affinity_initial: frozenset[int] | None = None
    cpu_affinity_final: frozenset[int] | None = None


class Root(NamedTuple):
    path: str  # absolute, bundle-relative paths already joined
    readonly: bool = False


class Mount(NamedTuple):
    destination: str
    type: str | None
    source: str | None
    options: tuple[str, ...]
    flags: int            # MS_* flags to set
    clear_flags: int      # MS_* flags an option asked to clear (e.g. "dev" clears MS_NODEV)
    propagation: tuple[int, ...]  # MS_SHARED/MS_SLAVE/... (+MS_REC) applied after the mount
    data: str             # options the kernel filesystem parses itself
    rec_set: int = 0      # MOUNT_ATTR_* set on the whole tree (rro, rnosuid, ...)
    rec_clear: int = 0
    idmap: str = ""       # "idmap" (the top mount) or "ridmap" (the tree): an idmapped bind
    uid_mappings: tuple[IDMapping, ...] = ()  # the idmap's (the container's when not given)
    gid_mappings: tuple[IDMapping, ...] = ()

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & mountopts.MS_BIND)


class Hook(NamedTuple):
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


class Hooks(NamedTuple):
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


class Namespace(NamedTuple):
    type: str
    path: str | None = None


class IDMapping(NamedTuple):
    container_id: int
    host_id: int
    size: int


class Device(NamedTuple):
    path: str
    type: str  # c, b, u or p
    major: int
    minor: int
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class DeviceRule(NamedTuple):
    allow: bool
    type: str  # a, c or b
    major: int | None  # None means any ('*')
    minor: int | None
    access: str  # some of "rwm"


class WeightDevice(NamedTuple):
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


class ThrottleDevice(NamedTuple):
    major: int
    minor: int
    rate: int


class HugepageLimit(NamedTuple):
    page_size: str  # as in the spec: "2MB", "1GB", "64KB"
    limit: int


class RdmaLimit(NamedTuple):
    device: str
    hca_handles: int | None = None
    hca_objects: int | None = None


class Resources(NamedTuple):
    """linux.resources (or an `update` request), values as given; None means "not given".

    Kept unconverted so that one Resources serves both cgroup versions and `update`:
    pyrunc.cgroups.resources turns it into file writes. `devices` None means no rule list
    was given (create still applies the default allow-list; update leaves the rules alone).
    """

    devices: tuple[DeviceRule, ...] | None = None
    memory_limit: int | None = None
    memory_reservation: int | None = None
    memory_swap: int | None = None
    memory_kernel: int | None = None
    memory_kernel_tcp: int | None = None
    memory_swappiness: int | None = None
    memory_disable_oom_killer: bool | None = None
    memory_use_hierarchy: bool | None = None
    memory_check_before_update: bool | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_burst: int | None = None
    cpu_period: int | None = None
    cpu_realtime_runtime: int | None = None
    cpu_realtime_period: int | None = None
    cpu_cpus: str | None = None
    cpu_mems: str | None = None
    cpu_idle: int | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    blkio_leaf_weight: int | None = None
    blkio_weight_device: tuple[WeightDevice, ...] = ()
    blkio_throttle_read_bps: tuple[ThrottleDevice, ...] = ()
    blkio_throttle_write_bps: tuple[ThrottleDevice, ...] = ()
    blkio_throttle_read_iops: tuple[ThrottleDevice, ...] = ()
    blkio_throttle_write_iops: tuple[ThrottleDevice, ...] = ()
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    net_class_id: int | None = None
    net_priorities: tuple[tuple[str, int], ...] = ()
    rdma: tuple[RdmaLimit, ...] = ()
    unified: tuple[tuple[str, str], ...] = ()


class NetDevice(NamedTuple):
    """linux.netDevices entry: the host interface `host`, named `name` in the container."""
    host: str
    name: str


class MemoryPolicy(NamedTuple):
    """linux.memoryPolicy as set_mempolicy(2) takes it: mode | flags, and the node numbers."""
    mode: int
    flags: int
    nodes: tuple[int, ...]
    text: str  # the config's words, for error messages


class IntelRdt(NamedTuple):
    """linux.intelRdt: the resctrl group (closID) and the lines to write to its schemata file."""
    clos_id: str | None
    schemata: tuple[str, ...]
    monitoring: bool


class Linux(NamedTuple):
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()
    devices: tuple[Device, ...] = ()
    cgroups_path: str | None = None
    resources: Resources | None = None
    sysctl: tuple[tuple[str, str], ...] = ()
    seccomp: Mapping[str, Any] | None = None  # converted by the seccomp module (issue: security)
    rootfs_propagation: int | None = None  # MS_* propagation flags
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    mount_label: str | None = None
    personality: int | None = None
    time_offsets: tuple[tuple[str, int, int], ...] = ()  # (clock, seconds, nanoseconds)
    net_devices: tuple[NetDevice, ...] = ()
    memory_policy: MemoryPolicy | None = None
    intel_rdt: IntelRdt | None = None

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


class Config(NamedTuple):
    oci_version: str
    root: Root
    process: Process | None
    hostname: str | None
    domainname: str | None
    mounts: tuple[Mount, ...]
    hooks: Hooks
    annotations: tuple[tuple[str, str], ...]
    linux: Linux
    bundle: str
    # config.json's `process` as read at create: kept for `exec ID CMD` (Runtime.base_process),
    # which must not start from a config.json the container may have edited since
    process_raw: Mapping[str, Any] | None = None


def _err(path: str, msg: str) -> SpecError:
    return SpecError(f"config.json: {path}: {msg}")


# What umask(2) keeps of its argument (S_IRWXUGO): the spec allows any uint32, runc passes it
# on and the kernel drops the rest; os.umask would raise OverflowError above 2**31-1.
UMASK_BITS = 0o777
# TIOCSWINSZ holds unsigned shorts; runc truncates a bigger consoleSize, pyrunc clamps it.
MAX_WINSIZE = 0xFFFF


def _user(raw: Mapping[str, Any]) -> User:
    umask = raw.get("umask")
    if umask is not None:
        umask &= UMASK_BITS
    return User(
        uid=raw.get("uid", 0),
        gid=raw.get("gid", 0),
        umask=umask,
        additional_gids=tuple(raw.get("additionalGids") or ()),
    )


def _caps(raw: Mapping[str, Any] | None) -> Capabilities:
    """No `capabilities`, or no such set, is an empty set: a config that forgets them must
    not run with every capability root holds (the init's own)."""
    raw = raw or {}

    def get(key: str) -> tuple[str, ...]:
        return tuple(raw.get(key) or ())

    return Capabilities(get("bounding"), get("effective"), get("inheritable"),
                        get("permitted"), get("ambient"))


_SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                   "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
_SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
                "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
                "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
                "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
_IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def _scheduler(raw: Mapping[str, Any] | None) -> Scheduler | None:
    if raw is None:
        return None
    policy = raw["policy"]
    if policy not in _SCHED_POLICIES:
        raise _err("process.scheduler.policy", f"unknown policy {policy!r}")
    flags = 0
    for flag in raw.get("flags") or ():
        if flag not in _SCHED_FLAGS:
            raise _err("process.scheduler.flags", f"unknown flag {flag!r}")
        flags |= _SCHED_FLAGS[flag]
    return Scheduler(_SCHED_POLICIES[policy], raw.get("nice", 0), raw.get("priority", 0), flags,
                     raw.get("runtime", 0), raw.get("deadline", 0), raw.get("period", 0))


def possible_cpus() -> int:
    """The kernel's nr_cpu_ids: CPU numbers are below it (/sys/devices/system/cpu/possible,
    e.g. "0-7"); os.cpu_count() when that cannot be read."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        return int(text.replace("-", ",").split(",")[-1]) + 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


def _cpu_number(text: str) -> int:
    """Plain ASCII digits only: int() would also take " 3", "+3" and "1_0" (runc does not)."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _clip(text: str, most: int = 60) -> str:
    """repr(text), its first `most` characters only: a value quoted in an error may be huge."""
    return repr(text) if len(text) <= most else repr(text[:most]) + "..."


def parse_cpu_list(text: str, where: str) -> frozenset[int]:
    """"0-3,7" -> {0, 1, 2, 3, 7}; a CPU that cannot exist here is refused before any range
    is built ("0-20000000" took 2.2 GB and 3.8 s). As runc reads it: spaces around an item and
    empty items (" 0-1, ,3,") are allowed, a list that names no CPU is not."""
    cpus: set[int] = set()
    limit = possible_cpus()
    named = _clip(text)  # the list may be megabytes (a 3 MB one was quoted whole)
    try:
        for part in text.split(","):
            if not part.strip():
                continue
            lo_s, sep, hi_s = part.strip().partition("-")
            lo, hi = _cpu_number(lo_s), _cpu_number(hi_s if sep else lo_s)
            if hi < lo:
                raise _err(where, f"{named}: the range {_clip(part.strip())} is empty")
            if hi >= limit:
                cpu = str(hi) if hi < 10**20 else f"{(hi_s if sep else lo_s)[:17]}..."
                raise _err(where, f"{named}: CPU {cpu} does not exist (this kernel has CPUs "
                           f"0-{limit - 1})")
            cpus.update(range(lo, hi + 1))
    except ValueError:
        raise _err(where, f"{named} is not a CPU list like 0-3,7") from None
    if not cpus:
        raise _err(where, f"{named} names no CPU")
    return frozenset(cpus)


# execve's limits (linux/binfmts.h): one string, NUL included, at most MAX_ARG_STRLEN; all of
# them with their pointers within a quarter of the stack rlimit, capped at 3/4 of _STK_LIM.
MAX_ARG_STRLEN = 32 * 4096
_STK_LIM = 8 << 20
# What the exec through pyrunc-init adds (process/trampoline.py argv): its name and two fd
# words, the program's resolved path (PATH_MAX), HOME when the env has none (PATH_MAX), and
# their pointers. Without it a config within 4 KiB of the limit passed and the init died
# ("cannot exec pyrunc-init: Argument list too long", exit 127, after create said yes).
_INIT_RESERVE = (16 + 2 * 12) + (4096 + 1) + (5 + 4096 + 1) + 4 * 8


def _check_exec_size(args: tuple[str, ...], env: tuple[str, ...],
                     rlimits: tuple[Rlimit, ...], where: str) -> None:
    """What execve would refuse (E2BIG) is refused here, so `create` fails rather than the
    init dying after a create that said yes."""
    total = 0
    for field, strings in (("args", args), ("env", env)):
        for i, text in enumerate(strings):
            size = len(text.encode(errors="surrogateescape")) + 1
            if size > MAX_ARG_STRLEN:
                raise _err(f"{where}.{field}[{i}]", f"{size - 1} bytes: longer than execve "
                           f"takes ({MAX_ARG_STRLEN - 1})")
            total += size
    stack = next((r.soft for r in rlimits if r.type == "RLIMIT_STACK"), None)
    if stack is None:
        from pyrunc.linux import syscalls as sc
        stack = sc.getrlimit(RLIMITS["RLIMIT_STACK"])[0]
    limit = _STK_LIM // 4 * 3
    if stack != RLIM_UNLIMITED:
        limit = min(limit, stack // 4)
    limit = max(limit, MAX_ARG_STRLEN)
    total += 8 * (max(len(args), 1) + len(env)) + len(args[0].encode(errors="surrogateescape")) + 1 \
        if args else 0
    if total + _INIT_RESERVE > limit:
        raise _err(where, f"args and env take {total} bytes: with pyrunc-init's own "
                   f"{_INIT_RESERVE}, more than execve takes ({limit})")


def _process(raw: Mapping[str, Any] | None) -> Process | None:
    if raw is None:
        return None
    cwd = raw["cwd"]
    if not posixpath.isabs(cwd):
        raise _err("process.cwd", f"{cwd!r} is not an absolute path")
    rlimits: list[Rlimit] = []
    seen: set[str] = set()
    for i, rl in enumerate(raw.get("rlimits") or ()):
        if rl["type"] not in RLIMITS:
            raise _err(f"process.rlimits[{i}].type", f"unknown rlimit {rl['type']!r}")
        if rl["type"] in seen:
            raise _err(f"process.rlimits[{i}].type", f"duplicate rlimit {rl['type']!r}")
        seen.add(rl["type"])
        for key in ("soft", "hard"):
            # rlim_t is unsigned: 2**64-1 is RLIM_INFINITY; C's setrlimit wrapper takes no more
            # than 2**63-1 otherwise (was: internal error, OverflowError).
            if RLIM_MAX < rl[key] < RLIM_UNLIMITED:
                raise _err(f"process.rlimits[{i}].{key}", f"{rl[key]} is too large (at most "
                           f"{RLIM_MAX}, or {RLIM_UNLIMITED} for unlimited)")
        if rl["soft"] > rl["hard"]:
            raise _err(f"process.rlimits[{i}]", f"soft limit {rl['soft']} is above hard limit {rl['hard']}")
        rlimits.append(Rlimit(rl["type"], rl["soft"], rl["hard"]))
    size = raw.get("consoleSize")
    args, env = tuple(raw.get("args") or ()), tuple(raw.get("env") or ())
    _check_exec_size(args, env, tuple(rlimits), "process")
    return Process(
        args=args,
        cwd=posixpath.normpath(cwd),
        env=env,
        terminal=bool(raw.get("terminal", False)),
        console_size=(min(size["height"], MAX_WINSIZE), min(size["width"], MAX_WINSIZE))
        if size else None,
        user=_user(raw.get("user") or {}),
        capabilities=_caps(raw.get("capabilities")),
        rlimits=tuple(rlimits),
        no_new_privileges=bool(raw.get("noNewPrivileges", False)),
        apparmor_profile=raw.get("apparmorProfile") or None,
        selinux_label=raw.get("selinuxLabel") or None,
        oom_score_adj=raw.get("oomScoreAdj"),
        scheduler=_scheduler(raw.get("scheduler")),
        io_priority=_ioprio(raw.get("ioPriority")),
        cpu_affinity_initial=_affinity(raw, "initial"),
        cpu_affinity_final=_affinity(raw, "final"),
    )


def _ioprio(raw: Mapping[str, Any] | None) -> int | None:
    if raw is None:
        return None
    cls = raw["class"]
    if cls not in _IOPRIO_CLASSES:
        raise _err("process.ioPriority.class", f"unknown class {cls!r}")
    level: int = raw.get("priority", 0)
    if not 0 <= level <= 7:
        raise _err("process.ioPriority.priority", f"{level} is not between 0 and 7")
    return _IOPRIO_CLASSES[cls] << 13 | level


def _affinity(raw: Mapping[str, Any], which: str) -> frozenset[int] | None:
    text = (raw.get("execCPUAffinity") or {}).get(which)
    return None if not text else parse_cpu_list(text, f"process.execCPUAffinity.{which}")


def _mounts(raw: list[Mapping[str, Any]], bundle: str, linux: Linux) -> tuple[Mount, ...]:
    out: list[Mount] = []
    for i, m in enumerate(raw):
        dest = m["destination"]
        if not posixpath.isabs(dest):
            # runc accepts relative destinations as relative to "/"; keep that.
            dest = "/" + dest
        options = tuple(m.get("options") or ())
        try:
            parsed = mountopts.parse(options)
        except ValueError as exc:
            raise _err(f"mounts[{i}].options", str(exc)) from None
        mtype = m.get("type") or None
        source = m.get("source")
        if parsed.flags & mountopts.MS_BIND or mtype == "bind":
            flags = parsed.flags | mountopts.MS_BIND
            if source is None:
                raise _err(f"mounts[{i}].source", "a bind mount needs a source")
            if not posixpath.isabs(source):
                source = posixpath.join(bundle, source)
        else:
            flags = parsed.flags
        uid_maps, gid_maps = _mappings(m.get("uidMappings")), _mappings(m.get("gidMappings"))
        idmap = parsed.idmap or ("idmap" if uid_maps or gid_maps else "")
        if idmap:
            if not flags & mountopts.MS_BIND:
                raise _err(f"mounts[{i}]", f"{idmap!r}: only bind mounts can be idmapped")
            if not uid_maps and not gid_maps:
                # runc's rule: an idmap option alone takes the container's own mappings.
                if not linux.uid_mappings or not linux.gid_mappings:
                    raise _err(f"mounts[{i}]", f"{idmap!r} without uidMappings and gidMappings "
                               "needs those of the container's user namespace in linux")
                uid_maps, gid_maps = linux.uid_mappings, linux.gid_mappings
            elif not uid_maps or not gid_maps:
                raise _err(f"mounts[{i}]", "an idmapped mount needs both uidMappings and gidMappings")
        out.append(Mount(
            destination=posixpath.normpath(dest),
            type=mtype,
            source=source,
            options=options,
            flags=flags,
            clear_flags=parsed.clear_flags,
            propagation=parsed.propagation,
            data=parsed.data,
            rec_set=parsed.rec_set,
            rec_clear=parsed.rec_clear,
            idmap=idmap,
            uid_mappings=uid_maps,
            gid_mappings=gid_maps,
        ))
    return tuple(out)


def _hooks(raw: Mapping[str, Any] | None) -> Hooks:
    raw = raw or {}

    def conv(key: str) -> tuple[Hook, ...]:
        return tuple(
            Hook(h["path"], tuple(h.get("args") or ()), tuple(h.get("env") or ()), h.get("timeout"))
            for h in raw.get(key) or ()
        )

    return Hooks(conv("prestart"), conv("createRuntime"), conv("createContainer"),
                 conv("startContainer"), conv("poststart"), conv("poststop"))


def _namespaces(raw: list[Mapping[str, Any]]) -> tuple[Namespace, ...]:
    seen: set[str] = set()
    out: list[Namespace] = []
    for i, ns in enumerate(raw):
        ns_type = ns["type"]
        if ns_type in seen:
            raise _err(f"linux.namespaces[{i}].type", f"duplicate namespace type {ns_type!r}")
        seen.add(ns_type)
        path = ns.get("path") or None
        if path is not None and not posixpath.isabs(path):
            raise _err(f"linux.namespaces[{i}].path", f"{path!r} is not an absolute path")
        out.append(Namespace(ns_type, path))
    return tuple(out)


def _mappings(raw: list[Mapping[str, Any]] | None) -> tuple[IDMapping, ...]:
    return tuple(IDMapping(m["containerID"], m["hostID"], m["size"]) for m in raw or ())


def _devices(raw: list[Mapping[str, Any]] | None) -> tuple[Device, ...]:
    out = []
    for i, d in enumerate(raw or ()):
        path = d["path"]
        if not posixpath.isabs(path):
            raise _err(f"linux.devices[{i}].path", f"{path!r} is not an absolute path")
        dtype = d["type"]
        if dtype != "p" and ("major" not in d or "minor" not in d):
            raise _err(f"linux.devices[{i}]", f"a device of type {dtype!r} needs major and minor")
        out.append(Device(posixpath.normpath(path), dtype, d.get("major", 0), d.get("minor", 0),
                          d.get("fileMode"), d.get("uid"), d.get("gid")))
    return tuple(out)


def _resources(raw: Mapping[str, Any] | None) -> Resources:
    """linux.resources as a Resources; an absent section is an empty one, because even a
    container without limits gets the default device allow-list (as with runc)."""
    raw = raw or {}
    dev_raw = raw.get("devices")
    rules = None if dev_raw is None else tuple(
        DeviceRule(bool(r["allow"]), r.get("type") or "a",
                   None if r.get("major") is None or r["major"] < 0 else r["major"],
                   None if r.get("minor") is None or r["minor"] < 0 else r["minor"],
                   r.get("access") or "rwm")
        for r in dev_raw
    )
    mem = raw.get("memory") or {}
    cpu = raw.get("cpu") or {}
    pids = raw.get("pids") or {}
    bio = raw.get("blockIO") or {}
    net = raw.get("network") or {}

    def throttle(key: str) -> tuple[ThrottleDevice, ...]:
        return tuple(ThrottleDevice(d["major"], d["minor"], d["rate"]) for d in bio.get(key) or ())

    return Resources(
        devices=rules,
        memory_limit=mem.get("limit"),
        memory_reservation=mem.get("reservation"),
        memory_swap=mem.get("swap"),
        memory_kernel=mem.get("kernel"),
        memory_kernel_tcp=mem.get("kernelTCP"),
        memory_swappiness=mem.get("swappiness"),
        memory_disable_oom_killer=mem.get("disableOOMKiller"),
        memory_use_hierarchy=mem.get("useHierarchy"),
        memory_check_before_update=mem.get("checkBeforeUpdate"),
        cpu_shares=cpu.get("shares"),
        cpu_quota=cpu.get("quota"),
        cpu_burst=cpu.get("burst"),
        cpu_period=cpu.get("period"),
        cpu_realtime_runtime=cpu.get("realtimeRuntime"),
        cpu_realtime_period=cpu.get("realtimePeriod"),
        cpu_cpus=cpu.get("cpus") or None,
        cpu_mems=cpu.get("mems") or None,
        cpu_idle=cpu.get("idle"),
        pids_limit=pids.get("limit"),
        blkio_weight=bio.get("weight"),
        blkio_leaf_weight=bio.get("leafWeight"),
        blkio_weight_device=tuple(WeightDevice(d["major"], d["minor"], d.get("weight"),
                                               d.get("leafWeight"))
                                  for d in bio.get("weightDevice") or ()),
        blkio_throttle_read_bps=throttle("throttleReadBpsDevice"),
        blkio_throttle_write_bps=throttle("throttleWriteBpsDevice"),
        blkio_throttle_read_iops=throttle("throttleReadIOPSDevice"),
        blkio_throttle_write_iops=throttle("throttleWriteIOPSDevice"),
        hugepage_limits=tuple(HugepageLimit(h["pageSize"], h["limit"])
                              for h in raw.get("hugepageLimits") or ()),
        net_class_id=net.get("classID"),
        net_priorities=tuple((p["name"], p["priority"]) for p in net.get("priorities") or ()),
        rdma=tuple(RdmaLimit(name, lim.get("hcaHandles"), lim.get("hcaObjects"))
                   for name, lim in sorted((raw.get("rdma") or {}).items())),
        unified=tuple(sorted((raw.get("unified") or {}).items())),
    )


def _linux(raw: Mapping[str, Any] | None) -> Linux:
    raw = raw or {}
    prop = raw.get("rootfsPropagation") or None
    prop_flags = None
    if prop is not None:
        try:
            prop_flags = mountopts.propagation_flags(prop)
        except ValueError as exc:
            raise _err("linux.rootfsPropagation", str(exc)) from None
    return Linux(
        namespaces=_namespaces(raw.get("namespaces") or []),
        uid_mappings=_mappings(raw.get("uidMappings")),
        gid_mappings=_mappings(raw.get("gidMappings")),
        devices=_devices(raw.get("devices")),
        cgroups_path=raw.get("cgroupsPath") or None,
        resources=_resources(raw.get("resources")),
        sysctl=tuple(sorted((raw.get("sysctl") or {}).items())),
        seccomp=raw.get("seccomp"),
        rootfs_propagation=prop_flags,
        masked_paths=tuple(raw.get("maskedPaths") or ()),
        readonly_paths=tuple(raw.get("readonlyPaths") or ()),
        mount_label=raw.get("mountLabel") or None,
        personality=_personality(raw.get("personality")),
        time_offsets=tuple((clock, int(v.get("secs", 0)), int(v.get("nanosecs", 0)))
                           for clock, v in sorted((raw.get("timeOffsets") or {}).items())),
        net_devices=tuple(NetDevice(host, (dev or {}).get("name") or host)
                          for host, dev in sorted((raw.get("netDevices") or {}).items())),
        memory_policy=_memory_policy(raw.get("memoryPolicy")),
        intel_rdt=_intel_rdt(raw.get("intelRdt")),
    )


# <linux/mempolicy.h>
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
               "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
               "MPOL_F_NUMA_BALANCING": 1 << 13}
# The kernel's nodemask is at most MAX_NUMNODES (1 << 10) bits; a bigger node number is a typo.
MAX_NUMA_NODE = 1023


def _memory_policy(raw: Mapping[str, Any] | None) -> MemoryPolicy | None:
    """Turn the words into set_mempolicy's numbers; which combinations work is the kernel's call."""
    if raw is None:
        return None
    # A bit mask, not a list: "0-1023," repeated to 16 MiB is 2.4 million ranges, and
    # listing each range's nodes took minutes and gigabytes (20000 of them: 3.8 s).
    mask = 0
    for part in filter(None, (raw.get("nodes") or "").split(",")):
        first, _, last = part.partition("-")
        # 5000 digits would be int()'s ValueError (its digit limit), an internal error
        lo, hi = (int(first), int(last or first)) if max(len(first), len(last)) < 6 else (1, 0)
        if lo > hi or hi > MAX_NUMA_NODE:
            raise _err("linux.memoryPolicy.nodes",
                       f"{part!r} is not a node range within 0-{MAX_NUMA_NODE}")
        mask |= ((1 << (hi - lo + 1)) - 1) << lo
    nodes = [n for n in range(MAX_NUMA_NODE + 1) if mask >> n & 1]
    flags = 0
    for flag in raw.get("flags") or ():
        flags |= MPOL_FLAGS[flag]
    text = raw["mode"] + "".join("|" + f for f in raw.get("flags") or ())
    if nodes:  # as ranges of what is set: the text given may be megabytes of repeats
        text += " nodes " + _ranges(nodes)
    return MemoryPolicy(MPOL_MODES[raw["mode"]], flags, tuple(nodes), text)


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (sorted, distinct numbers)."""
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], -2]:
        if n != prev + 1:
            out.append(f"{start}-{prev}" if prev > start else str(start))
            start = n
        prev = n
    return ",".join(out)


def _intel_rdt(raw: Mapping[str, Any] | None) -> IntelRdt | None:
    """schemata (1.3) plus the older single-line l3CacheSchema and memBwSchema, in that order."""
    if raw is None:
        return None
    lines = [line for line in (raw.get("schemata") or ()) if line]
    for key in ("l3CacheSchema", "memBwSchema"):
        if raw.get(key):
            lines.extend(raw[key].splitlines())
    for line in lines:
        if "\n" in line:
            raise _err("linux.intelRdt.schemata", f"{line!r} has a newline")
    monitoring = bool(raw.get("enableMonitoring") or raw.get("enableCMT") or raw.get("enableMBM"))
    clos_id = raw.get("closID") or None
    if clos_id is not None:  # refused before anything is made, not after the init exists
        from pyrunc.linux.intelrdt import clos_id_problem
        problem = clos_id_problem(clos_id)
        if problem:
            raise _err("linux.intelRdt.closID", f"{clos_id!r} cannot name a resctrl group "
                       f"({problem})")
    return IntelRdt(clos_id, tuple(lines), monitoring)


_PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


def _personality(raw: Mapping[str, Any] | None) -> int | None:
    if raw is None:
        return None
    domain = raw["domain"]
    if domain not in _PERSONALITY_DOMAINS:
        raise _err("linux.personality.domain", f"unknown domain {domain!r}")
    if raw.get("flags"):
        raise _err("linux.personality.flags", "personality flags are not supported")
    return _PERSONALITY_DOMAINS[domain]


# sysctl prefixes and the namespace each belongs to (everything else is host-wide).
_SYSCTL_NS = (("net.", "network"), ("kernel.msg", "ipc"), ("kernel.sem", "ipc"),
              ("kernel.shm", "ipc"), ("fs.mqueue.", "ipc"), ("kernel.hostname", "uts"),
              ("kernel.domainname", "uts"))


def _check_sysctls(linux: Linux) -> None:
    """Like runc: a sysctl is allowed only when the container has that namespace of its own."""
    for key, _value in linux.sysctl:
        if key == "kernel.hostname":  # runc's words: setting it twice, two values to trust
            raise _err(f"linux.sysctl[{key!r}]", "not allowed: it conflicts with the OCI "
                       "'hostname' field (set hostname instead)")
        owner = next((ns for prefix, ns in _SYSCTL_NS if key.startswith(prefix)), None)
        if owner is None:
            raise _err(f"linux.sysctl[{key!r}]", "not a namespaced sysctl: it would change the host")
        ns = linux.namespace(owner)
        if ns is None:
            raise _err(f"linux.sysctl[{key!r}]", f"needs a {owner} namespace of the container's own")
        if owner == "network" and ns.path is not None:
            # A joined network namespace may well be the host's: refuse rather than guess.
            if ns.path.rstrip("/") in ("/proc/1/ns/net", "/proc/self/ns/net"):
                raise _err(f"linux.sysctl[{key!r}]", "the network namespace is the host's")


def _if_name_problem(name: str) -> str | None:
    """What the kernel would refuse in `name` (dev_valid_name, dev_alloc_name's one '%d').
    The schema's pattern is not enough: it counts characters, not bytes, and its '$' lets a
    final newline through; and a name the kernel refuses only after the device has changed
    namespace (the rename comes after the move) lost the device: a veth died with the
    container's namespace, a physical one came back without its addresses."""
    if not 0 < len(name.encode(errors="surrogateescape")) <= 15:
        return "1-15 bytes"
    if name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        return "no '/', ':' or white space, not '.' or '..'"
    first = name.find("%")
    if first >= 0 and (name[first + 1:first + 2] != "d" or "%" in name[first + 2:]):
        return "a '%' only as one '%d'"
    return None


def _check_net_devices(linux: Linux) -> None:
    """The spec: moving a device needs a network namespace other than the runtime's (a
    joined one is compared with ours when the device moves), and two devices cannot take
    one name there."""
    if not linux.net_devices:
        return
    if linux.namespace("network") is None:
        raise _err("linux.netDevices", f"moving {linux.net_devices[0].host!r} needs a new "
                   "network namespace of the container's own (linux.namespaces has none)")
    seen: dict[str, str] = {}
    for dev in linux.net_devices:
        for where, name in (("linux.netDevices", dev.host),
                            (f"linux.netDevices.{dev.host}.name", dev.name)):
            problem = _if_name_problem(name)
            if problem:
                raise _err(where, f"{name!r} is not a valid interface name ({problem})")
        if "%" not in dev.name and dev.name in seen:
            raise _err(f"linux.netDevices.{dev.host}.name", f"{dev.name!r} is also the name "
                       f"given to {seen[dev.name]!r}")
        seen[dev.name] = dev.host


def convert(raw: Mapping[str, Any], bundle: str) -> Config:
    """Turn a schema-valid config.json dict into a Config, or raise SpecError."""
    root_raw = raw["root"] if "root" in raw else None
    if root_raw is None:
        raise SpecError("config.json: 'root' is required on Linux")
    root_path = root_raw["path"]
    if not posixpath.isabs(root_path):
        root_path = posixpath.join(bundle, root_path)
    linux = _linux(raw.get("linux"))
    _check_sysctls(linux)
    if linux.time_offsets and linux.namespace("time") is None:
        raise SpecError("config.json: linux.timeOffsets: time offsets need a time namespace")
    if linux.uid_mappings or linux.gid_mappings:
        if linux.namespace("user") is None:
            raise SpecError("config.json: linux.uidMappings: id mappings need a user namespace")
    _check_net_devices(linux)
    hostname = raw.get("hostname")
    if hostname and linux.namespace("uts") is None:
        raise SpecError("config.json: hostname: setting a hostname needs a new uts namespace")
    return Config(
        oci_version=raw["ociVersion"],
        root=Root(posixpath.normpath(root_path), bool(root_raw.get("readonly", False))),
        process=_process(raw.get("process")),
        hostname=hostname,
        domainname=raw.get("domainname"),
        mounts=_mounts(raw.get("mounts") or [], bundle, linux),
        hooks=_hooks(raw.get("hooks")),
        annotations=tuple(sorted((raw.get("annotations") or {}).items())),
        linux=linux,
        bundle=bundle,
        process_raw=raw.get("process"),
    )


def process_from_json(raw: Any, source: str = "process.json") -> Process:
    """A Process from `exec --process FILE`: validated as the `process` of a config."""
    from pyrunc.spec.schema import validate_config
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: the process must be a JSON object")
    try:
        validate_config({"ociVersion": "1.0.0", "root": {"path": "rootfs"}, "process": raw})
    except SpecError as exc:
        raise SpecError(_reword(exc.msg, source)) from None
    try:
        proc = _process(raw)
    except SpecError as exc:  # the same words as the schema's, naming the file given
        raise SpecError(_reword(exc.msg, source)) from None
    assert proc is not None
    return proc


def _reword(msg: str, source: str) -> str:
    return (msg.replace("config.json: process.", f"{source}: ", 1)
            .replace("config.json: process: ", f"{source}: ", 1))


def check_exec_size(proc: Process, source: str) -> None:
    """_check_exec_size for a process that exec built from flags (the command, --env)."""
    try:
        _check_exec_size(proc.args, proc.env, proc.rlimits, "process")
    except SpecError as exc:
        raise SpecError(_reword(exc.msg, source)) from None
