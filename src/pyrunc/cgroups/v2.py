"""cgroup v2: one directory in the unified hierarchy."""

from __future__ import annotations

import errno
import os
import time

from pyrunc.cgroups import CGROUP_ROOT, count_in, read, write
from pyrunc.errors import SystemError_
from pyrunc.spec.config import Resources


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
                if avail:
                    wanted = " ".join("+" + c for c in avail)
                    try:
                        write(os.path.join(cur, "cgroup.subtree_control"), wanted)
                    except OSError:
                        pass  # e.g. the root cgroup of a container host; the child still works
                cur = os.path.join(cur, part)
                os.makedirs(cur, exist_ok=True)
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot create cgroup {cur}", exc) from None

    def apply(self, pid: int) -> None:
        try:
            write(os.path.join(self.dir, "cgroup.procs"), str(pid))
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot add pid {pid} to cgroup {self.dir}", exc) from None

    def set(self, resources: Resources) -> list[str]:
        """Write the limits; returns warnings for what could not be enforced."""
        r = resources
        writes: list[tuple[str, object]] = []
        if r.memory_limit is not None:
            writes.append(("memory.max", "max" if r.memory_limit < 0 else r.memory_limit))
            if r.memory_swap is not None:
                swap = r.memory_swap - r.memory_limit if r.memory_swap > 0 else "max"
                writes.append(("memory.swap.max", swap))
        if r.memory_reservation is not None:
            writes.append(("memory.low", r.memory_reservation))
        if r.cpu_shares:
            # runc's conversion of the v1 shares range [2, 262144] onto weight [1, 10000]
            writes.append(("cpu.weight", 1 + ((r.cpu_shares - 2) * 9999) // 262142))
        if r.cpu_quota is not None or r.cpu_period is not None:
            quota = "max" if r.cpu_quota is None or r.cpu_quota < 0 else r.cpu_quota
            writes.append(("cpu.max", f"{quota} {r.cpu_period or 100000}"))
        if r.cpu_cpus:
            writes.append(("cpuset.cpus", r.cpu_cpus))
        if r.cpu_mems:
            writes.append(("cpuset.mems", r.cpu_mems))
        if r.pids_limit is not None:
            writes.append(("pids.max", "max" if r.pids_limit <= 0 else r.pids_limit))
        writes.extend(r.unified)
        for name, value in writes:
            try:
                write(os.path.join(self.dir, name), str(value))
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot set {name} to {value}", exc) from None
        if r.devices and any(not d.allow for d in r.devices):
            # The eBPF device filter is not written yet: say so instead of silently allowing all.
            return ["device rules are not enforced on cgroup v2 yet (no eBPF device filter)"]
        return []

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

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in read(os.path.join(self.dir, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def oom_killed(self) -> bool:
        return count_in(os.path.join(self.dir, "memory.events"), "oom_kill") > 0

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def destroy(self) -> None:
        from pyrunc.cgroups.common import kill_all_and_rmdir
        kill_all_and_rmdir(self, [self.dir])
