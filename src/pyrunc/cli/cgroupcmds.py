"""`update` and `events`: runc's commands over a container's cgroup.

    update --resources FILE|- ID       LinuxResources JSON (what containerd and podman send)
    update --memory 512m --cpu-quota 50000 ... ID
    events [--stats] [--interval 5s] ID
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import click

from pyrunc.errors import SpecError, UnsupportedError, UsageError

if TYPE_CHECKING:
    from pyrunc.cli.main import Ctx
    from pyrunc.spec.config import Resources

CONTEXT = {"help_option_names": ["-h", "--help"]}

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A Go duration as runc's --interval takes it ("5s", "500ms", "1m30s"), in seconds.

    A bare number is taken as seconds, a leniency runc does not have."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise UsageError(f"invalid value for --interval: {text!r} (a duration like 5s or 500ms)")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise UsageError("invalid value for --interval: empty duration")
    return total


def _uint(flag: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"invalid value for --{flag}: {value!r} is not a number") from None
    if n < 0:
        raise UsageError(f"invalid value for --{flag}: {value!r} must not be negative")
    return n


def _int(flag: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"invalid value for --{flag}: {value!r} is not a number") from None


def _size(flag: str, value: str | None) -> int | None:
    from pyrunc.cgroups.resources import parse_size
    if value is None or value == "":
        return None
    return parse_size(value, f"--{flag}")


def _read_resources(source: str) -> "Resources":
    """LinuxResources JSON from a file or, for "-", stdin."""
    from pyrunc.cgroups.resources import from_json
    name = "resources (stdin)" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source) as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{name}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    return from_json(raw, name)


def _from_flags(kw: dict[str, Any]) -> "Resources":
    from pyrunc.spec.config import Resources
    if kw.get("l3_cache_schema") or kw.get("mem_bw_schema"):
        raise UnsupportedError("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported "
                               "by pyrunc")
    blkio = kw.get("blkio_weight")
    if blkio is not None and blkio != 0 and not 10 <= blkio <= 1000:
        raise UsageError(f"invalid value for --blkio-weight: {blkio} (range 10-1000)")
    pids = kw.get("pids_limit")
    return Resources(
        memory_limit=_size("memory", kw.get("memory")),
        memory_reservation=_size("memory-reservation", kw.get("memory_reservation")),
        memory_swap=_size("memory-swap", kw.get("memory_swap")),
        memory_kernel=_size("kernel-memory", kw.get("kernel_memory")),
        memory_kernel_tcp=_size("kernel-memory-tcp", kw.get("kernel_memory_tcp")),
        cpu_shares=_uint("cpu-share", kw.get("cpu_share")),
        cpu_quota=_int("cpu-quota", kw.get("cpu_quota")),
        cpu_burst=_uint("cpu-burst", kw.get("cpu_burst")),
        cpu_period=_uint("cpu-period", kw.get("cpu_period")),
        cpu_realtime_runtime=_int("cpu-rt-runtime", kw.get("cpu_rt_runtime")),
        cpu_realtime_period=_uint("cpu-rt-period", kw.get("cpu_rt_period")),
        cpu_cpus=kw.get("cpuset_cpus") or None,
        cpu_mems=kw.get("cpuset_mems") or None,
        cpu_idle=_int("cpu-idle", kw.get("cpu_idle")),
        pids_limit=pids if pids else None,
        blkio_weight=blkio if blkio else None,
    )


@click.command("update", context_settings=CONTEXT)
@click.option("-r", "--resources", "resources_file", default=None, metavar="FILE|-",
              help="LinuxResources JSON to apply ('-' for stdin); other flags are then ignored")
@click.option("--blkio-weight", type=int, default=None, help="block IO weight, 10-1000")
@click.option("--cpu-period", default=None, help="CPU CFS period (us)")
@click.option("--cpu-quota", default=None, help="CPU CFS quota (us) per period; -1: none")
@click.option("--cpu-burst", default=None, help="CPU CFS burst (us)")
@click.option("--cpu-share", "--cpu-shares", "cpu_share", default=None, help="CPU shares (relative weight)")
@click.option("--cpu-rt-period", default=None, help="real-time period (us)")
@click.option("--cpu-rt-runtime", default=None, help="real-time runtime (us) per period")
@click.option("--cpuset-cpus", default=None, help="CPUs to run on, e.g. 0-1")
@click.option("--cpuset-mems", default=None, help="memory nodes to use")
@click.option("--cpu-idle", default=None, help="1: SCHED_IDLE for the cgroup, 0: normal")
@click.option("--kernel-memory", default=None, hidden=True)
@click.option("--kernel-memory-tcp", default=None, hidden=True)
@click.option("--memory", default=None, help="memory limit (bytes or 512m, 1g; -1: none)")
@click.option("--memory-reservation", default=None, help="memory soft limit")
@click.option("--memory-swap", default=None, help="memory+swap limit; -1: unlimited swap")
@click.option("--pids-limit", type=int, default=None, help="most processes at once")
@click.option("--l3-cache-schema", default=None, hidden=True)
@click.option("--mem-bw-schema", default=None, hidden=True)
@click.argument("container_id")
@click.pass_obj
def update(obj: "Ctx", /, container_id: str, resources_file: str | None, **kw: Any) -> None:
    """Change the resource limits of a running container."""
    from pyrunc.cgroups.resources import is_empty
    resources = _read_resources(resources_file) if resources_file else _from_flags(kw)
    rt = obj.runtime()
    if is_empty(resources):
        rt.container(container_id)  # still say so when the id is unknown
        return
    rt.update(container_id, resources)


@click.command("events", context_settings=CONTEXT)
@click.option("--interval", default="5s", show_default=True, help="how often to print stats")
@click.option("--stats", "stats_only", is_flag=True, help="print the stats once and exit")
@click.argument("container_id")
@click.pass_obj
def events(obj: "Ctx", /, container_id: str, interval: str, stats_only: bool) -> None:
    """Print a container's stats and OOM events as JSON lines."""
    seconds = parse_duration(interval)
    for event in obj.runtime().events(container_id, seconds, stats_only):
        sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def register(group: click.Group) -> None:
    """Add the commands to the `pyrunc` group (called once from cli/main.py)."""
    group.add_command(update)
    group.add_command(events)
