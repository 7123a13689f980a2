"""No cgroup: a rootless container whose user has no cgroup it may write (cgroup v1, or v2
without delegation). As runc does, it runs in the caller's cgroup, unlimited; what needs a
cgroup of its own (pause, limits, stats) is refused in one line instead of half-done."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import OomWatcher, Resources

from pyrunc.errors import SystemError_

WHY = "the container has no cgroup (rootless, and the user has no delegated cgroup it may write)"


class NullManager:
    """The Manager of a container without a cgroup; its recorded path is ""."""

    path = ""

    def create(self) -> None:
        pass

    def join(self, defer: bool = False) -> None:
        pass

    def adopt(self, pid: int) -> None:
        pass

    def set(self, resources: Resources, update: bool = False) -> list[str]:
        raise SystemError_(f"cannot set resources: {WHY}")

    def sub(self, paths: dict[str, str]) -> NullManager:
        raise SystemError_(f"--cgroup: {WHY}")

    def freeze(self, frozen: bool) -> None:
        raise SystemError_(f"cannot {'pause' if frozen else 'resume'}: {WHY}")

    def is_frozen(self) -> bool:
        return False

    def pids(self) -> list[int]:
        return []

    def occupants(self) -> list[int]:
        return []

    def dirs(self) -> list[str]:
        return []

    def exists(self) -> bool:
        return False

    def oom_killed(self) -> bool:
        return False

    def stats(self) -> dict[str, Any]:
        raise SystemError_(f"no statistics: {WHY}")

    def oom_watcher(self) -> OomWatcher:
        raise SystemError_(f"no events: {WHY}")

    def destroy(self, kill: bool = True) -> None:
        pass
