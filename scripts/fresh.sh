#!/usr/bin/env bash
# A fresh-machine check: the README's first command on a new Debian host, as root.
#   scripts/fresh.sh debian12|debian13
# Builds a minimal root filesystem of that release with debootstrap from the mirror this
# machine's apt uses (cached as a tarball, so later runs skip it), puts a clean `git clone` of
# this checkout's committed HEAD in it, and runs `bash scripts/demo.sh` there, chrooted, in a
# private mount namespace and a pid namespace of its own (with /proc, /sys and the host's
# cgroup mounts, /dev, a tmpfs /run). Exit 0 only when the demo container ran and printed what
# it should (its own hostname, pid 1, its mounts) and took its cgroup (/pyrunc-demo) away again.
# Whatever happens, also on SIGINT/SIGTERM, nothing is left mounted or running: the mounts
# exist only in the namespace, and killing the namespace's first process kills all in it.
#
# Environment:
#   FRESH_CACHE    the cache (default /var/cache/pyrunc-fresh): rootfs tarballs, .deb files
#   FRESH_MIRROR / FRESH_SECURITY_MIRROR   override the mirrors read from /etc/apt
#   FRESH_REBUILD=1    build the rootfs again even when cached (else: when older than
#                      FRESH_MAX_AGE_DAYS, default 14)
#   FRESH_TIMEOUT  seconds the demo may take in the chroot (default 1200)
#   FRESH_THEN='CMD'   after the demo passed, run CMD too in the chroot's checkout (e.g.
#                  'bash scripts/setup.sh --test && python3 bench/run.py --quick'). The
#                  chroot shares the host's cgroups, network and kernel, not its pids: the
#                  integration tests' reaping of other sessions' leftovers must not run there.
#   FRESH_TMPFS_SIZE   the size of the tmpfs the tree lives on (default 4g)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
self="$here/scripts/fresh.sh"
cache=${FRESH_CACHE:-/var/cache/pyrunc-fresh}
demo_cgroup=pyrunc-demo  # scripts/demo.sh's cgroupsPath, on every host hierarchy
inner_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '[fresh] %s\n' "$*" >&2; }
die() { printf 'fresh.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Inside the namespaces (pid 1 of a new pid namespace, a private mount namespace).
# ---------------------------------------------------------------------------------------------
inner() {
    local work=$1 tarball=$2 debs=$3 head=$4 timeout=$5
    shift 5
    local root=$work/root f dest
    # The whole tree on a tmpfs of this namespace: it vanishes with the namespace, and a
    # mount of its own, as a host's / is (pivot_root(2) refuses a root that is not one).
    mount -t tmpfs -o mode=755,size=${FRESH_TMPFS_SIZE:-4g} fresh "$root"
    local t0=$SECONDS
    tar -C "$root" --numeric-owner -xzf "$tarball"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    # A clean clone of what is committed here (uncommitted changes are not in it).
    git clone -q --no-hardlinks "$here" "$root/root/pyrunc"
    git -C "$root/root/pyrunc" checkout -q --detach "$head"
    # pip's configuration and the machine's own certificate authorities (public certificates,
    # as installed with update-ca-certificates), so that the package index this machine uses
    # is reached from inside as from the host.
    for f in /etc/pip.conf /etc/xdg/pip "${PIP_CONFIG_FILE:-}" "$HOME/.config/pip" "$HOME/.pip" \
        /usr/local/share/ca-certificates; do
        [[ -n $f && -e $f ]] || continue
        dest=$root${f/#$HOME//root}
        mkdir -p "$(dirname "$dest")"
        cp -rLT "$f" "$dest"
    done
    echo "$((SECONDS - t0))" >"$work/unpack-seconds"
    mount --rbind /dev "$root/dev"
    # Its own /dev/shm, as a host has: the host's holds other runs' files (test sandboxes).
    mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"
    mount -t proc -o nosuid,nodev,noexec proc "$root/proc"  # this pid namespace's
    mount --rbind /sys "$root/sys"  # /sys/fs/cgroup/* with it: the host's cgroup mounts
    mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$root/run"
    mkdir -p "$root/run/lock" "$debs/partial"
    mount --bind "$debs" "$root/var/cache/apt/archives"  # .deb files kept between runs
    local env=(/usr/bin/env -i PATH="$inner_path" HOME=/root USER=root LOGNAME=root TERM="${TERM:-dumb}" "$@")
    if compgen -G "$root/usr/local/share/ca-certificates/*" >/dev/null; then
        chroot "$root" "${env[@]}" update-ca-certificates >/dev/null 2>&1 ||
            { echo "fresh.sh: update-ca-certificates failed in the chroot" >&2; return 1; }
    fi
    # env -i: nothing of this shell's environment but pip's settings (the arguments).
    local rc=0
    timeout -k 10 "$timeout" chroot "$root" "${env[@]}" \
        /bin/bash -c 'cd /root/pyrunc && exec bash scripts/demo.sh' </dev/null 2>&1 |
        tee "$work/demo.log" || rc=$?
    cp "$root/tmp/pyrunc-demo/config.json" "$work/config.json" 2>/dev/null || true
    if ((rc == 0)) && [[ -n ${FRESH_THEN:-} ]]; then
        echo "[fresh] FRESH_THEN: $FRESH_THEN" >&2
        timeout -k 10 "$timeout" chroot "$root" "${env[@]}" \
            /bin/bash -c "cd /root/pyrunc && $FRESH_THEN" </dev/null 2>&1 | tee "$work/then.log" || rc=$?
    fi
    return "$rc"
}

if [[ ${1:-} == __inner ]]; then
    shift
    inner "$@"
    exit $?
fi

# ---------------------------------------------------------------------------------------------
# On the host.
# ---------------------------------------------------------------------------------------------
case ${1:-} in
debian12) suite=bookworm ;;
debian13) suite=trixie ;;
*) die "usage: scripts/fresh.sh debian12|debian13" ;;
esac
name=$1
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mounts)"
[[ $(uname -m) == x86_64 ]] || die "amd64 hosts only (this is $(uname -m))"
start=$SECONDS

