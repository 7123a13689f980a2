"""Container status values (the runtime-spec's strings, plus runc's "paused")."""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value
