"""cgroup v2: one directory in the unified hierarchy.

The spec's v1-shaped fields are converted as runc converts them (see resources.py);
`unified` is written last and as given, so it can override a conversion. Device
rules become an eBPF program attached to the cgroup directory (devices.py builds
it, the C core loads and attaches it). What v2 has no file for (kernel memory,
swappiness, the OOM-killer switch, net_cls/net_prio) is a warning; real-time CPU
limits are an error (v2 has no real-time group scheduling to honour them).
"""

from __future__ import annotations

import errno
import os
import select
import time

from pyrunc.cgroups import CGROUP_ROOT, count_in, procs_below, read, sub_path, write
from pyrunc.errors import SpecError, SystemError_, UnsupportedError

# The resource model and its converters load only when limits are set or read: `state`
# and `kill` reach this module just to look at the freezer.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.spec.config import DeviceRule, Resources

PROG_NAME = "pyrunc_devices"  # shows in bpftool; 15 characters at most


class V2Manager:
    def __init__(self, path: str) -> None:
        self.path = path
        self.dir = CGROUP_ROOT + path

    def create(self) -> None:
        """Create the directory, enabling in each ancestor the controllers it has available."""
        cur = CGROUP_ROOT
        for part in [p for p in self.path.split("/") if p]:
            try:
                avail = read(os.path.join(cur, "cgroup.controllers")).split()
                enabled = read(os.path.join(cur, "cgroup.subtree_control")).split()
                missing = [c for c in avail if c not in enabled]
                if missing:
                    try:
                        write(os.path.join(cur, "cgroup.subtree_control"),
                              " ".join("+" + c for c in missing))
                    except OSError:
                        pass  # e.g. a parent with processes; set() names what is missing
                cur = os.path.join(cur, part)
                os.makedirs(cur, exist_ok=True)
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot create cgroup {cur}", exc) from None

    def join(self, defer: bool = False) -> None:
        try:
            write(os.path.join(self.dir, "cgroup.procs"), "0")
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot join cgroup {self.dir}", exc) from None

    def adopt(self, pid: int) -> None:
        """Nothing is deferred on v2: the one hierarchy is what join() must do."""

    def dirs(self) -> list[str]:
        return [self.dir]

    def sub(self, paths: dict[str, str]) -> "V2Manager":
        """runc's v2 exec --cgroup: one path, no controller (v2 has one hierarchy)."""
        from pyrunc.errors import UsageError
        if set(paths) != {""}:
            raise UsageError("--cgroup: cgroup v2 has one hierarchy: give a path without "
                             "a controller prefix")
        return V2Manager(sub_path(self.path, paths[""]))

    # -- limits ---------------------------------------------------------------------------

    def _controllers(self) -> list[str]:
        try:
            return read(os.path.join(self.dir, "cgroup.controllers")).split()
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot read {self.dir}/cgroup.controllers", exc) from None

    def _need(self, ctrls: list[str], controller: str, what: str) -> None:
        if controller not in ctrls:
            raise UnsupportedError(f"cannot set {what}: the {controller} controller is not "
                                   f"available in cgroup {self.path} (cgroup.controllers: "
                                   f"{' '.join(ctrls) or 'none'})")

    def _write(self, name: str, value: str, hint: str = "") -> None:
        try:
            write(os.path.join(self.dir, name), value)
        except OSError as exc:
            extra = f" ({hint})" if hint and exc.errno in (errno.EINVAL, errno.EOPNOTSUPP) else ""
            raise SystemError_.from_oserror(f"cannot set {name} to {value!r}{extra}", exc) from None

    def _read(self, name: str) -> str | None:
        try:
            return read(os.path.join(self.dir, name)).strip()
        except OSError:
            return None

    def set(self, resources: Resources, update: bool = False) -> list[str]:
        """Write the limits; returns warnings for what cgroup v2 cannot enforce.

        `update`: only what `resources` gives is changed, and values that v2 keeps in
        one file with others (cpu.max, memory.swap.max) keep their other half."""
        from pyrunc.cgroups import resources as conv
        r = resources
        warnings: list[str] = []
        ctrls = self._controllers()
        limit = conv.pids_max(r.pids_limit)
        if limit is not None:
            self._need(ctrls, "pids", "pids.limit")
            self._write("pids.max", limit)
        self._set_memory(r, ctrls, update, warnings)
        self._set_io(r, ctrls, warnings)
        self._set_cpu(r, ctrls, update)
        if not update or r.devices:  # an update without rules (or with none) keeps them
            self._set_devices(r.devices or ())
        if r.cpu_cpus or r.cpu_mems:
            self._need(ctrls, "cpuset", "cpu.cpus/cpu.mems")
            if r.cpu_cpus:
                self._write("cpuset.cpus", r.cpu_cpus)
            if r.cpu_mems:
                self._write("cpuset.mems", r.cpu_mems)
        for hp in r.hugepage_limits:
            self._need(ctrls, "hugetlb", f"hugepageLimits ({hp.page_size})")
            name = conv.hugetlb_file(hp.page_size, v2=True)
            self._write(name, str(hp.limit))
            rsvd = name.replace(".max", ".rsvd.max")
            if os.path.exists(os.path.join(self.dir, rsvd)):
                self._write(rsvd, str(hp.limit))  # or a mmap could reserve past the limit
        for lim in r.rdma:
            line = conv.rdma_line(lim.device, lim.hca_handles, lim.hca_objects)
            if line is not None:
                self._need(ctrls, "rdma", "rdma")
                self._write("rdma.max", line)
        if r.net_class_id or r.net_priorities:
            warnings.append("network.classID/priorities need the cgroup v1 net_cls/net_prio "
                            "controllers; ignored on cgroup v2")
        self._set_unified(r.unified, ctrls)
        return warnings

    def kept_swap_total(self, r: Resources) -> int | None:
        """An update of the memory limit alone keeps the memory+swap total the container had
        (runc merges its saved config): that total, or None."""
        if r.memory_limit and r.memory_swap is None and r.memory_limit != -1:
            old_mem, old_swap = self._read("memory.max"), self._read("memory.swap.max")
            if old_mem and old_mem.isdigit() and old_swap and old_swap.isdigit() and int(old_swap):
                return int(old_mem) + int(old_swap)
        return None

    def kept_cpu_max(self, r: Resources) -> tuple[int | None, int | None]:
        """(quota, period) for an update that gives one of them: the other from cpu.max."""
        quota, period = r.cpu_quota, r.cpu_period
        if (quota is None) != (period is None):
            cur = (self._read("cpu.max") or "").split()
            if len(cur) == 2 and cur[1].isdigit():
                if quota is None:
                    quota = -1 if cur[0] == "max" else int(cur[0]) if cur[0].isdigit() else None
                else:
                    period = int(cur[1])
        return quota, period

    def _set_memory(self, r: Resources, ctrls: list[str], update: bool,
                    warnings: list[str]) -> None:
        from pyrunc.cgroups import resources as conv
        if r.memory_kernel or r.memory_kernel_tcp:
            warnings.append("memory.kernel/kernelTCP have no cgroup v2 equivalent; ignored")
        if conv.check_swappiness(r.memory_swappiness) is not None:
            warnings.append("memory.swappiness has no cgroup v2 equivalent; ignored")
        if r.memory_disable_oom_killer:
            warnings.append("memory.disableOOMKiller has no cgroup v2 equivalent; ignored")
        if r.memory_use_hierarchy is False:
            warnings.append("memory.useHierarchy false: cgroup v2 is always hierarchical; ignored")
        limit, swap = r.memory_limit or 0, r.memory_swap or 0
        if not (limit or swap or r.memory_reservation):
            return
        self._need(ctrls, "memory", "memory limits")
        if update:
            swap = self.kept_swap_total(r) or swap
        if r.memory_check_before_update and limit > 0:
            usage = self._read("memory.current")
            if usage is not None and usage.isdigit() and int(usage) >= limit:
                raise SystemError_(f"rejecting memory limit {limit} below current usage {usage}",
                                   errno.EBUSY)
        mem_for_swap = limit
        if update and swap and not limit:
            # A new swap total alone is relative to the memory limit already in place.
            cur = self._read("memory.max")
            mem_for_swap = int(cur) if cur and cur.isdigit() else -1
        swap_v2 = conv.swap_to_v2(swap, mem_for_swap)
        swap_text = conv.limit_v2(swap_v2) if swap_v2 else ("0" if swap > 0 else "")
        if swap_text:
            if not os.path.exists(os.path.join(self.dir, "memory.swap.max")):
                raise UnsupportedError("cannot set memory.swap: this kernel has no swap "
                                       "accounting (no memory.swap.max)")
            self._write("memory.swap.max", swap_text)
        if limit:
            try:
                write(os.path.join(self.dir, "memory.max"), conv.limit_v2(limit))
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot set memory.max to {limit}", exc) from None
        if r.memory_reservation:
            self._write("memory.low", conv.limit_v2(r.memory_reservation))

    def _set_io(self, r: Resources, ctrls: list[str], warnings: list[str]) -> None:
        from pyrunc.cgroups import resources as conv
        lines = conv.io_max_v2(r)
        if r.blkio_leaf_weight or any(wd.leaf_weight for wd in r.blkio_weight_device):
            warnings.append("blockIO leaf weights have no cgroup v2 equivalent; ignored")
        if not (r.blkio_weight or any(wd.weight for wd in r.blkio_weight_device) or lines):
            return
        self._need(ctrls, "io", "blockIO")
        bfq = os.path.exists(os.path.join(self.dir, "io.bfq.weight"))
        if r.blkio_weight:
            if bfq:
                self._write("io.bfq.weight", str(r.blkio_weight))
            else:
                self._write("io.weight", str(conv.blkio_weight_to_io_weight(r.blkio_weight)))
        for wd in r.blkio_weight_device:
            if wd.weight:
                if bfq:
                    self._write("io.bfq.weight", f"{wd.major}:{wd.minor} {wd.weight}",
                                hint=f"device {wd.major}:{wd.minor} must use the bfq scheduler")
                else:
                    self._write("io.weight", f"{wd.major}:{wd.minor} "
                                f"{conv.blkio_weight_to_io_weight(wd.weight)}",
                                hint=f"device {wd.major}:{wd.minor} needs io.cost enabled")
        for line in lines:
            self._write("io.max", line)

    def _set_cpu(self, r: Resources, ctrls: list[str], update: bool) -> None:
        from pyrunc.cgroups import resources as conv
        if r.cpu_realtime_runtime or r.cpu_realtime_period:
            raise UnsupportedError("cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no "
                                   "real-time group scheduling")
        quota, period = r.cpu_quota, r.cpu_period
        if not (r.cpu_shares or quota or period or r.cpu_burst is not None or r.cpu_idle is not None):
            return
        self._need(ctrls, "cpu", "cpu limits")
        if r.cpu_shares:
            self._write("cpu.weight", str(conv.shares_to_weight(r.cpu_shares)))
        if update and bool(quota) != bool(period):
            # cpu.max holds both: keep the half this request does not give.
            cur = (self._read("cpu.max") or "max 100000").split()
            if not quota:
                quota = -1 if cur[0] == "max" else int(cur[0])
            if not period and len(cur) > 1:
                period = int(cur[1])
        value = conv.cpu_max(quota, period)
        if value is not None:
            self._write("cpu.max", value)
        if r.cpu_burst is not None:
            if not os.path.exists(os.path.join(self.dir, "cpu.max.burst")):
                raise UnsupportedError("cannot set cpu.burst: this kernel has no cpu.max.burst")
            self._write("cpu.max.burst", str(r.cpu_burst))
        if r.cpu_idle is not None:
            if not os.path.exists(os.path.join(self.dir, "cpu.idle")):
                raise UnsupportedError("cannot set cpu.idle: this kernel has no cpu.idle")
            self._write("cpu.idle", str(r.cpu_idle))

    def _set_unified(self, unified: tuple[tuple[str, str], ...], ctrls: list[str]) -> None:
        for key, value in unified:
            if "/" in key or key in (".", ".."):
                raise SpecError(f"linux.resources.unified: {key!r} must be a file name")
            ctrl, dot, _param = key.partition(".")
            if not dot:
                raise SpecError(f"linux.resources.unified: {key!r} is not CONTROLLER.PARAMETER")
            if ctrl not in ctrls and ctrl != "cgroup":
                raise UnsupportedError(f"linux.resources.unified: {key!r} cannot be set: the "
                                       f"{ctrl} controller is not available in cgroup {self.path}")
            try:
                write(os.path.join(self.dir, key), value)
            except OSError as exc:
                raise SystemError_.from_oserror(
                    f"linux.resources.unified: cannot set {key} to {value!r}", exc) from None

    def _set_devices(self, rules: tuple[DeviceRule, ...]) -> None:
        """Load the allow-list as an eBPF program and make it the cgroup's only device program.

        With exactly one old program (ours, from create) it is swapped atomically
        (BPF_F_REPLACE); otherwise the new one is attached first and the old ones
        detached after, so there is never a moment without a filter."""
        from pyrunc.cgroups import devices as devrules
        from pyrunc.linux import syscalls as sc
        state = devrules.DeviceState.from_rules(rules)
        code = devrules.assemble(devrules.program(state))
        dirfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        prog = -1
        old_fds: list[int] = []
        try:
            try:
                old_ids = sc.bpf_prog_query(dirfd, sc.BPF_CGROUP_DEVICE)
                for prog_id in old_ids:
                    try:
                        old_fds.append(sc.bpf_prog_get_fd_by_id(prog_id))
                    except OSError as exc:
                        if exc.errno not in (errno.ENOENT, errno.EPERM, errno.EACCES):
                            raise
                prog = sc.bpf_prog_load(sc.BPF_PROG_TYPE_CGROUP_DEVICE, code, devrules.LICENSE,
                                        PROG_NAME)
                if len(old_fds) == 1:
                    try:
                        sc.bpf_prog_attach(dirfd, prog, sc.BPF_CGROUP_DEVICE,
                                           sc.BPF_F_ALLOW_MULTI | sc.BPF_F_REPLACE, old_fds[0])
                        return
                    except OSError as exc:
                        if exc.errno != errno.EINVAL:  # EINVAL: a kernel without BPF_F_REPLACE
                            raise
                sc.bpf_prog_attach(dirfd, prog, sc.BPF_CGROUP_DEVICE, sc.BPF_F_ALLOW_MULTI)
                for fd in old_fds:
                    sc.bpf_prog_detach(dirfd, fd, sc.BPF_CGROUP_DEVICE)
            except OSError as exc:
                raise SystemError_.from_oserror(
                    f"cannot install the device filter on cgroup {self.path}", exc) from None
        finally:
            for fd in old_fds + ([prog] if prog >= 0 else []) + [dirfd]:
                os.close(fd)

    def device_programs(self) -> int:
        """How many device programs the cgroup has attached (for tests and diagnostics)."""
        from pyrunc.linux import syscalls as sc
        dirfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return len(sc.bpf_prog_query(dirfd, sc.BPF_CGROUP_DEVICE))
        finally:
            os.close(dirfd)

    # -- freezer --------------------------------------------------------------------------

    def freeze(self, frozen: bool) -> None:
        want = "1" if frozen else "0"
        write(os.path.join(self.dir, "cgroup.freeze"), want)
        events = os.path.join(self.dir, "cgroup.events")
        for _ in range(1000):
            if f"frozen {want}" in read(events):
                return
            time.sleep(0.001)
        raise SystemError_(f"cgroup {self.dir} did not {'freeze' if frozen else 'thaw'}", errno.EBUSY)

    def is_frozen(self) -> bool:
        try:
            return read(os.path.join(self.dir, "cgroup.freeze")).strip() == "1"
        except OSError:
            return False

    # -- queries --------------------------------------------------------------------------

    def pids(self) -> list[int]:
        return procs_below(self.dir)

    def occupants(self) -> list[int]:
        return self.pids()  # one unified directory

    def oom_killed(self) -> bool:
        return count_in(os.path.join(self.dir, "memory.events"), "oom_kill") > 0

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def stats(self) -> dict[str, Any]:
        from pyrunc.cgroups import stats as statsmod
        def reader(name: str) -> str | None:
            try:
                return read(os.path.join(self.dir, name))
            except OSError:
                return None
        return statsmod.v2(reader, statsmod.hugepage_sizes())

    def oom_watcher(self) -> "V2OomWatcher":
        return V2OomWatcher(self.dir)

    def destroy(self, kill: bool = True) -> None:
        from pyrunc.cgroups.common import kill_all_and_rmdir
        kill_all_and_rmdir(self, [self.dir], kill=kill)


