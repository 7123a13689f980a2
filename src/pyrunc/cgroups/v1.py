"""cgroup v1: one directory per mounted controller hierarchy.

Every resource of the spec has its v1 file here; the order of the writes, and the
readbacks, follow runc's fs driver (memory before swap or after it depending on
the current limit, cpu.shares read back, the period retried after the quota).
A resource whose controller is not mounted is an error, not silently dropped;
only the kernel-memory limits and blkio leaf weights, which newer kernels removed
outright, are warnings.
"""

from __future__ import annotations

import errno
import os
import select
import time

from pyrunc.cgroups import (CGROUP_ROOT, count_in, inner_path, mountinfo, own_cgroup,
                            procs_below, read, sub_path, write)
from pyrunc.errors import SpecError, SystemError_, UnsupportedError

# The resource model and its converters load only when limits are set or read: `state`
# and `kill` reach this module just to look at the freezer.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.spec.config import Resources


#: The key of a hybrid host's cgroup2 hierarchy (/sys/fs/cgroup/unified) among the controllers.
UNIFIED = ""


def hierarchies() -> dict[str, str]:
    """Controller name (or name=...) -> its mount point, for each v1 hierarchy; on a hybrid
    host also UNIFIED -> the cgroup2 mount beside them, which the container joins as well, as
    with runc (systemd and tools read a process's `0::` line)."""
    out: dict[str, str] = {}
    for mp, fstype, opts in mountinfo():
        if not mp.startswith(CGROUP_ROOT + "/"):
            continue
        if fstype == "cgroup2":
            out.setdefault(UNIFIED, mp)
            continue
        if fstype != "cgroup":
            continue
        for opt in opts:
            if opt in ("rw", "ro") or opt.startswith("release_agent") or opt in ("noprefix", "xattr", "clone_children"):
                continue
            out.setdefault(opt, mp)
    return out


def _unified_controllers() -> list[str]:
    """Controllers a hybrid host has on its cgroup2 mount (to explain what v1 lacks)."""
    for mp, fstype, _ in mountinfo():
        if fstype == "cgroup2":
            try:
                return read(os.path.join(mp, "cgroup.controllers")).split()
            except OSError:
                return []
    return []


