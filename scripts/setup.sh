#!/usr/bin/env bash
# Install pyrunc and what it needs on a Debian 12 machine, as root. Idempotent.
#   scripts/setup.sh          the runtime only
#   scripts/setup.sh --test   plus what the test suites need
# pyrunc goes into its own virtual environment (/opt/pyrunc by default, PYRUNC_PREFIX to
# change it): a clean site-packages keeps interpreter start-up short, which is most of a
# runtime call's latency. /usr/local/bin/pyrunc links to its entry point.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${PYRUNC_PREFIX:-/opt/pyrunc}
want_test=0
[[ ${1:-} == --test ]] && want_test=1

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ ! -f /var/lib/apt/periodic/pyrunc-updated ]] || ! apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null; then
        apt-get update -q >/dev/null
        mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/pyrunc-updated
        apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
    fi
}

# Build: gcc and headers for the C core (cffi) and python-prctl (libcap). Run: busybox for demos.
apt_install gcc libc6-dev libcap-dev libseccomp-dev busybox-static iproute2 procps util-linux
if ((want_test)); then
    # The other runtimes, to compare against (bench) and to prove the tests against.
    apt_install runc crun hyperfine time
fi

py=${PYTHON:-python3}
if [[ ! -x $prefix/bin/python ]]; then
    "$py" -m venv "$prefix"
fi
"$prefix/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip wheel setuptools cffi >/dev/null
extras=""
((want_test)) && extras="[test]"
"$prefix/bin/python" -m pip install -q --disable-pip-version-check "$here$extras"
# Replace pip's entry point with one that starts the interpreter isolated and without the
# site module (-IS): site's work (and any .pth hooks) is paid on every runtime call otherwise.
# The package directories are put on sys.path by hand instead.
paths=$("$prefix/bin/python" -c 'import sysconfig; p = sysconfig.get_paths(); print(repr(sorted({p["purelib"], p["platlib"]})))')
cat > "$prefix/bin/pyrunc.tmp" <<LAUNCHER
#!$prefix/bin/python3 -IS
# pyrunc's entry point, written by scripts/setup.sh (see there for why it is not pip's).
import sys
sys.path.extend($paths)
from pyrunc.cli.entry import main
main()
LAUNCHER
chmod 755 "$prefix/bin/pyrunc.tmp"
mv "$prefix/bin/pyrunc.tmp" "$prefix/bin/pyrunc"
ln -sf "$prefix/bin/pyrunc" /usr/local/bin/pyrunc
echo "pyrunc installed: $("$prefix/bin/pyrunc" --version | head -1) at $prefix/bin/pyrunc"
