#!/usr/bin/env bash
# Install pyrunc and what it needs on a Debian 12 or 13 machine, as root. Idempotent.
#   scripts/setup.sh          the runtime only
#   scripts/setup.sh --test   plus what the test suites need
#   PYRUNC_PREFIX=/opt/x PYRUNC_LINK=0 scripts/setup.sh   another install, /usr/local/bin untouched
#   PYTHON=/usr/bin/python3.12 scripts/setup.sh   another interpreter (>= 3.11, with its headers)
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

die() { echo "setup.sh: $*" >&2; exit 1; }
# Build: gcc and headers for the C core (cffi) and python-prctl (libcap). Run: busybox for demos;
# uidmap (newuidmap/newgidmap, Debian 12 and 13 alike) for rootless containers mapping more
# than the user's own id.
apt_install gcc libc6-dev libcap-dev libseccomp-dev busybox-static iproute2 procps util-linux uidmap
if ((want_test)); then
    # The other runtimes, to compare against (bench) and to prove the tests against.
    apt_install runc crun hyperfine time
fi

# Python: the release's own python3 (Debian 12: 3.11, Debian 13: 3.13), with venv and headers.
# Debian's builds (PGO and LTO, libpython linked in) start in ~11 ms here where a default
# source build (pyenv's) takes ~14-17 ms, on every runtime call; so never python3 on PATH.
# A release whose python3 is older than 3.11 gets its python3.11 packages where apt has them.
py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "?"; }
release=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-$ID $VERSION_ID}") || release="this system"
if [[ -n ${PYTHON:-} ]]; then
    py=$(command -v "$PYTHON") || die "PYTHON=$PYTHON: no such interpreter"
    py_ok "$py" || die "PYTHON=$PYTHON is Python $(py_version "$py"); pyrunc needs 3.11 or newer"
else
    apt_install python3 python3-venv python3-dev
    py=/usr/bin/python3
    if ! py_ok "$py"; then
        old=$(py_version "$py")
        apt-cache show python3.11-venv >/dev/null 2>&1 ||
            die "$release's python3 is $old and apt has no python3.11: pyrunc needs 3.11 or newer (PYTHON= names another)"
        apt_install python3.11 python3.11-venv python3.11-dev
        py=/usr/bin/python3.11
    fi
fi
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