class V2OomWatcher:
    """memory.events "oom" and cgroup.events "populated", woken by kernfs (POLLPRI)."""

    def __init__(self, cgdir: str) -> None:
        self.fds: list[int] = []
        try:
            for name in ("memory.events", "cgroup.events"):
                self.fds.append(os.open(os.path.join(cgdir, name), os.O_RDONLY | os.O_CLOEXEC))
        except OSError as exc:
            self.close()
            raise SystemError_.from_oserror(f"cannot watch {cgdir} for OOM events", exc) from None
        self.ooms = 0
        self.ooms = self._counts()[0]

    def _counts(self) -> tuple[int, bool]:
        """(oom count, populated); reading also re-arms POLLPRI."""
        from pyrunc.cgroups import stats as statsmod
        try:
            mem = statsmod.flat_keyed(os.pread(self.fds[0], 4096, 0).decode())
            cg = statsmod.flat_keyed(os.pread(self.fds[1], 4096, 0).decode())
        except OSError:  # ENODEV: the cgroup was removed
            return self.ooms, False
        return mem.get("oom", 0), cg.get("populated", 1) == 1

    def wait(self, timeout: float) -> tuple[int, bool]:
        poller = select.poll()
        for fd in self.fds:
            poller.register(fd, select.POLLPRI | select.POLLERR)
        poller.poll(max(0, int(timeout * 1000)))
        ooms, populated = self._counts()
        new, self.ooms = max(0, ooms - self.ooms), ooms
        return new, not populated

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
