#!/usr/bin/env bash
# systemd-host-guest.sh - the guest's side of tests/vm/run-systemd-host.sh and
# run-systemd-hybrid.sh (not run by hand).
#
# Without arguments: the phases of tests/vm/systemd-host.list, each a pytest of its own, one
# after the other in this one boot:
#   cgroupfs  the integration subset, cgroupfs driver (PYRUNC_TEST_CGROUP_DRIVER unset)
#   systemd   the cgroup tests again with PYRUNC_TEST_CGROUP_DRIVER=systemd (--systemd-cgroup,
#             system.slice:pyrunc-test:<uuid>; the tests read the scope's cgroup files)
#   engines   podman with cgroup_manager = "systemd" (tests/clients/test_systemd_podman.py)
# SYSTEMD_HOST_PHASES="systemd engines" runs only those, SYSTEMD_HOST_LIST names another list
# (run-systemd-hybrid.sh: systemd-hybrid.list). With arguments: one pytest with them
# (PYRUNC_TEST_CGROUP_DRIVER as exported), to iterate on single tests.
# Every test's time is printed as it ends (tcg_timing); exit 0 only when every phase passed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
list=${SYSTEMD_HOST_LIST:-$here/systemd-host.list}
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1   # hypothesis, benchmark: seconds of imports here
export PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH}
pytest=("$PYTEST_PYTHON" -m pytest -p no:cacheprovider -p tcg_timing -v -rs)
if [[ -e /sys/fs/cgroup/cgroup.controllers ]]; then
    cgroups="cgroup2: $(cat /sys/fs/cgroup/cgroup.controllers)"
else  # v1 (hybrid: and the unified hierarchy); bfq: the blkio weight files (test_limits_v1)
    cgroups="v1: $(cd /sys/fs/cgroup && echo *)"
    modprobe bfq 2>/dev/null || echo "systemd-host: no bfq module" >&2
fi
echo "systemd-host guest: $(uname -r), $(systemctl --version | head -n 1)," \
     "$(systemctl is-system-running 2>&1), $cgroups"
modprobe veth 2>/dev/null || echo "systemd-host: no veth module" >&2   # test_cri's CNI plugin
if (($#)); then
    exec "${pytest[@]}" "$@"
fi
failed=()
for phase in ${SYSTEMD_HOST_PHASES:-cgroupfs systemd engines}; do
    mapfile -t ids < <(awk -v p="$phase" '$1 == p { sub(/^[^ \t]+[ \t]+/, ""); print }' "$list")
    if ((${#ids[@]} == 0)); then
        echo "systemd-host: no tests for phase $phase in $list" >&2
        failed+=("$phase")
        continue
    fi
    driver=
    [[ $phase == systemd ]] && driver=systemd
    # test_cri.py (engines): containerd's CRI plugin with SystemdCgroup=true, TCG-sized timeouts
    cri=()
    [[ $phase == engines ]] && cri=(PYRUNC_CRI_SYSTEMD=1 PYRUNC_CLIENTS_TIMEOUT=300)
    echo "== systemd-host phase $phase: ${#ids[@]} entries of $(basename "$list")"
    t0=$SECONDS
    env PYRUNC_TEST_CGROUP_DRIVER=$driver "${cri[@]}" "${pytest[@]}" "${ids[@]}" || failed+=("$phase")
    echo "== systemd-host phase $phase: $((SECONDS - t0)) s"
done
if ((${#failed[@]})); then
    echo "systemd-host: FAILED phases: ${failed[*]}" >&2
    exit 1
fi
echo "systemd-host: all phases passed"
