#!/usr/bin/env bash
# run-v2.sh - run the cgroup_v2 integration tests in a pure cgroup v2 QEMU guest, in ONE boot.
#
# Usage: tests/vm/run-v2.sh [PYTEST ARGS...]
#   default: -m cgroup_v2 tests/integration
#
# The host here is hybrid (v1 controllers), so the v2 code paths (unified hierarchy, eBPF
# device filter, cgroup.freeze, io.max, memory.events) only run in a guest booted with
# cgroup_no_v1=all (/work/shared/vm/run-in-vm.sh). The guest is emulated and slow: every
# runtime call takes seconds, so the v2 tests share one container and this script builds
# everything it can on the host first (the checkout into a scratch dir, the test rootfs).
#
# Environment:
#   PYRUNC_BIN      runtime to test (default: this checkout, built into a scratch dir)
#   PYRUNC_PYTHON   interpreter with pyrunc's dependencies (default /opt/pyrunc/bin/python)
#   PYTEST_PYTHON   interpreter with pytest (default: PYRUNC_PYTHON, the venv setup.sh --test made;
#                   never whatever python3 a machine happens to have on PATH)
#   RUN_IN_VM       the guest runner (default /work/shared/vm/run-in-vm.sh)
#   RUN_IN_VM_ARGS  more options for it (run-systemd-host.sh passes --systemd)
#   V2_TIMEOUT      seconds before the guest is killed (default 330)
#   V2_GUEST_SCRIPT a script the guest runs (with the arguments) instead of pytest
#                   (run-systemd-host.sh: tests/vm/systemd-host-guest.sh)
#
# Exit status: pytest's (0 = all passed); 124 guest timeout; 125 the guest failed to run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
vm=${RUN_IN_VM:-/work/shared/vm/run-in-vm.sh}
pyrunc_python=${PYRUNC_PYTHON:-/opt/pyrunc/bin/python}
pytest_python=${PYTEST_PYTHON:-$pyrunc_python}
[[ -x $pytest_python ]] || { echo "run-v2: no interpreter at $pytest_python (run scripts/setup.sh --test)" >&2; exit 125; }
start=$SECONDS

# A scratch dir on the host's root filesystem: the guest sees it (read-only), unlike /tmp.
scratch=$(mktemp -d /var/tmp/pyrunc-v2.XXXXXX)
chmod 755 "$scratch"   # tests that run the runtime as an unprivileged user need to reach it
trap 'rm -rf "$scratch"' EXIT
if [[ -z ${PYRUNC_BIN:-} ]]; then
    echo "run-v2: building $repo into $scratch" >&2
    "$pyrunc_python" -m pip install -q --disable-pip-version-check --no-deps \
        --no-build-isolation --target "$scratch/lib" "$repo" >"$scratch/build.log" 2>&1 ||
        { cat "$scratch/build.log" >&2; exit 1; }
    cat >"$scratch/pyrunc" <<EOF
#!/bin/sh
PYTHONPATH=$scratch/lib exec $pyrunc_python -c 'import sys; sys.argv[0] = "pyrunc"; from pyrunc.cli.main import main; main()' "\$@"
EOF
    chmod 755 "$scratch/pyrunc"
    PYRUNC_BIN=$scratch/pyrunc
fi
export PYRUNC_BIN

# The busybox rootfs the tests copy: built here, not over the guest's slow 9p mount.
"$pytest_python" - <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from integration.helpers import build_rootfs_cache
build_rootfs_cache(Path("tests/.cache"))
EOF

(($# == 0)) && [[ -z ${V2_GUEST_SCRIPT:-} ]] && set -- -m cgroup_v2 tests/integration
echo "run-v2: booting the cgroup v2 guest (host prep took $((SECONDS - start)) s)" >&2
guest_script=$(cat <<'EOF'
set -u
# brd gives the tests a block device of their own (io.max, a device to deny and allow)
modprobe brd rd_nr=1 rd_size=8192 2>/dev/null || echo "run-v2: no brd module" >&2
[ -n "${V2_GUEST_SCRIPT:-}" ] && exec bash "$V2_GUEST_SCRIPT" "$@"
echo "run-v2 guest: $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # hypothesis, benchmark: seconds of imports here
exec "$PYTEST_PYTHON" -m pytest -p no:cacheprovider -v -rs --durations=10 "$@"
EOF
)
rc=0
read -ra vm_args <<< "${RUN_IN_VM_ARGS:-}"
PYTEST_PYTHON=$pytest_python "$vm" "${vm_args[@]}" --timeout "${V2_TIMEOUT:-330}" -- \
    bash -c "$guest_script" run-v2 "$@" || rc=$?
echo "run-v2: exit status $rc after $((SECONDS - start)) s" >&2
exit "$rc"
