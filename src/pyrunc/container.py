"""A container as recorded on disk, with its status derived from the kernel each time."""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is for the type checker only (it costs hot commands ~5 ms)

from pyrunc import OCI_VERSION
from pyrunc.linux import procfs
from pyrunc.state import Record, StateStore
from pyrunc.status import Status

if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import Manager


class Container:
    def __init__(self, store: StateStore, record: Record) -> None:
        self.store = store
        self.record = record

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def pid(self) -> int:
        return self.record.pid

    @classmethod
    def load(cls, store: StateStore, container_id: str) -> "Container":
        return cls(store, store.load(container_id))

    def cgroup(self) -> Manager:
        from pyrunc.cgroups import load
        return load(self.record.cgroup_path, self.record.unit_invocation)

    def alive(self) -> bool:
        return procfs.is_same_process(self.record.pid, self.record.start_time)

    def status(self) -> str:
        """Derived: same init alive? still waiting on the exec fifo? cgroup frozen?"""
        if self.record.pid == 0:
            return Status.CREATING if self.store.is_locked(self.id) else Status.STOPPED
        if not self.alive():
            return Status.STOPPED
        if not self.record.ready and self.store.is_locked(self.id):
            return Status.CREATING
        # (Not ready and not locked: the create died, but its init lives on, waiting on the
        # fifo or about to notice and exit: created in all but name, and deletable as such.)
        # Frozen first, as runc: a created container can be paused too (and resumed, created)
        if self.record.cgroup_path and self.cgroup().is_frozen():
            return Status.PAUSED
        if _init_waits_on(self.store.fifo(self.id)):
            return Status.CREATED
        return Status.RUNNING

    def state(self) -> dict[str, Any]:
        """The runtime-spec state JSON, plus runc's rootfs/created/owner."""
        status = self.status()
        r = self.record
        out: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": r.id,
            "pid": r.pid if status not in (Status.STOPPED, Status.CREATING) else 0,
            "status": status,
            "bundle": r.bundle,
            "rootfs": r.rootfs,
            "created": r.created,
            "owner": r.owner,
        }
        if r.annotations:
            out["annotations"] = r.annotations
        return out


def _init_waits_on(fifo: str) -> bool:
    """Whether an init still holds the exec fifo, waiting for its go byte.

    The fifo existing is not enough: a `start` killed after the init took the byte (and
    closed the fifo) but before unlinking it leaves one behind with nobody reading it. A
    non-blocking open for writing tells: it fails with ENXIO when there is no reader."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # ENOENT: started; ENXIO: the init has taken the byte
        return False
    os.close(fd)
    return True
