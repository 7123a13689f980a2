#!/usr/bin/env bash
# Install pyrunc and what it needs on a Debian 12 machine, as root. Idempotent.
#   scripts/setup.sh          the runtime only
#   scripts/setup.sh --test   plus what the test suites need
#   PYRUNC_PREFIX=/opt/x PYRUNC_LINK=0 scripts/setup.sh   another install, /usr/local/bin untouched
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
# Python: Debian's 3.11, built with PGO and LTO and its libpython linked in, starts in ~11 ms
# here where a default source build (pyenv's) takes ~14-17 ms, on every runtime call.
apt_install gcc libc6-dev libcap-dev libseccomp-dev busybox-static iproute2 procps util-linux \
    python3.11 python3.11-venv python3.11-dev
if ((want_test)); then
    # The other runtimes, to compare against (bench) and to prove the tests against.
    apt_install runc crun hyperfine time
fi

py=${PYTHON:-/usr/bin/python3.11}
# A venv made by another interpreter (an older setup, another PYTHON) is made again.
if [[ ! -x $prefix/bin/python || $(readlink -f "$prefix/bin/python") != "$(readlink -f "$(command -v "$py")")" ]]; then
    [[ -f $prefix/pyvenv.cfg ]] && rm -rf "$prefix"  # only ever a venv of ours
    "$py" -m venv "$prefix"
fi
"$prefix/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip wheel setuptools cffi >/dev/null
extras=""
((want_test)) && extras="[test]"
"$prefix/bin/python" -m pip install -q --disable-pip-version-check "$here$extras"
# Replace pip's entry point with a native launcher (csrc/freestanding/launcher.c) that runs
# the interpreter isolated and without the site module (-IS: site's work and any .pth hooks
# would be paid on every runtime call) on pyrunc's main script, from a read-only private
# mount of the interpreter's file (launcher.c says why: CVE-2019-5736). The package
# directories are put on sys.path by hand instead of by site.
paths=$("$prefix/bin/python" -c 'import sysconfig; p = sysconfig.get_paths(); print(repr(sorted({p["purelib"], p["platlib"]})))')
python_real=$(readlink -f "$prefix/bin/python3")
main="$prefix/libexec/pyrunc-main.py"
case "$python_real$main" in
    *'"'* | *'\'*) echo "setup.sh: cannot build the launcher for paths with quotes or backslashes: $python_real $main" >&2; exit 1 ;;
esac
mkdir -p "$prefix/libexec"
cat > "$main.tmp" <<MAIN
# pyrunc's main script, run by the $prefix/bin/pyrunc launcher (written by scripts/setup.sh).
import sys
sys.path.extend($paths)
from pyrunc.cli.entry import main
main()
MAIN
mv "$main.tmp" "$main"
read -r -a cflags < "$here/csrc/freestanding/cflags"
${CC:-cc} "${cflags[@]}" -DPYRUNC_PYTHON="\"$python_real\"" -DPYRUNC_MAIN="\"$main\"" \
    -o "$prefix/bin/pyrunc.tmp" "$here/csrc/freestanding/launcher.c"
mv -f "$prefix/bin/pyrunc.tmp" "$prefix/bin/pyrunc"
# PYRUNC_LINK=0: a second install beside the main one (a work tree under test) leaves the link be.
[[ ${PYRUNC_LINK:-1} == 0 ]] || ln -sf "$prefix/bin/pyrunc" /usr/local/bin/pyrunc
echo "pyrunc installed: $("$prefix/bin/pyrunc" --version | head -1) at $prefix/bin/pyrunc"
