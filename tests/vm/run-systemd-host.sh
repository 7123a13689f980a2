#!/usr/bin/env bash
# run-systemd-host.sh - the systemd host: a pure cgroup v2 QEMU guest with the host's systemd as
# PID 1 and a system bus (tests/vm/run-in-vm.sh --systemd: Debian's systemd 252,
# cgroup_no_v1=all, dbus.socket/dbus.service up before the tests start), in ONE boot; the
# systemd cgroup driver's tests run in it.
#
# Usage: tests/vm/run-systemd-host.sh [PYTEST ARGS...]
#   default: tests/integration/test_systemd_cgroup.py tests/integration/test_features.py
#
# The build host has no systemd running, so the driver's real path only runs here. Everything
# else (the build into a scratch dir, the rootfs, the interpreter, the exit status) is
# run-v2.sh's, which this calls with RUN_IN_VM_ARGS=--systemd. The guest is emulated (TCG):
# systemd's boot takes ~60 s, each test 30-40 s; SYSTEMD_HOST_TIMEOUT (default 900 s) bounds it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
(($# == 0)) && set -- tests/integration/test_systemd_cgroup.py tests/integration/test_features.py
RUN_IN_VM=${RUN_IN_VM:-$here/run-in-vm.sh} RUN_IN_VM_ARGS=--systemd \
    V2_TIMEOUT=${SYSTEMD_HOST_TIMEOUT:-900} exec bash "$here/run-v2.sh" "$@"
