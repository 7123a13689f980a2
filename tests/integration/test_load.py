"""Load: 50 containers running at once, then 200 lifecycles one after another.

The runtime exits after every command, so a leak shows on the host: a state dir, a mount,
a cgroup, a process or zombie left over, or an fd the containers inherit. Both tests watch
exactly their own things (other suites may run beside them) and must finish well within
three minutes together.
"""

from __future__ import annotations

import pytest

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .conftest import Sandbox
from .helpers import (Bundle, Runtime, cgroup_dirs, mounts_under, new_cgroups_path, reap_children,
                      sandbox_pids)

FIFTY = 50
SEQUENTIAL = 200
WORKERS = 6


def _zombie_children() -> list[int]:
    me = str(os.getpid())
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] == b"Z" and fields[1].decode() == me:
            out.append(int(entry))
    return out


def _shared_rootfs_bundles(sandbox: Sandbox, n: int, args: list[str]) -> list[Bundle]:
    """n bundles over one rootfs (read-only in the config), each with its own cgroupsPath."""
    first = sandbox.bundle(args)
    bundles = [first]
    for i in range(1, n):
        config = json.loads(json.dumps(first.config))
        config["root"]["path"] = str(first.rootfs)
        spec_path, cg = new_cgroups_path()
        config["linux"]["cgroupsPath"] = spec_path
        path = sandbox.tmp / "bundles" / f"load{i}"
        path.mkdir(parents=True)
        b = Bundle(path, config, cg)
        b.write()
        sandbox.bundles.append(b)  # teardown checks and cleans its cgroup too
        bundles.append(b)
    return bundles


def test_fifty_containers_running_at_once(sandbox: Sandbox, rt: Runtime) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    bundles = _shared_rootfs_bundles(sandbox, FIFTY, ["sleep", "300"])
    ids = [sandbox.new_id() for _ in bundles]
    out = sandbox.tmp / "out"
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda bc: rt.create(bc[0], bc[1], out_dir=out, timeout=60), zip(bundles, ids)))
        starts = list(pool.map(lambda cid: rt.run_cmd("start", cid, timeout=60), ids))
    assert all(r.returncode == 0 for r in starts), [r.stderr for r in starts if r.returncode]
    t_up = time.monotonic() - t0

    listed = json.loads(rt.run_cmd("list", "--format", "json", check=True, timeout=60).stdout)
    by_id = {s["id"]: s for s in listed}
    assert sorted(by_id) == sorted(ids)
    for cid, b in zip(ids, bundles):
        st = by_id[cid]
        assert st["status"] == "running", st
        pid = st["pid"]
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00300\x00"
        assert sorted(int(f) for f in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2], \
            f"container {cid} inherited extra fds"
        procs = {int(p) for d in cgroup_dirs(b.cgroups_path)
                 for p in (d / "cgroup.procs").read_text().split()}
        assert procs == {pid}, (cid, procs)
    assert len(sandbox_pids(sandbox.id, sandbox.tmp)) == FIFTY

    t1 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        deletes = list(pool.map(lambda cid: rt.run_cmd("delete", "--force", cid, timeout=60), ids))
    assert all(r.returncode == 0 for r in deletes), [r.stderr for r in deletes if r.returncode]
    t_down = time.monotonic() - t1

    assert list(rt.root.iterdir()) == []
    assert mounts_under(sandbox.tmp) == []
    assert [b.cgroups_path for b in bundles if cgroup_dirs(b.cgroups_path)] == []
    leaks = sandbox.leaks(settle=3.0)
    assert not leaks, leaks.report()
    reap_children()
    assert _zombie_children() == []
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert t_up < 90 and t_down < 60, (t_up, t_down)


def test_two_hundred_sequential_lifecycles(sandbox: Sandbox, rt: Runtime) -> None:
    """`run` (create, start, wait, delete) 200 times over one bundle; every 25 lifecycles,
    and at the end, nothing of the finished ones may remain."""
    b = sandbox.bundle(["sh", "-c", "echo $$"])
    fds_before = len(os.listdir("/proc/self/fd"))
    t0 = time.monotonic()
    for i in range(SEQUENTIAL):
        res = rt.run(b, f"seq-{sandbox.id[:8]}-{i}", timeout=30)
        assert res.returncode == 0, (i, res.stderr)
        assert res.stdout.strip() == "1", (i, res.stdout)  # pid 1 of a fresh pid namespace
        if i % 25 == 24 or i == SEQUENTIAL - 1:
            assert list(rt.root.iterdir()) == [], f"state dirs left after {i + 1} lifecycles"
            assert mounts_under(sandbox.tmp) == [], f"mounts left after {i + 1} lifecycles"
            assert cgroup_dirs(b.cgroups_path) == [], f"cgroup left after {i + 1} lifecycles"
            assert sandbox_pids(sandbox.id, sandbox.tmp) == [], f"processes left after {i + 1}"
            assert _zombie_children() == [], f"zombies left after {i + 1} lifecycles"
            assert len(os.listdir("/proc/self/fd")) == fds_before
    elapsed = time.monotonic() - t0
    errors = [e for e in rt.log_entries() if e.get("level") == "error"]
    assert errors == [], errors[:3]
    assert elapsed < 150, f"200 lifecycles took {elapsed:.0f}s"