# Run "$@" in a new private mount namespace and pid namespace. The namespace dies with its
# first process: unshare kills it when unshare dies (--kill-child), setpriv makes unshare die
# with this shell (even SIGKILLed), and the trap below kills it on SIGINT/SIGTERM.
ns_pid=""
in_ns() {
    setpriv --pdeathsig KILL unshare --mount --propagation private --pid --fork --kill-child -- "$@" &
    ns_pid=$!
    local rc=0
    wait "$ns_pid" || rc=$?
    ns_pid=""
    return "$rc"
}
kill_ns() {
    [[ -n $ns_pid ]] || return 0
    local first
    # The namespace's first process: when it dies the kernel kills everything else inside,
    # and unshare returns only once they are all gone.
    first=$(cat /proc/"$ns_pid"/task/*/children 2>/dev/null) || true
    if [[ -n $first ]]; then
        kill -KILL $first 2>/dev/null || true
    else
        kill -KILL "$ns_pid" 2>/dev/null || true
    fi
    wait "$ns_pid" 2>/dev/null || true
    ns_pid=""
}

# The host's cgroup hierarchies (the visible mount on each cgroup mount point).
cgroup_mounts() {
    awk '{type[$5] = $(NF - 2)} END {for (m in type) if (type[m] ~ /^cgroup2?$/) print m}' \
        /proc/self/mountinfo
}
demo_cgroups() {
    local m
    while read -r m; do
        [[ -d $m/$demo_cgroup ]] && echo "$m/$demo_cgroup"
    done < <(cgroup_mounts)
    true
}
# rmdir only (depth-first): a cgroup that still has processes stays, and is reported.
remove_cgroups() {
    local d left=0 try
    for d in "$@"; do
        for try in 1 2 3 4 5 6 7 8 9 10; do
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -d $d ]] || break
            sleep 0.5
        done
        [[ -d $d ]] && { log "could not remove $d (processes still inside?)"; left=1; }
    done
    return "$left"
}
mounted_under() {
    awk -v d="$1/" 'index($5, d) == 1 || $5 == substr(d, 1, length(d) - 1) {print $5}' /proc/self/mountinfo
}

# A run that was SIGKILLed leaves its tree (and maybe the demo's cgroups, listed in it).
sweep_stale() {
    local d pid
    for d in "$cache"/run/*.*; do
        [[ -d $d ]] || continue
        pid=${d##*.}
        [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null || continue
        [[ -z $(mounted_under "$d") ]] || { log "stale $d still has mounts: left alone"; continue; }
        if [[ -f $d/cgroups ]]; then
            mapfile -t owned < "$d/cgroups"
            ((${#owned[@]} == 0)) || remove_cgroups "${owned[@]}" || true
        fi
        log "removing the tree of an earlier run that was killed: $d"
        rm -rf --one-file-system "$d"
    done
}

# The mirror this machine's apt uses for $1 (debian or debian-security), from its sources.
host_mirror() {
    local want=$1 files=() f uri
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    ((${#files[@]})) || return 0
    while read -r uri; do
        uri=${uri%/}
        [[ ${uri##*/} == "$want" ]] && { echo "$uri"; return 0; }
    done < <(awk '
        /^[ \t]*#/ {next}
        /^URIs:/ {for (i = 2; i <= NF; i++) print $i; next}
        $1 == "deb" {i = 2; if ($2 ~ /^\[/) {while (i <= NF && $i !~ /\]$/) i++; i++} print $i}
    ' "${files[@]}")
}

