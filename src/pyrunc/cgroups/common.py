"""Teardown shared by both versions: empty the cgroup, then remove its directories."""

from __future__ import annotations

import errno
import os
import time

import _signal as signal  # `signal` without its enums: `delete` comes through here

TYPE_CHECKING = False  # typing costs `delete` ~20 ms; only the type checker needs it

from pyrunc.errors import SystemError_

if TYPE_CHECKING:
    from pyrunc.cgroups import Manager


def kill_all_and_rmdir(mgr: "Manager", dirs: list[str], timeout: float = 5.0,
                       kill: bool = True) -> None:
    """With `kill` False nothing is signalled: a busy directory is retried a moment (the
    container's last processes being reaped), then refused."""
    deadline = time.monotonic() + (timeout if kill else min(timeout, 1.0))
    if kill and mgr.exists() and mgr.pids():
        if mgr.is_frozen():
            mgr.freeze(False)
        for pid in mgr.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    from pyrunc.cgroups import dirs_below
    # Sub-cgroups (exec --cgroup's, or the container's own) go first: rmdir wants leaves.
    for d in [sub for top in dirs for sub in dirs_below(top)] + dirs:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise SystemError_.from_oserror(f"cannot remove cgroup {d}", exc) from None
                for pid in mgr.pids() if kill else ():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.005)
