"""`ps ID [ps-args]` in table form: the host's ps output, filtered to the container's pids."""

from __future__ import annotations

import subprocess

from pyrunc.errors import SystemError_


def ps_table(pids: list[int], ps_args: list[str]) -> str:
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemError_(f"ps {' '.join(ps_args)}: {exc}") from None
    lines = out.splitlines()
    if not lines:
        return ""
    header = lines[0]
    cols = header.split()
    if "PID" not in cols:
        raise SystemError_("ps: the output has no PID column")
    idx = cols.index("PID")
    wanted = set(pids)
    rows = [line for line in lines[1:]
            if len(line.split()) > idx and line.split()[idx].isdigit() and int(line.split()[idx]) in wanted]
    return "\n".join([header, *rows]) + "\n"
