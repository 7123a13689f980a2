"""create+start+delete with the systemd cgroup driver (`--systemd-cgroup`), pyrunc beside runc,
and the same with the cgroupfs driver in the same boot (what the driver itself costs).

systemd runs only in the guest of tests/vm/run-systemd-host.sh here, so `bench/systemd.sh`
boots that guest and runs this in it; anywhere systemd is PID 1, run it directly:

    sudo python3 bench/systemd.py --pyrunc PATH [--runc PATH] [-n 5] --rootfs DIR

Each iteration: a fresh id and scope (system.slice:pyrunc-bench:<id>; cgroupfs:
/pyrunc-bench/<id>), `create`, `start` of /bin/true, wait for it to stop, `delete`; the
runtimes and drivers alternate, so drift hits all. Prints one line per runtime and driver: the
median and min of the whole cycle in ms, then the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid


DRIVERS = ("systemd", "cgroupfs")


def cycle(binary: str, root: str, bundle: str, driver: str) -> float:
    """One create+start+delete, in seconds."""
    cid = "b" + uuid.uuid4().hex[:12]
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    systemd = driver == "systemd"
    cfg["linux"]["cgroupsPath"] = (f"system.slice:pyrunc-bench:{cid}" if systemd
                                   else f"/pyrunc-bench/{cid}")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    base = [binary, "--root", root, *(["--systemd-cgroup"] if systemd else [])]
    t0 = time.perf_counter()
    subprocess.run([*base, "create", "--bundle", bundle, cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    subprocess.run([*base, "start", cid], check=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out = subprocess.run([*base, "state", cid], capture_output=True, text=True).stdout
        if '"stopped"' in out:
            break
        time.sleep(0.01)
    subprocess.run([*base, "delete", "--force", cid], check=True)
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pyrunc", required=True)
    p.add_argument("--runc", default=shutil.which("runc"))
    p.add_argument("--rootfs", required=True, help="a busybox rootfs (tests/.cache/rootfs-*)")
    p.add_argument("-n", type=int, default=5)
    a = p.parse_args()
    if not os.path.isdir("/run/systemd/system"):
        p.error("systemd is not PID 1 here: run bench/systemd.sh")
    work = tempfile.mkdtemp(prefix="pyrunc-bench-sd.")
    runtimes = {"pyrunc": a.pyrunc, **({"runc": a.runc} if a.runc else {})}
    samples: dict[tuple[str, str], list[float]] = {(n, d): [] for n in runtimes for d in DRIVERS}
    for name, binary in runtimes.items():
        bundle = os.path.join(work, name)
        os.makedirs(bundle)
        shutil.copytree(a.rootfs, os.path.join(bundle, "rootfs"), symlinks=True)
        subprocess.run([binary, "spec"], cwd=bundle, check=True)
        with open(os.path.join(bundle, "config.json")) as f:
            cfg = json.load(f)
        cfg["process"].update(args=["true"], terminal=False)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
    for i in range(a.n):
        order = [(n, d) for n in runtimes for d in DRIVERS]
        for name, driver in order if i % 2 == 0 else reversed(order):
            samples[name, driver].append(cycle(runtimes[name], os.path.join(work, name, "state"),
                                               os.path.join(work, name), driver))
    med = {key: statistics.median(s) for key, s in samples.items()}
    for (name, driver), s in samples.items():
        print(f"{driver} driver create+start+delete {name}: median {med[name, driver] * 1000:.0f} "
              f"ms, min {min(s) * 1000:.0f} ms (n={len(s)})")
    for driver in DRIVERS if "runc" in runtimes else ():
        print(f"{driver} driver pyrunc/runc: x{med['pyrunc', driver] / med['runc', driver]:.2f}")
    for name in runtimes:
        print(f"{name} systemd/cgroupfs: x{med[name, 'systemd'] / med[name, 'cgroupfs']:.2f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
