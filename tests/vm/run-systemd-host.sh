#!/usr/bin/env bash
# run-systemd-host.sh - the standard host, systemd + pure cgroup v2, in ONE emulated boot:
# a QEMU guest with the host's systemd as PID 1 and a system bus (tests/vm/run-in-vm.sh
# --systemd: Debian's systemd 252, cgroup_no_v1=all, dbus up before the tests start).
#
# Usage: bash tests/vm/run-systemd-host.sh [PYTEST ARGS...]
#   default: the three phases of tests/vm/systemd-host.list (tests/vm/systemd-host-guest.sh):
#     cgroupfs  an integration subset with the cgroupfs driver (every file, its core tests)
#     systemd   the cgroup tests with --systemd-cgroup (PYRUNC_TEST_CGROUP_DRIVER=systemd)
#     engines   podman, cgroup_manager = "systemd": run/exec/pause/update/stop/rm via a scope
#   with arguments: one pytest with them, e.g. to iterate on one test:
#     PYRUNC_TEST_CGROUP_DRIVER=systemd bash tests/vm/run-systemd-host.sh tests/integration/test_x.py::t
#
# Exit status: 0 only when every phase passed; 124 when the guest timed out; 125 when it failed
# to run. Time limit: SYSTEMD_HOST_TIMEOUT seconds (default 3000), the guest is killed after.
#
# Why a subset: the guest is emulated (TCG, no KVM). systemd boots in ~60 s; a test that runs
# one container takes 15-35 s there (0.3-1 s on the host), a skipped test with a sandbox 4-5 s:
# the 590 integration tests would take ~3 h. tests/vm/systemd-host.list keeps each file's core
# tests (measured per test in this guest, tests/vm/README.md has the numbers); what the subset
# leaves out runs on every CI run on the host (cgroupfs, hybrid) and its v2 parts in
# tests/vm/run-v2.sh. Measured (2026-12-02, the host loaded by another TCG guest): boot ~1.5 min,
# cgroupfs 975 s (25 tests), systemd 247 s (13), engines 194 s (podman 70 s, docker 124 s):
# ~25 min in all; the per-test numbers are in tests/vm/README.md. In a CI run on a quiet host
# (2026-12-02, with the rootless, CRI and rootless-podman entries): 758 s in all, cgroupfs 484 s
# (28 tests), systemd 77 s (13), engines 175 s (podman, docker, CRI, rootless podman x2).
#
# The build host has no systemd running, so the systemd driver's real path only runs here.
# Everything else (the build into a scratch dir, the rootfs, the interpreter) is run-v2.sh's,
# which this calls with RUN_IN_VM_ARGS=--systemd and V2_GUEST_SCRIPT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUN_IN_VM=${RUN_IN_VM:-$here/run-in-vm.sh} RUN_IN_VM_ARGS="--systemd --mem 2G" \
    V2_GUEST_SCRIPT=$here/systemd-host-guest.sh \
    V2_TIMEOUT=${SYSTEMD_HOST_TIMEOUT:-3000} exec bash "$here/run-v2.sh" "$@"
