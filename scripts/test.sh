#!/usr/bin/env bash
# Everything, on a fresh Debian 12 machine as root: install, then every test suite.
#   unit + integration + clients (pytest), type check (mypy), conformance (runtime-tools),
#   cgroup v2 (a QEMU guest), the systemd host (a QEMU guest with systemd as PID 1, cgroup v2),
#   the systemd hybrid host (the same on cgroup v1 + unified),
#   fresh-debian12 and fresh-debian13 (scripts/fresh.sh).
# PYRUNC_SKIP_CONFORMANCE=1, PYRUNC_SKIP_VM=1 (the guests), PYRUNC_SKIP_FRESH=1 leave those out.
# Each suite runs even when an earlier one failed; the exit status says whether all passed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
prefix=${PYRUNC_PREFIX:-/opt/pyrunc}

"$here/scripts/setup.sh" --test || { echo "setup failed" >&2; exit 1; }
if [[ -x tests/clients/setup.sh ]]; then
    tests/clients/setup.sh || { echo "client engines setup failed" >&2; exit 1; }
fi

export PYRUNC_BIN="$prefix/bin/pyrunc"
py="$prefix/bin/python"
failed=()

echo "== mypy"
"$py" -m mypy src/pyrunc || failed+=(mypy)

echo "== pytest: unit, integration, clients"
# tests/scripts (fresh.sh interrupted) runs with the fresh suites below, in a pytest of its own:
# it signals a process group as a terminal would, which wants a process no other test touched.
"$py" -m pytest -q -p no:cacheprovider --ignore=tests/scripts tests || failed+=(pytest)

if [[ -x conformance/run.sh && ${PYRUNC_SKIP_CONFORMANCE:-0} != 1 ]]; then
    echo "== conformance: runtime-tools validation suite"
    RUNTIME="$PYRUNC_BIN" conformance/run.sh || failed+=(conformance)
fi

if [[ -x tests/vm/run-v2.sh && ${PYRUNC_SKIP_VM:-0} != 1 ]]; then
    echo "== cgroup v2: the cgroup_v2 tests in a pure cgroup v2 QEMU guest"
    PYRUNC_PYTHON="$py" tests/vm/run-v2.sh || failed+=(cgroup-v2)
fi

# systemd as PID 1 on pure cgroup v2 (the standard host): an integration subset on both cgroup
# drivers, podman and dockerd with their systemd managers; one emulated boot, ~25 min.
if [[ -x tests/vm/run-systemd-host.sh && ${PYRUNC_SKIP_VM:-0} != 1 ]]; then
    echo "== systemd host: tests/vm/systemd-host.list in a QEMU guest with systemd as PID 1"
    t0=$SECONDS
    PYRUNC_PYTHON="$py" tests/vm/run-systemd-host.sh || failed+=(systemd-host)
    echo "systemd-host: $((SECONDS - t0)) s"
fi

# systemd as PID 1 on cgroup v1 (hybrid): the systemd driver's legacy manager, the v1 cgroup
# tests on it and a few on cgroupfs; one emulated boot, ~8 min (tests/vm/README.md).
if [[ -x tests/vm/run-systemd-hybrid.sh && ${PYRUNC_SKIP_VM:-0} != 1 ]]; then
    echo "== systemd hybrid: tests/vm/systemd-hybrid.list in a QEMU guest, systemd on cgroup v1"
    t0=$SECONDS
    PYRUNC_PYTHON="$py" tests/vm/run-systemd-hybrid.sh || failed+=(systemd-hybrid)
    echo "systemd-hybrid: $((SECONDS - t0)) s"
fi

# The README's first command on new Debian 12 and 13 hosts (debootstrap chroots; the rootfs
# is cached in /var/cache/pyrunc-fresh): ~4-5 min each on a new machine, ~2 min warm.
if [[ ${PYRUNC_SKIP_FRESH:-0} != 1 ]]; then
    echo "== fresh-interrupt: scripts/fresh.sh interrupted leaves nothing behind"
    "$py" -m pytest -q -p no:cacheprovider tests/scripts || failed+=(fresh-interrupt)
    for release in debian12 debian13; do
        echo "== fresh-$release: scripts/demo.sh on a new $release host (scripts/fresh.sh)"
        t0=$SECONDS
        bash scripts/fresh.sh "$release" || failed+=("fresh-$release")
        echo "fresh-$release: $((SECONDS - t0)) s"
    done
fi

if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all suites passed"
