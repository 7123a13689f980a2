"""create+start+delete with the systemd cgroup driver (`--systemd-cgroup`), pyrunc beside runc.

systemd runs only in the guest of tests/vm/run-systemd-host.sh here, so `bench/systemd.sh`
boots that guest and runs this in it; anywhere systemd is PID 1, run it directly:

    sudo python3 bench/systemd.py --pyrunc PATH [--runc PATH] [-n 5] --rootfs DIR

Each iteration: a fresh id and scope (system.slice:pyrunc-bench:<id>), `create`, `start` of
/bin/true, wait for it to stop, `delete`; the two runtimes alternate, so drift hits both.
Prints one line per runtime: the median and min of the whole cycle in ms.
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


def cycle(binary: str, root: str, bundle: str) -> float:
    """One create+start+delete, in seconds."""
    cid = "b" + uuid.uuid4().hex[:12]
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["linux"]["cgroupsPath"] = f"system.slice:pyrunc-bench:{cid}"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    base = [binary, "--root", root, "--systemd-cgroup"]
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
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
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
        order = list(runtimes.items()) if i % 2 == 0 else list(reversed(runtimes.items()))
        for name, binary in order:
            samples[name].append(cycle(binary, os.path.join(work, name, "state"),
                                       os.path.join(work, name)))
    for name, s in samples.items():
        print(f"systemd driver create+start+delete {name}: median {statistics.median(s) * 1000:.0f} ms, "
              f"min {min(s) * 1000:.0f} ms (n={len(s)})")
    if "runc" in samples:
        ratio = statistics.median(samples["pyrunc"]) / statistics.median(samples["runc"])
        print(f"pyrunc/runc: x{ratio:.2f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
