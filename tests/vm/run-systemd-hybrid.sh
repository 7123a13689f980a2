#!/usr/bin/env bash
# run-systemd-hybrid.sh - a systemd host on cgroup v1 (hybrid) in ONE emulated boot: the host's
# systemd 252 as PID 1 with systemd.unified_cgroup_hierarchy=0 (tests/vm/run-in-vm.sh --systemd
# --cgroup hybrid: every v1 controller a hierarchy of its own, name=systemd, and the cgroup2
# hierarchy at /sys/fs/cgroup/unified; the guest checks that this is what it got).
#
# Usage: bash tests/vm/run-systemd-hybrid.sh [PYTEST ARGS...]
#   default: the phases of tests/vm/systemd-hybrid.list (tests/vm/systemd-host-guest.sh):
#     systemd   the systemd driver on v1 (runc's legacy manager: the scope's directory in every
#               hierarchy, systemd's and pyrunc's): test_systemd_cgroup.py, the v1 limit, device,
#               update, freezer, events/stats and killed-create tests of test_cgroups.py, exec
#               --cgroup, with PYRUNC_TEST_CGROUP_DRIVER=systemd
#     cgroupfs  a few v1 tests on the cgroupfs driver, on a host whose v1 roots systemd owns
#   with arguments: one pytest with them, e.g. to iterate on one test:
#     PYRUNC_TEST_CGROUP_DRIVER=systemd bash tests/vm/run-systemd-hybrid.sh tests/integration/test_x.py::t
#
# Exit status: 0 only when every phase passed; 124 when the guest timed out; 125 when it failed
# to run (or the guest's cgroup mode is not hybrid). Time limit: SYSTEMD_HYBRID_TIMEOUT seconds
# (default 900), the guest is killed after. What runs, what is left out and the measured
# times: tests/vm/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SYSTEMD_HOST_LIST=${SYSTEMD_HOST_LIST:-$here/systemd-hybrid.list}
export SYSTEMD_HOST_PHASES=${SYSTEMD_HOST_PHASES:-systemd cgroupfs}
RUN_IN_VM=${RUN_IN_VM:-$here/run-in-vm.sh} RUN_IN_VM_ARGS="--systemd --cgroup hybrid --mem 2G" \
    V2_GUEST_SCRIPT=$here/systemd-host-guest.sh \
    V2_TIMEOUT=${SYSTEMD_HYBRID_TIMEOUT:-900} exec bash "$here/run-v2.sh" "$@"