class V1Manager:
    def __init__(self, paths: dict[str, str], mounts: dict[str, str] | None = None) -> None:
        """`paths`: controller -> cgroup path in that controller's hierarchy."""
        self._mounts = hierarchies() if mounts is None else mounts
        self._paths = paths

    @classmethod
    def for_spec(cls, cgroups_path: str | None, container_id: str) -> "V1Manager":
        """runc's cgroupfs placement: absolute as is, relative under our own cgroup of each
        controller (these differ when we were started in, say, a memory-only sub-cgroup)."""
        mounts = hierarchies()
        inner = inner_path(cgroups_path, container_id)
        paths: dict[str, str] = {}
        for ctrl in mounts:
            if inner.startswith("/"):
                paths[ctrl] = inner
            else:
                own = own_cgroup(ctrl if ctrl != UNIFIED else None)
                paths[ctrl] = os.path.normpath(os.path.join(own, inner))
        return cls(paths, mounts)

    @classmethod
    def load(cls, path: str) -> "V1Manager":
        """From the recorded `path`: one path for all controllers, or a JSON map of them."""
        mounts = hierarchies()
        if path.startswith("{"):
            from pyrunc import jsonio
            paths: dict[str, str] = jsonio.loads(path)
        else:
            paths = {ctrl: path for ctrl in mounts}
        return cls(paths, mounts)

    @property
    def path(self) -> str:
        distinct = set(self._paths.values())
        if len(distinct) == 1:
            return distinct.pop()
        import json  # only create writes this form
        return json.dumps(self._paths, sort_keys=True, separators=(",", ":"))

    def dirs(self) -> list[str]:
        seen: list[str] = []
        for ctrl, mp in self._mounts.items():
            p = self._paths.get(ctrl)
            if p is None:
                continue
            d = mp + p
            if d not in seen:
                seen.append(d)
        return seen

    def _dir(self, controller: str) -> str | None:
        mp = self._mounts.get(controller)
        p = self._paths.get(controller)
        return None if mp is None or p is None else mp + p

    def _need(self, controller: str, what: str) -> str:
        d = self._dir(controller)
        if d is None:
            where = ""
            if controller in _unified_controllers():
                where = (" (this hybrid host has it only on the cgroup2 hierarchy, which "
                         "pyrunc leaves to the system)")
            raise UnsupportedError(f"cannot set {what}: the {controller} cgroup controller is "
                                   f"not mounted as cgroup v1 on this host{where}")
        return d

    # -- lifecycle ------------------------------------------------------------------------

    def create(self) -> None:
        for ctrl, mp in self._mounts.items():
            p = self._paths.get(ctrl)
            if p is None:
                continue
            d = mp + p
            try:
                if ctrl == "cpuset":
                    self._make_cpuset(mp, p)
                else:
                    os.makedirs(d, exist_ok=True)
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot create cgroup {d}", exc) from None

    @staticmethod
    def _make_cpuset(mp: str, path: str) -> None:
        """cpuset dirs start empty and refuse tasks: copy cpus and mems down from the parent."""
        cur = mp
        for part in [p for p in path.split("/") if p]:
            nxt = os.path.join(cur, part)
            if not os.path.isdir(nxt):
                os.mkdir(nxt)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not read(os.path.join(nxt, name)).strip():
                    write(os.path.join(nxt, name), read(os.path.join(cur, name)).strip())
            cur = nxt

    def join(self, defer: bool = False) -> None:
        """Pid 0 written to `tasks` moves only the calling thread, which the kernel does
        without the global threadgroup lock that `cgroup.procs` takes (whose RCU grace
        period cost 10-18 ms per create here). The stages that call this are
        single-threaded, so the thread is the whole process. The unified hierarchy of a
        hybrid host has no `tasks`: its cgroup.procs is left to adopt() with `defer`."""
        unified = self._dir(UNIFIED)
        for d in self.dirs():
            if d == unified:
                if not defer:
                    self._join_unified("0")
                continue
            try:
                write(os.path.join(d, "tasks"), "0")
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot join cgroup {d}", exc) from None

    def adopt(self, pid: int) -> None:
        if self._dir(UNIFIED) is not None:
            self._join_unified(str(pid))

    def _join_unified(self, pid: str) -> None:
        d = self._dir(UNIFIED)
        assert d is not None
        try:
            write(os.path.join(d, "cgroup.procs"), pid)
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot join cgroup {d}", exc) from None

    def sub(self, paths: dict[str, str]) -> "V1Manager":
        """runc's v1 exec --cgroup: a bare path is the same sub-cgroup in every hierarchy;
        `ctrl:path` moves only those; the other controllers stay in the container's."""
        from pyrunc.errors import UsageError
        if "" in paths:
            paths = {ctrl: paths[""] for ctrl in self._paths}
        out = dict(self._paths)
        for ctrl, rel in paths.items():
            if ctrl not in self._paths:
                raise UsageError(f"--cgroup: unknown controller {ctrl!r} (this host's: "
                                 f"{', '.join(sorted(c for c in self._paths if c))})")
            out[ctrl] = sub_path(self._paths[ctrl], rel)
        return V1Manager(out, self._mounts)

    # -- limits ---------------------------------------------------------------------------

    def set(self, resources: Resources, update: bool = False) -> list[str]:
        """Write the limits; returns warnings for what this kernel cannot enforce.

        `update`: only what `resources` gives is changed (device rules included)."""
        from pyrunc.cgroups import resources as conv
        r = resources
        warnings: list[str] = []
        if r.unified:
            # runc's words ("invalid configuration"), which its callers match.
            raise SpecError("invalid configuration: linux.resources.unified: cannot use "
                            "unified on cgroup v1 (cgroup v2 files cannot be set on this host)")
        if r.cpu_cpus or r.cpu_mems:
            d = self._need("cpuset", "cpu.cpus/cpu.mems")
            if r.cpu_cpus:
                _set(d, "cpuset.cpus", r.cpu_cpus)
            if r.cpu_mems:
                _set(d, "cpuset.mems", r.cpu_mems)
        if not update or r.devices:  # an update without rules (or with none) keeps them
            self._set_devices(r, update)
        self._set_memory(r, warnings)
        self._set_cpu(r)
        limit = conv.pids_max(r.pids_limit)
        if limit is not None:
            _set(self._need("pids", "pids.limit"), "pids.max", limit)
        self._set_blkio(r, warnings)
        for hp in r.hugepage_limits:
            d = self._need("hugetlb", f"hugepageLimits ({hp.page_size})")
            _set(d, conv.hugetlb_file(hp.page_size, v2=False), str(hp.limit))
        if r.net_class_id:  # 0 is "no class" (runc writes nothing either)
            _set(self._need("net_cls", "network.classID"), "net_cls.classid", str(r.net_class_id))
        for name, prio in r.net_priorities:
            _set(self._need("net_prio", "network.priorities"), "net_prio.ifpriomap", f"{name} {prio}")
        for lim in r.rdma:
            line = conv.rdma_line(lim.device, lim.hca_handles, lim.hca_objects)
            if line is not None:
                _set(self._need("rdma", "rdma"), "rdma.max", line)
        return warnings

    def _set_devices(self, r: Resources, update: bool) -> None:
        from pyrunc.cgroups import devices as devrules
        from pyrunc.cgroups import resources as conv
        d = self._dir("devices")
        if d is None:
            if r.devices:
                raise UnsupportedError("cannot set linux.resources.devices: the devices cgroup "
                                       "controller is not mounted")
            return
        target = devrules.DeviceState.from_rules(r.devices or ())
        try:
            current = devrules.from_devices_list(read(os.path.join(d, "devices.list")))
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot read {d}/devices.list", exc) from None
        if not update or (current.default_allow and not current.exceptions):
            # Nothing of the container runs yet (create: the systemd driver's unit may have a
            # list of systemd's already): write the rules as listed (the kernel keeps
            # exceptions in write order, and the spec says entries apply in the listed
            # order), then the defaults.
            rules = (devrules.DENY_ALL,) + tuple(r.devices or ()) + devrules.DEFAULT_ALLOWED
        else:
            rules = tuple(current.transition(target))  # a live container: no deny-all window
        for rule in rules:
            _set(d, "devices.allow" if rule.allow else "devices.deny", conv.rule_text(rule))

    def _set_memory(self, r: Resources, warnings: list[str]) -> None:
        from pyrunc.cgroups import resources as conv
        wanted = (r.memory_limit, r.memory_swap, r.memory_reservation, r.memory_kernel,
                  r.memory_kernel_tcp, r.memory_swappiness, r.memory_disable_oom_killer,
                  r.memory_use_hierarchy)
        if all(v is None for v in wanted):
            return
        d = self._need("memory", "memory limits")
        limit, swap = r.memory_limit or 0, r.memory_swap or 0
        memsw = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        if limit == -1 and swap == 0 and memsw:
            swap = -1  # "no memory limit" means no memory+swap limit either
        if swap and not memsw:
            raise UnsupportedError("cannot set memory.swap: this kernel has no swap accounting "
                                   "(memory.memsw.limit_in_bytes; boot with swapaccount=1)")
        if r.memory_check_before_update and limit > 0:
            usage = _read_int(d, "memory.usage_in_bytes")
            if usage is not None and usage >= limit:
                raise SystemError_(f"rejecting memory limit {limit} below current usage {usage}",
                                   errno.EBUSY)
        if limit and swap:
            current = _read_int(d, "memory.limit_in_bytes") or 0
            # The kernel wants memory <= memory+swap at every step: order the two writes.
            if swap == -1 or current < swap:
                _set(d, "memory.memsw.limit_in_bytes", str(swap))
                self._set_limit(d, limit)
            else:
                self._set_limit(d, limit)
                _set(d, "memory.memsw.limit_in_bytes", str(swap))
        else:
            if limit:
                self._set_limit(d, limit)
            if swap:
                _set(d, "memory.memsw.limit_in_bytes", str(swap))
        if r.memory_reservation:
            _set(d, "memory.soft_limit_in_bytes", str(r.memory_reservation))
        for value, name, what in ((r.memory_kernel, "memory.kmem.limit_in_bytes", "memory.kernel"),
                                  (r.memory_kernel_tcp, "memory.kmem.tcp.limit_in_bytes",
                                   "memory.kernelTCP")):
            if not value:
                continue
            try:
                write(os.path.join(d, name), str(value))
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL):
                    raise SystemError_.from_oserror(f"cannot set {name} to {value}", exc) from None
                warnings.append(f"{what} is not supported by this kernel ({name}: "
                                f"{exc.strerror}); ignored")
                continue
            # Since Linux 5.16 the kmem limit write succeeds and is ignored: read it back.
            page = os.sysconf("SC_PAGE_SIZE")
            got = _read_int(d, name)
            if value > 0 and got is not None and got != value - value % page:
                warnings.append(f"{what} is not enforced by this kernel ({name} stays {got}); "
                                "ignored")
        if r.memory_disable_oom_killer is not None:
            _set(d, "memory.oom_control", "1" if r.memory_disable_oom_killer else "0")
        swappiness = conv.check_swappiness(r.memory_swappiness)
        if swappiness is not None:
            _set(d, "memory.swappiness", str(swappiness))
        if r.memory_use_hierarchy is not None:
            try:
                write(os.path.join(d, "memory.use_hierarchy"), "1" if r.memory_use_hierarchy else "0")
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise SystemError_.from_oserror("cannot set memory.use_hierarchy", exc) from None
                warnings.append("memory.useHierarchy: this kernel always uses the hierarchy "
                                "(memory.use_hierarchy cannot be changed); ignored")

    @staticmethod
    def _set_limit(d: str, limit: int) -> None:
        try:
            write(os.path.join(d, "memory.limit_in_bytes"), str(limit))
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                usage = _read_int(d, "memory.usage_in_bytes")
                peak = _read_int(d, "memory.max_usage_in_bytes")
                raise SystemError_(f"unable to set memory limit to {limit} (current usage: "
                                   f"{usage}, peak usage: {peak})", errno.EBUSY) from None
            if exc.errno == errno.EINVAL:
                raise SystemError_(f"cannot set memory limit to {limit}: it must not exceed the "
                                   f"memory+swap limit (set memory.swap too)", errno.EINVAL) from None
            raise SystemError_.from_oserror(f"cannot set memory.limit_in_bytes to {limit}", exc) from None

    def _set_cpu(self, r: Resources) -> None:
        wanted = (r.cpu_shares, r.cpu_quota, r.cpu_period, r.cpu_burst, r.cpu_realtime_period,
                  r.cpu_realtime_runtime, r.cpu_idle)
        if all(not v for v in wanted) and r.cpu_burst is None and r.cpu_idle is None:
            return
        d = self._need("cpu", "cpu limits")
        if r.cpu_shares:
            _set(d, "cpu.shares", str(r.cpu_shares))
            got = _read_int(d, "cpu.shares")
            if got is not None and got < r.cpu_shares:
                raise SpecError(f"cpu.shares: the maximum allowed cpu-shares is {got}")
            if got is not None and got > r.cpu_shares:
                raise SpecError(f"cpu.shares: the minimum allowed cpu-shares is {got}")
        period_later = None
        if r.cpu_period:
            try:
                write(os.path.join(d, "cpu.cfs_period_us"), str(r.cpu_period))
            except OSError as exc:
                # A shorter period can exceed the parent's quota with the old quota: retry
                # once the new quota is in.
                if exc.errno != errno.EINVAL:
                    raise SystemError_.from_oserror("cannot set cpu.cfs_period_us", exc) from None
                period_later = str(r.cpu_period)
        if r.cpu_quota:
            _set(d, "cpu.cfs_quota_us", str(r.cpu_quota))
        if period_later is not None:
            _set(d, "cpu.cfs_period_us", period_later)
        if r.cpu_burst is not None:
            if not os.path.exists(os.path.join(d, "cpu.cfs_burst_us")):
                raise UnsupportedError("cannot set cpu.burst: this kernel has no cpu.cfs_burst_us")
            _set(d, "cpu.cfs_burst_us", str(r.cpu_burst))
        if r.cpu_realtime_period:
            _set(d, "cpu.rt_period_us", str(r.cpu_realtime_period))
        if r.cpu_realtime_runtime:
            _set(d, "cpu.rt_runtime_us", str(r.cpu_realtime_runtime),
                 hint="the parent cgroups must grant that much cpu.rt_runtime_us first")
        if r.cpu_idle is not None:
            if not os.path.exists(os.path.join(d, "cpu.idle")):
                raise UnsupportedError("cannot set cpu.idle: this kernel has no cpu.idle")
            _set(d, "cpu.idle", str(r.cpu_idle))

    def _set_blkio(self, r: Resources, warnings: list[str]) -> None:
        from pyrunc.cgroups import resources as conv
        throttles = conv.throttle_v1(r)
        if not (r.blkio_weight or r.blkio_leaf_weight or r.blkio_weight_device or throttles):
            return
        d = self._need("blkio", "blockIO")

        def weight_file(base: str) -> str:
            for name in (f"blkio.bfq.{base}", f"blkio.{base}"):
                if os.path.exists(os.path.join(d, name)):
                    return name
            raise UnsupportedError(f"cannot set blockIO {base.replace('_', ' ')}: no "
                                   f"blkio.bfq.{base} or blkio.{base} here (weights need the "
                                   "bfq I/O scheduler)")
        if r.blkio_weight:
            _set(d, weight_file("weight"), str(r.blkio_weight))
        if r.blkio_leaf_weight:
            self._leaf(d, "blkio.leaf_weight", str(r.blkio_leaf_weight), warnings)
        for wd in r.blkio_weight_device:
            if wd.weight:
                _set(d, weight_file("weight_device"), f"{wd.major}:{wd.minor} {wd.weight}",
                     hint=f"device {wd.major}:{wd.minor} must use the bfq I/O scheduler")
            if wd.leaf_weight:
                self._leaf(d, "blkio.leaf_weight_device", f"{wd.major}:{wd.minor} {wd.leaf_weight}",
                           warnings)
        for name, line in throttles:
            _set(d, name, line)

    @staticmethod
    def _leaf(d: str, name: str, value: str, warnings: list[str]) -> None:
        if os.path.exists(os.path.join(d, name)):
            _set(d, name, value)
        else:
            warnings.append(f"blockIO leaf weights are not supported by this kernel (no {name}: "
                            "they went with the CFQ scheduler); ignored")

    # -- freezer --------------------------------------------------------------------------

    def freeze(self, frozen: bool) -> None:
        d = self._dir("freezer")
        if d is None:
            raise SystemError_("the freezer cgroup controller is not mounted")
        want = "FROZEN" if frozen else "THAWED"
        write(os.path.join(d, "freezer.state"), want)
        for _ in range(1000):
            if read(os.path.join(d, "freezer.state")).strip() == want:
                return
            time.sleep(0.001)
            write(os.path.join(d, "freezer.state"), want)
        raise SystemError_(f"cgroup {d} did not reach {want}", errno.EBUSY)

    def is_frozen(self) -> bool:
        d = self._dir("freezer")
        if d is None:
            return False
        try:
            return read(os.path.join(d, "freezer.state")).strip() in ("FROZEN", "FREEZING")
        except OSError:
            return False

    # -- queries --------------------------------------------------------------------------

    def pids(self) -> list[int]:
        dirs = self.dirs()
        d = self._dir("pids") or self._dir("memory") or (dirs[0] if dirs else None)
        if d is None:
            return []
        return procs_below(d)

    def occupants(self) -> list[int]:
        found: list[int] = []
        for d in self.dirs():
            found.extend(p for p in procs_below(d) if p not in found)
        return found

    def oom_killed(self) -> bool:
        d = self._dir("memory")
        return d is not None and count_in(os.path.join(d, "memory.oom_control"), "oom_kill") > 0

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())

    def stats(self) -> dict[str, Any]:
        from pyrunc.cgroups import stats as statsmod
        def reader(ctrl: str, name: str) -> str | None:
            d = self._dir(ctrl)
            if d is None:
                return None
            try:
                return read(os.path.join(d, name))
            except OSError:
                return None
        return statsmod.v1(reader, os.sysconf("SC_CLK_TCK"), statsmod.hugepage_sizes())

    def oom_watcher(self) -> "V1OomWatcher":
        d = self._dir("memory")
        if d is None:
            raise UnsupportedError("OOM events need the memory cgroup controller")
        return V1OomWatcher(d)

    def destroy(self, kill: bool = True) -> None:
        """Kill what is left inside, then remove every directory (retrying while busy)."""
        from pyrunc.cgroups.common import kill_all_and_rmdir
        kill_all_and_rmdir(self, self.dirs(), kill=kill)


