"""Process facts from /proc, used to derive status rather than trust a file."""

from __future__ import annotations


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the comm field, which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """Field 22 (start time in clock ticks) of a live, non-zombie process; None otherwise."""
    if pid <= 0:
        return None
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_same_process(pid: int, recorded_start: int) -> bool:
    return recorded_start != 0 and start_time(pid) == recorded_start
