"""The systemd cgroup driver on cgroup v1 and hybrid hosts, as runc's legacy manager.

The unit's cgroup has one path in every hierarchy (`/system.slice/<prefix>-<name>.scope`).
systemd makes it where it manages the hierarchy (name=systemd, a hybrid host's unified one,
and with Delegate=yes cpu, cpuacct, blkio, memory, devices, pids); the rest (cpuset, with
cpus and mems copied down, freezer, net_cls, net_prio, perf_event, hugetlb, rdma, misc) is
made here, as runc does, and removed here after StopUnit. The init joins every hierarchy
itself. The limits go to systemd as its v1 properties (MemoryLimit, CPUShares,
BlockIOWeight, ...) and to the files (V1Manager); an update of the device list freezes the
container meanwhile, as runc does: systemd writes a deny-all before its allow-list. Rootless
is refused (systemd.check_host), as runc refuses it: a user manager delegates no v1
hierarchy.
"""

from __future__ import annotations

from pyrunc.cgroups.systemd import PREFIX, Unit, device_properties, resource_properties
from pyrunc.cgroups.v1 import UNIFIED, V1Manager, _read_int, hierarchies
from pyrunc.errors import SystemError_

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.spec.config import Resources


class SystemdV1Manager(Unit, V1Manager):
    """v1 cgroups (one path in each hierarchy) whose unit systemd owns."""

    def __init__(self, cgroup_path: str, unit: str = "", slice_name: str = "",
                 annotations: dict[str, str] | None = None, new: bool = False,
                 invocation: str = "") -> None:
        mounts = hierarchies()
        V1Manager.__init__(self, {ctrl: cgroup_path for ctrl in mounts}, mounts)
        self._init_unit(cgroup_path, unit, slice_name, annotations, new, invocation)

    @property
    def path(self) -> str:
        return PREFIX + self.cgroup_path

    def create(self) -> None:
        self._start_unit(v1=True)
        made = self._dir("name=systemd") or self._dir(UNIFIED)
        if made:
            self._check_started(made)
        V1Manager.create(self)  # the hierarchies systemd leaves alone (makedirs: idempotent)

    def join(self, defer: bool = False) -> None:
        V1Manager.join(self, defer)
        if not defer or self._dir(UNIFIED) is None:
            self._kill_placeholder()
        # else adopt() kills it: on a hybrid host systemd sees the scope empty in the unified
        # hierarchy, where the init is not yet

    def adopt(self, pid: int) -> None:
        V1Manager.adopt(self, pid)
        self._kill_placeholder()

    def set(self, resources: Resources, update: bool = False) -> list[str]:
        r = resources
        if r.unified:
            return V1Manager.set(self, r, update)  # refused, before systemd is asked
        if update:
            # systemd rewrites cpu.cfs_quota_us and cfs_period_us from its properties when
            # any changes: an update that gives one of them sends the other as it is
            r = self._kept_cpu(r)
        props = resource_properties(r, v1=True)
        devices = not update or bool(r.devices)  # an update without rules keeps them
        if devices:
            props = device_properties(r.devices or ()) + props
        if props:
            # Only a running container (update) can trip over systemd's deny-all: at create
            # nothing of it runs yet.
            thaw = update and devices and self._dir("freezer") is not None and not self.is_frozen()
            if thaw:
                try:
                    self.freeze(True)
                except SystemError_:
                    thaw = False  # as runc: the properties are set all the same
            try:
                # `applied`: systemd's own device writes are done before the files are
                # written (else its deny-all could land after them)
                self._set_unit_properties(props, applied=devices)
            finally:
                if thaw:
                    self.freeze(False)
        return V1Manager.set(self, r, update)

    def _kept_cpu(self, r: Resources) -> Resources:
        quota, period = r.cpu_quota, r.cpu_period
        d = self._dir("cpu")
        if (quota is None) != (period is None) and d is not None:
            if quota is None:
                quota = _read_int(d, "cpu.cfs_quota_us")
            else:
                period = _read_int(d, "cpu.cfs_period_us")
        return r._replace(cpu_quota=quota, cpu_period=period)

    def destroy(self, kill: bool = True) -> None:
        """Kill what is left (with `kill`), stop the unit, then remove the directories systemd
        does not (cpuset, freezer, ...): nothing stays in systemd or any hierarchy."""
        self._destroy_unit(self, self.dirs(), kill)