class V1OomWatcher:
    """memory.oom_control notifications through an eventfd (cgroup.event_control)."""

    def __init__(self, memdir: str) -> None:
        self.dir = memdir
        self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        ofd = -1
        try:
            ofd = os.open(os.path.join(memdir, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            write(os.path.join(memdir, "cgroup.event_control"), f"{self.efd} {ofd}")
        except OSError as exc:
            os.close(self.efd)
            raise SystemError_.from_oserror(f"cannot watch {memdir} for OOM events", exc) from None
        finally:
            if ofd >= 0:
                os.close(ofd)  # the kernel holds its own reference once registered

    def wait(self, timeout: float) -> tuple[int, bool]:
        """The eventfd counts the memcg's OOM notifications, and one when the cgroup is
        removed. The kernel notifies each OOM invocation, often two or more for one kill (the
        tasks that hit the limit together): one event per wakeup, as runc's one per read."""
        poller = select.poll()
        poller.register(self.efd, select.POLLIN)
        poller.poll(max(0, int(timeout * 1000)))
        try:
            fired = int.from_bytes(os.read(self.efd, 8), "little")
        except BlockingIOError:
            fired = 0
        gone = not os.path.exists(os.path.join(self.dir, "cgroup.event_control"))
        return min(1, max(0, fired - 1) if gone else fired), gone

    def close(self) -> None:
        if self.efd >= 0:
            os.close(self.efd)
            self.efd = -1


def _set(d: str, name: str, value: str, hint: str = "") -> None:
    try:
        write(os.path.join(d, name), value)
    except OSError as exc:
        extra = f" ({hint})" if hint and exc.errno in (errno.EINVAL, errno.EBUSY,
                                                        errno.EOPNOTSUPP) else ""
        raise SystemError_.from_oserror(f"cannot set {name} to {value!r}{extra}", exc) from None


def _read_int(d: str, name: str) -> int | None:
    try:
        return int(read(os.path.join(d, name)).strip())
    except (OSError, ValueError):
        return None