# Install Debian packages on the host that it lacks (a fresh host has no debootstrap).
need() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]} on this host"
    local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { "${apt[@]}" update >/dev/null &&
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

build_rootfs() {
    local tarball=$1 tmp
    need debootstrap debian-archive-keyring
    tmp=$cache/run/build-$name.$$
    mkdir -p "$tmp/root"
    log "debootstrap $suite (minbase) from $mirror"
    local t0=$SECONDS
    # In a private mount namespace: debootstrap mounts /proc and /sys in the target, and an
    # interrupted one would leave them mounted on the host.
    in_ns debootstrap --variant=minbase --include=ca-certificates --components=main \
        "$suite" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
        { tail -n 20 "$tmp/debootstrap.log" >&2; die "debootstrap $suite failed (log above)"; }
    local r=$tmp/root
    # What a new host of that release has: its suite, updates and security, as the installer writes them.
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -f "$r/etc/apt/sources.list"
    # Packages installed in a chroot must not start services on the host.
    printf '#!/bin/sh\n# fresh.sh: no services in this chroot\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    echo "fresh-$name" >"$r/etc/hostname"
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r/debootstrap"
    tar -C "$r" --numeric-owner -czf "$tarball.tmp" .
    mv -f "$tarball.tmp" "$tarball"
    rm -rf --one-file-system "$tmp"
    log "rootfs built and cached in $((SECONDS - t0)) s: $tarball ($(du -h "$tarball" | cut -f1))"
}

mirror=${FRESH_MIRROR:-$(host_mirror debian)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${FRESH_SECURITY_MIRROR:-$(host_mirror debian-security)}
security=${security:-http://deb.debian.org/debian-security}

mkdir -p "$cache/run"
# One run at a time: the demo's cgroup path is fixed.
exec 9>"$cache/lock"
flock -w 1800 9 || die "another fresh.sh run holds $cache/lock"

work=$cache/run/$name.$$
root=$work/root
cleanup() {
    local rc=$?
    trap '' INT TERM
    kill_ns
    local left=()
    mapfile -t left < <(demo_cgroups)
    if ((${#left[@]})); then
        log "the demo left its cgroup behind: ${left[*]}"
        remove_cgroups "${left[@]}" || true
        ((rc)) || rc=1
    fi
    if [[ -n $(mounted_under "$work") ]]; then
        log "still mounted under $work (should be impossible):"; mounted_under "$work" >&2
        rc=1
    else
        rm -rf --one-file-system "$work" "$cache/run/build-$name.$$"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

sweep_stale
need util-linux git  # setpriv, unshare; the clone
existing=$(demo_cgroups)
[[ -z $existing ]] || die "the demo's cgroup exists already (another demo running?): $existing"

tarball=$cache/$name-$suite.tar.gz
max_age=${FRESH_MAX_AGE_DAYS:-14}
if [[ ${FRESH_REBUILD:-0} == 1 || ! -f $tarball || -n $(find "$tarball" -mtime +"$max_age") ]]; then
    t0=$SECONDS
    build_rootfs "$tarball"
    t_rootfs_kind="built in $((SECONDS - t0)) s"
else
    t_rootfs_kind=cached
fi
# pip's settings from the environment (its files are copied inside).
head=$(git -C "$here" rev-parse HEAD)
[[ -z $(git -C "$here" status --porcelain --untracked-files=no) ]] ||
    log "warning: $here has uncommitted changes; the check runs the committed HEAD ${head:0:12}"
pip_env=()
while IFS= read -r -d '' var; do
    [[ $var == PIP_* ]] && pip_env+=("$var")
done < <(env -0)

debs=$cache/debs-$name-$suite
mkdir -p "$debs" "$root"
# Marked before the demo runs: a SIGKILLed run's next sweep removes what the demo made.
cgroup_mounts | sed "s|\$|/$demo_cgroup|" >"$work/cgroups"
log "$name ($suite): running scripts/demo.sh of ${head:0:12} in the chroot (rootfs $t_rootfs_kind)"
t0=$SECONDS
rc=0
in_ns bash "$self" __inner "$work" "$tarball" "$debs" "$head" "${FRESH_TIMEOUT:-1200}" \
    "${pip_env[@]}" || rc=$?
t_demo=$((SECONDS - t0))
t_unpack=$(cat "$work/unpack-seconds" 2>/dev/null || echo "?")
((rc == 0)) || die "scripts/demo.sh failed in the $name chroot (exit $rc, after $t_demo s)"

# What the container printed: its hostname (the bundle's, not the host's), pid 1, its mounts.
config=$work/config.json
want_host=$(sed -n 's/^ *"hostname": "\(.*\)",\{0,1\}$/\1/p' "$config" | head -n1)
[[ -n $want_host ]] || die "no hostname in the demo's $config"
[[ $want_host != "$(hostname)" ]] || die "the demo's hostname is the host's ($want_host): cannot tell them apart"
grep -qx "hello from $want_host, pid 1, uid 0" "$work/demo.log" ||
    die "the container did not say 'hello from $want_host, pid 1, uid 0'"
mounts=$(sed -n '/^mounts:$/,$p' "$work/demo.log" | tail -n +2)
for m in "/ " "/proc proc" "/dev tmpfs" "/dev/pts devpts"; do
    grep -q "^$m" <<<"$mounts" || die "the container's mounts lack '$m': $(tr '\n' ' ' <<<"$mounts")"
done
log "$name: passed in $((SECONDS - start)) s (rootfs $t_rootfs_kind; unpack $t_unpack s; demo $t_demo s)"
