"""Container status values (the runtime-spec's strings, plus runc's "paused").

Plain strings, not an Enum: `enum` (with what it imports) costs the hot commands ~7 ms."""

from __future__ import annotations


class Status:
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
