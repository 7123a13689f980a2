#!/usr/bin/env bash
# run-in-vm.sh - run a command inside a throwaway QEMU guest whose kernel
# uses the unified cgroup v2 hierarchy only (no cgroup v1 controllers), or
# with --cgroup the v1 hierarchies (hybrid: beside a cgroup2 mount; legacy).
#
# Usage:
#   run-in-vm.sh [options] [--] COMMAND [ARGS...]
#
# Options:
#   --mem SIZE       guest memory, QEMU syntax such as 512M or 2G (default: 1G)
#   --cpus N         virtual CPUs (default: number of host CPUs, at most 4)
#   --accel MODE     auto, kvm or tcg (default: auto, see "Acceleration")
#   --share DIR      also share host directory DIR read-write at the same path
#                    (repeatable; the current directory is always shared)
#   --timeout SECS   kill the guest after SECS seconds (exit status 124)
#   --systemd        boot the host's systemd as PID 1 (a system bus); COMMAND
#                    runs as a service once dbus.socket is up
#   --cgroup MODE    v2 (default): cgroup_no_v1=all, cgroup2 at /sys/fs/cgroup;
#                    hybrid: the v1 controllers, each a hierarchy of its own
#                    under a tmpfs at /sys/fs/cgroup, and cgroup2 at
#                    /sys/fs/cgroup/unified; legacy: v1 only. With --systemd,
#                    systemd mounts them (systemd.unified_cgroup_hierarchy=0,
#                    systemd.legacy_systemd_cgroup_controller=0|1: systemd 252
#                    still has both). The guest checks the mode before COMMAND
#                    and fails (125) if it is not the one asked for
#   -v, --verbose    print progress, and the guest kernel log at the end
#   -h, --help       show this help
#
# The guest:
#   * runs Debian's linux-image-amd64 kernel booted with cgroup_no_v1=all;
#     cgroup2 is mounted at /sys/fs/cgroup with every controller the kernel
#     has (cpuset cpu io memory hugetlb pids rdma misc) (see --cgroup);
#   * sees the host's "/" read-only over virtio-9p with a tmpfs overlay on
#     top: it can write anywhere, but those writes vanish at exit. /tmp, /run
#     and /dev/shm are fresh tmpfs mounts;
#   * sees the current directory (and each --share DIR) read-write at the
#     same path: changes made there land on the host;
#   * has the kernel's modules under /lib/modules/$(uname -r) (modprobe works)
#     and no network apart from "lo".
# With --systemd, no read-write share may be in /tmp or /var/tmp (the guest's
# systemd-tmpfiles cleans them: it would clean the host's files).
# Shared directories are 9p mounts: a FIFO or socket created there does not
# work (open gives ENXIO), so keep runtime state (a --root, exec fifos,
# console sockets) on the guest's own tmpfs, e.g. under /run or /tmp.
# COMMAND runs as root in the current directory, with the caller's exported
# environment and umask, and stdin from /dev/null. Its stdout and stderr are
# streamed to this script's stdout and stderr, and this script exits with
# COMMAND's exit status.
#
# Exit status: COMMAND's; 124 if --timeout expired; 125 if the VM failed
# (bad usage, missing packages, guest did not report a result).
#
# Acceleration: "auto" uses KVM when /dev/kvm is usable and backed by
# hardware virtualisation (the kvm_intel or kvm_amd module); otherwise TCG
# (pure emulation: works everywhere, but programs run roughly 10-100x slower).
# Some nested setups expose a /dev/kvm that cannot run an unmodified kernel
# (e.g. the kvm_pvm module); "auto" picks TCG there.
#
# Requirements: root and Debian 12 (bookworm) amd64. Missing pieces come from
# the Debian mirror: qemu-system-x86 and xz-utils are installed with apt-get;
# the kernel package behind linux-image-amd64 and busybox-static are only
# downloaded and unpacked into the cache directory (nothing goes to /boot).
#
# Environment:
#   RUN_IN_VM_CACHE        cache directory (default: /var/cache/run-in-vm)
#   RUN_IN_VM_KERNEL_ARGS  extra guest kernel arguments, e.g. loglevel=7
#   TMPDIR                 where per-run scratch directories go (default: /tmp)
# The kernel is downloaded once and then reused; delete the cache directory
# to pick up a newer linux-image-amd64.

set -euo pipefail

readonly PROG=${0##*/}
readonly CACHE=${RUN_IN_VM_CACHE:-/var/cache/run-in-vm}

# Modules the initramfs loads before it can mount the root filesystem (their
# dependencies are added automatically).
readonly INITRAMFS_MODULES=(virtio_pci 9pnet_virtio 9p overlay virtio_console)

# Module directories left out of the cached module tree: hardware that a
# headless QEMU guest does not have (saves about 250 MB of disk).
readonly PRUNED_MODULE_DIRS=(
    sound drivers/gpu drivers/media drivers/infiniband drivers/usb drivers/iio
    drivers/staging drivers/comedi drivers/hid drivers/input drivers/hwmon
    drivers/bluetooth drivers/isdn drivers/net/wireless drivers/net/ethernet
    drivers/net/usb drivers/net/can net/wireless net/mac80211 net/bluetooth
)

readonly EX_TIMEOUT=124
readonly EX_VMFAIL=125

VERBOSE=0

# ---------------------------------------------------------------------------
# Helpers

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" | sed '$d'; }

log() { if [[ $VERBOSE == 1 ]]; then printf '%s: %s\n' "$PROG" "$*" >&2; fi; }

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit "$EX_VMFAIL"; }

need_root() { [[ $EUID == 0 ]] || die "$1 (this needs root)"; }

apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -q -y "$@"; }

# "apt-get update", at most once per run.
APT_UPDATED=0
apt_update_once() {
    if [[ $APT_UPDATED == 0 ]]; then
        log "apt-get update"
        apt_get update >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
}

# ensure_command CMD PACKAGE...: install PACKAGEs unless CMD exists.
ensure_command() {
    local cmd=$1; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    need_root "$cmd is missing and must be installed"
    log "installing $*"
    apt_update_once
    apt_get install --no-install-recommends "$@" >&2 || die "cannot install $*"
}

# fetch_deb PACKAGE DIR: download PACKAGE's .deb (no install), unpack into DIR.
fetch_deb() {
    local pkg=$1 dest=$2 dl
    dl=$(mktemp -d "$CACHE/.download.XXXXXX")
    chown _apt "$dl" 2>/dev/null || true   # apt downloads as user _apt
    if ! (cd "$dl" && apt-get -q download "$pkg" >&2); then
        apt_update_once
        (cd "$dl" && apt-get -q download "$pkg" >&2) || { rm -rf "$dl"; die "cannot download $pkg"; }
    fi
    mkdir -p "$dest"
    dpkg-deb -x "$dl"/*.deb "$dest"
    rm -rf "$dl"
}

# ---------------------------------------------------------------------------
# Guest kernel and busybox, cached in $CACHE

# Sets BUSYBOX to a statically linked busybox.
ensure_busybox() {
    if [[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) == "install ok installed" ]]; then
        BUSYBOX=/bin/busybox
        return 0
    fi
    BUSYBOX=$CACHE/busybox/busybox
    [[ -x $BUSYBOX ]] && return 0
    need_root "busybox-static must be downloaded"
    log "downloading busybox-static"
    local tmp
    tmp=$(mktemp -d "$CACHE/.busybox.XXXXXX")
    fetch_deb busybox-static "$tmp/deb"
    cp "$tmp/deb/bin/busybox" "$tmp/busybox"
    rm -rf "$tmp/deb" "$CACHE/busybox"
    chmod 755 "$tmp"
    mv "$tmp" "$CACHE/busybox"
}

# Sets KDIR to a directory with "vmlinux" (uncompressed kernel, booted through
# its PVH entry point), "version", "initramfs-modules/" (the modules the
# initramfs needs, plus "load-order") and "lib-modules/" (the pruned module
# tree, mounted at /lib/modules/VERSION in the guest). Reuses the newest
# cached kernel; otherwise downloads the one linux-image-amd64 depends on.
ensure_kernel() {
    local pkg tmp kver mods vmlinuz off m dir
    KDIR=$(printf '%s\n' "$CACHE"/kernel/linux-image-*/ | sort -V | tail -n 1)
    KDIR=${KDIR%/}
    [[ -n $KDIR && -e $KDIR/.complete ]] && return 0

    need_root "no guest kernel in $CACHE/kernel yet"
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}' || true)
    if [[ -z $pkg ]]; then
        apt_update_once
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    fi
    [[ -n $pkg ]] || die "cannot resolve linux-image-amd64"
    log "downloading guest kernel $pkg"
    tmp=$(mktemp -d "$CACHE/.kernel.XXXXXX")
    fetch_deb "$pkg" "$tmp/deb"
    kver=$(ls "$tmp/deb/lib/modules")
    mods=$tmp/deb/lib/modules/$kver
    echo "$kver" > "$tmp/version"

    # Debian compresses the kernel inside vmlinuz with xz: find the xz stream
    # and decompress it. xz complains about the data after the stream, so the
    # result is checked instead of xz's exit status.
    vmlinuz=$tmp/deb/boot/vmlinuz-$kver
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1 || true)
    [[ -n $off ]] || die "no xz payload in $vmlinuz"
    tail -c +"$((off + 1))" "$vmlinuz" | xz -dcq > "$tmp/vmlinux" 2>/dev/null || true
    [[ $(head -c 4 "$tmp/vmlinux" | od -An -c | tr -d ' ') == 177ELF ]] ||
        die "cannot extract vmlinux from $vmlinuz"

    # Modules for the initramfs, with their dependencies ("depends=" in each
    # module's .modinfo section), in load order.
    mkdir "$tmp/initramfs-modules"
    local -A added=()
    local order=()
    add_module() {
        local name=$1 file deps dep
        [[ -n ${added[$name]:-} ]] && return 0
        added[$name]=1
        file=$(find "$mods/kernel" -name "$name.ko" -print -quit)
        [[ -n $file ]] || die "module $name not found in $pkg"
        deps=$(LC_ALL=C grep -aom1 'depends=[A-Za-z0-9_,-]*' "$file" || true)
        deps=${deps#depends=}
        for dep in ${deps//,/ }; do add_module "$dep"; done
        cp "$file" "$tmp/initramfs-modules/"
        order+=("$name")
    }
    for m in "${INITRAMFS_MODULES[@]}"; do add_module "$m"; done
    printf '%s\n' "${order[@]}" > "$tmp/initramfs-modules/load-order"

    # The full (pruned) module tree with modules.dep for modprobe.
    for dir in "${PRUNED_MODULE_DIRS[@]}"; do rm -rf "${mods:?}/kernel/$dir"; done
    "$BUSYBOX" depmod -b "$tmp/deb" "$kver"
    if command -v depmod >/dev/null 2>&1; then
        depmod -b "$tmp/deb" "$kver" || true   # kmod's binary indexes, if available
    fi
    mv "$mods" "$tmp/lib-modules"
    cp "$tmp/deb/boot/config-$kver" "$tmp/config"
    rm -rf "$tmp/deb"
    chmod -R a+rX "$tmp"
    touch "$tmp/.complete"
    mkdir -p "$CACHE/kernel"
    rm -rf "${CACHE:?}/kernel/$pkg"
    mv "$tmp" "$CACHE/kernel/$pkg"
    KDIR=$CACHE/kernel/$pkg
}

# ---------------------------------------------------------------------------
# Guest side. Stage 1 is /init in the initramfs: it loads the virtio/9p
# modules, builds the root filesystem and switch_root's into it. Stage 2 is
# PID 1 in the new root: it runs COMMAND, writes its exit status to the
# control share and reboots, which ends QEMU (-no-reboot).

# shellcheck disable=SC2016  # guest scripts: expanded in the guest
GUEST_STAGE1='#!/bin/busybox sh
export PATH=/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec < /dev/console > /dev/console 2>&1
/bin/busybox --install -s /bin
fail() { echo "run-in-vm init: $*"; reboot -f; }

while read -r m; do
    insmod /lib/modules/$m.ko || fail "insmod $m failed"
done < /lib/modules/load-order

o9p=trans=virtio,version=9p2000.L,msize=262144
R=/newroot

# Root: host "/" (read-only 9p) under a tmpfs overlay.
mkdir -p /lower /rw
mount -t 9p -o "$o9p,ro,cache=loose" hostroot /lower || fail "cannot mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay $R ||
    fail "cannot mount the overlay root"

for d in proc sys dev; do mount --move /$d $R/$d || fail "cannot move /$d"; done
mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $R/dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/dev/shm
mount -t mqueue mqueue $R/dev/mqueue
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $R/run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/tmp

# Kernel modules, the control directory and the read-write shares.
kmods=$R/lib/modules/$(uname -r)
mkdir -p $kmods && mount -t 9p -o "$o9p,ro,cache=loose" modules $kmods ||
    fail "cannot mount the module tree"
c=/run/run-in-vm
mkdir -p $R$c/ctl
mount -t 9p -o "$o9p,cache=none" ctl $R$c/ctl || fail "cannot mount the control share"
while read -r tag path; do
    mkdir -p "$R$path" && mount -t 9p -o "$o9p,cache=mmap" "$tag" "$R$path" ||
        fail "cannot mount $path"
done < $R$c/ctl/mounts

# cgroups (--cgroup): v2 mounted here; v1 hierarchies here unless systemd mounts them.
cg=$R/sys/fs/cgroup mode=$(cat $R$c/ctl/cgroup)
if [ "$mode" = v2 ]; then
    mount -t cgroup2 -o nsdelegate cgroup2 $cg || fail "cannot mount cgroup2"
elif [ ! -e $R$c/ctl/systemd ]; then
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $cg || fail "cannot mount the cgroup tmpfs"
    while read -r name _h _n enabled; do
        [ "$enabled" = 1 ] || continue
        mkdir $cg/$name && mount -t cgroup -o $name cgroup $cg/$name || fail "cannot mount cgroup $name"
    done < /proc/cgroups
    if [ "$mode" = hybrid ]; then
        mkdir $cg/unified && mount -t cgroup2 -o nsdelegate cgroup2 $cg/unified ||
            fail "cannot mount cgroup2 at unified"
    fi
fi

ip link set lo up
hostname "$(cat $R$c/ctl/hostname)"
cp /bin/busybox /stage2 $R$c/
if [ -e $R$c/ctl/systemd ]; then
    # systemd as PID 1: stage 2 becomes a service of a target that pulls in the system bus.
    u=$R/etc/systemd/system
    mkdir -p $u
    printf "[Unit]\nDescription=run-in-vm\nAllowIsolate=yes\nWants=run-in-vm.service dbus.socket dbus.service\n" > $u/run-in-vm.target
    printf "[Unit]\nDescription=run-in-vm command\nAfter=dbus.service\n[Service]\nType=oneshot\nExecStart=$c/busybox sh $c/stage2\nStandardOutput=journal+console\nTimeoutStartSec=infinity\n" > $u/run-in-vm.service
    hostname > $R/etc/hostname
    # The cgroup mode on its command line too: the host root may have /.dockerenv, and then
    # systemd takes itself for a container and reads its own arguments, not /proc/cmdline.
    exec switch_root $R /lib/systemd/systemd systemd.unit=run-in-vm.target $(cat $R$c/ctl/systemd)
fi
exec switch_root $R $c/busybox sh $c/stage2
'

# shellcheck disable=SC2016
GUEST_STAGE2='c=/run/run-in-vm
bb=$c/busybox
# modprobe for the kernel (module autoloading) and, if the host has none, for
# COMMAND; /usr/sbin is on the throwaway overlay.
$bb ln -s busybox $c/modprobe
echo $c/modprobe > /proc/sys/kernel/modprobe
[ -e /usr/sbin/modprobe ] || [ -e /sbin/modprobe ] || $bb ln -s $c/busybox /usr/sbin/modprobe
# The virtio-serial ports for stdout/stderr (announced asynchronously).
out="" err="" n=0
while [ -z "$out" ] || [ -z "$err" ]; do
    for p in /sys/class/virtio-ports/*; do
        [ -e /dev/${p##*/} ] || continue
        case "$($bb cat $p/name 2>/dev/null)" in
            stdout) out=/dev/${p##*/} ;;
            stderr) err=/dev/${p##*/} ;;
        esac
    done
    n=$((n + 1))
    if [ $n -gt 1000 ]; then echo "run-in-vm: no stdout/stderr ports"; $bb reboot -f; fi
    [ -n "$out" ] && [ -n "$err" ] || $bb usleep 10000
done
# The cgroup mode asked for (--cgroup), or no COMMAND: what is mounted at
# /sys/fs/cgroup, and at its unified/.
fstype() { $bb awk -v m="$1" '\''$2 == m { t = $3 } END { print t }'\'' /proc/self/mounts; }
want=$($bb cat $c/ctl/cgroup)
case "$(fstype /sys/fs/cgroup) $(fstype /sys/fs/cgroup/unified)" in
    "cgroup2 ") got=v2 ;;
    "tmpfs cgroup2") got=hybrid ;;
    "tmpfs ") got=legacy ;;
    *) got="unknown ($(fstype /sys/fs/cgroup) $(fstype /sys/fs/cgroup/unified))" ;;
esac
if [ "$got" != "$want" ]; then
    echo "run-in-vm: --cgroup $want asked, the guest has $got (kernel command line: $($bb cat /proc/cmdline))" > "$err"
    echo 125 > $c/ctl/rc
    $bb sync
    $bb reboot -f
fi
# (The subshell keeps messages such as "Killed" from this shell on the console.)
(exec /bin/bash $c/ctl/cmd.sh < /dev/null > "$out" 2> "$err")
echo $? > $c/ctl/rc
$bb sync
$bb reboot -f
'

# build_initramfs FILE: write the initramfs (uncompressed newc cpio).
build_initramfs() {
    local root
    root=$(mktemp -d "$SCRATCH/initramfs.XXXXXX")
    mkdir -p "$root"/{bin,dev,proc,sys,newroot,lib/modules}
    cp "$BUSYBOX" "$root/bin/busybox"
    cp "$KDIR"/initramfs-modules/* "$root/lib/modules/"
    printf '%s' "$GUEST_STAGE1" > "$root/init"
    printf '%s' "$GUEST_STAGE2" > "$root/stage2"
    chmod 755 "$root/init"
    (cd "$root" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$1"
    rm -rf "$root"
}

# ---------------------------------------------------------------------------
# Host side

# The accelerator for --accel auto.
pick_accel() {
    if [[ -r /dev/kvm && -w /dev/kvm && ( -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ) ]]; then
        echo kvm
    else
        echo tcg
    fi
}

# write_command_script COMMAND [ARGS...]: the script the guest runs, with the
# caller's exported environment, umask and directory, all %q-quoted.
write_command_script() {
    local kv name
    {
        echo '# generated by run-in-vm.sh'
        while IFS= read -r -d '' kv; do
            name=${kv%%=*}
            [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
            case $name in PWD|OLDPWD|SHLVL|_) continue ;; esac
            printf 'export %s=%q\n' "$name" "${kv#*=}"
        done < <(env -0)
        printf 'umask %s\n' "$(umask)"
        # The logical path may not exist in the guest (e.g. a symlink in /tmp).
        printf 'cd -- %q 2>/dev/null || cd -- %q || exit 125\n' "$PWD" "$(pwd -P)"
        printf 'exec'
        printf ' %q' "$@"
        printf '\n'
    } > "$SCRATCH/ctl/cmd.sh"
}

# forward FIFO: copy a guest output stream to our stdout; if that fails (for
# example the reader of our stdout went away), stop the VM.
forward() {
    if ! cat "$1"; then
        touch "$SCRATCH/output-broken"
        kill "$QEMU_PID" 2>/dev/null || true
    fi
}

# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
    local pid
    for pid in ${QEMU_PID:-} ${READER_PIDS:-}; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ -n ${QEMU_PID:-} ]]; then wait "$QEMU_PID" 2>/dev/null || true; fi
    if [[ -n ${SCRATCH:-} ]]; then rm -rf "$SCRATCH"; fi
}

main() {
    local mem=1G cpus accel=auto timeout="" shares=() dir systemd=0 cgroup=v2
    cpus=$(nproc)
    (( cpus > 4 )) && cpus=4

    while (( $# )); do
        case $1 in
            --mem) mem=${2:?--mem needs a value}; shift 2 ;;
            --cpus) cpus=${2:?--cpus needs a value}; shift 2 ;;
            --accel) accel=${2:?--accel needs a value}; shift 2 ;;
            --share)
                dir=$(realpath -e -- "${2:?--share needs a value}" 2>/dev/null || true)
                [[ -n $dir && -d $dir ]] || die "--share: no such directory: $2"
                shares+=("$dir"); shift 2 ;;
            --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
            --systemd) systemd=1; shift ;;
            --cgroup) cgroup=${2:?--cgroup needs a value}; shift 2 ;;
            -v|--verbose) VERBOSE=1; shift ;;
            -h|--help) usage; exit 0 ;;
            --) shift; break ;;
            -*) die "unknown option $1 (see --help)" ;;
            *) break ;;
        esac
    done
    (( $# )) || { usage >&2; exit "$EX_VMFAIL"; }
    [[ $mem =~ ^[1-9][0-9]*[MG]?$ ]] || die "bad --mem: $mem"
    [[ $cpus =~ ^[1-9][0-9]*$ ]] || die "bad --cpus: $cpus"
    [[ -z $timeout || $timeout =~ ^[1-9][0-9]*$ ]] || die "bad --timeout: $timeout"
    [[ $cgroup == v2 || $cgroup == hybrid || $cgroup == legacy ]] ||
        die "bad --cgroup: $cgroup (v2, hybrid or legacy)"
    [[ $accel == auto ]] && accel=$(pick_accel)
    [[ $accel == kvm || $accel == tcg ]] || die "bad --accel: $accel"
    # Shares are mounted at their physical paths (symlinks resolved); COMMAND
    # starts in the logical $PWD if that exists in the guest, else the physical.
    dir=$(pwd -P)
    [[ $dir != / ]] || die "refusing to share / read-write; run from another directory"
    shares=("$dir" "${shares[@]}")
    for dir in "${shares[@]}"; do
        [[ $dir != *$'\n'* ]] || die "cannot share a path containing a newline"
        # The guest's systemd-tmpfiles empties /tmp at boot (and ages /var/tmp): through a
        # read-write share that would be the host's own.
        if [[ $systemd == 1 && ( $dir == /tmp || $dir == /tmp/* || $dir == /var/tmp ||
              $dir == /var/tmp/* ) ]]; then
            die "--systemd: refusing to share $dir read-write (the guest's systemd-tmpfiles would clean the host's files there); run from another directory"
        fi
    done

    # Dependencies: installed or downloaded on first use.
    ensure_command qemu-system-x86_64 qemu-system-x86
    ensure_command xz xz-utils
    mkdir -p "$CACHE" 2>/dev/null || die "cannot create $CACHE (set RUN_IN_VM_CACHE)"
    exec 9> "$CACHE/.lock"
    flock 9                    # one cache writer at a time
    rm -rf "$CACHE"/.download.* "$CACHE"/.kernel.* "$CACHE"/.busybox.*   # interrupted runs
    ensure_busybox
    ensure_kernel
    exec 9>&-

    SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/run-in-vm.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir "$SCRATCH/ctl"
    build_initramfs "$SCRATCH/initramfs.cpio"
    write_command_script "$@"
    uname -n > "$SCRATCH/ctl/hostname"
    echo "$cgroup" > "$SCRATCH/ctl/cgroup"
    if [[ $systemd == 1 ]]; then
        [[ -x /lib/systemd/systemd ]] || die "--systemd: /lib/systemd/systemd is not installed"
        : > "$SCRATCH/ctl/systemd"
    fi

    # 9p exports: host root (read-only), module tree, control directory and
    # the read-write shares. security_model=passthrough keeps the ownership
    # of files the guest creates (it needs root, "none" is used otherwise).
    local model=none i=0
    [[ $EUID == 0 ]] && model=passthrough
    # shellcheck disable=SC2054  # commas belong to QEMU option values
    local fs=(
        -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
        -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
        -fsdev "local,id=modules,path=${KDIR//,/,,}/lib-modules,security_model=none,readonly=on"
        -device virtio-9p-pci,fsdev=modules,mount_tag=modules
        -fsdev "local,id=ctl,path=$SCRATCH/ctl,security_model=none"
        -device virtio-9p-pci,fsdev=ctl,mount_tag=ctl
    )
    : > "$SCRATCH/ctl/mounts"
    for dir in "${shares[@]}"; do
        # QEMU splits option values at commas; ",," is a literal comma.
        fs+=(-fsdev "local,id=share$i,path=${dir//,/,,},security_model=$model,multidevs=remap"
             -device "virtio-9p-pci,fsdev=share$i,mount_tag=share$i")
        printf 'share%d %s\n' "$i" "$dir" >> "$SCRATCH/ctl/mounts"
        i=$((i + 1))
    done

    # Kernel command line: no cgroup v1 at all (--cgroup v2), or the v1
    # hierarchies as systemd's hybrid or legacy mode; reboot=t + -no-reboot
    # makes "reboot -f" end QEMU; the rest shortens boot (notably under TCG).
    local cmdline extra cgargs
    read -ra extra <<< "${RUN_IN_VM_KERNEL_ARGS:-}"
    case $cgroup in
        v2) cgargs=(cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1) ;;
        hybrid) cgargs=(systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=0) ;;
        legacy) cgargs=(systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1) ;;
    esac
    if [[ $systemd == 1 ]]; then echo "${cgargs[*]}" > "$SCRATCH/ctl/systemd"; fi
    cmdline=(
        console=ttyS0 quiet panic=-1 reboot=t
        "${cgargs[@]}"
        tsc=reliable mitigations=off random.trust_cpu=on cryptomgr.notests
        "${extra[@]}"
    )
    local cpu=max
    [[ $accel == kvm ]] && cpu=host
    # shellcheck disable=SC2054
    local qemu=(
        qemu-system-x86_64
        -M q35 -accel "$accel" -cpu "$cpu" -smp "$cpus" -m "$mem"
        -nodefaults -no-user-config -display none -no-reboot
        -kernel "$KDIR/vmlinux" -initrd "$SCRATCH/initramfs.cpio"
        -append "${cmdline[*]}"
        -serial "file:$SCRATCH/console.log"
        "${fs[@]}"
        # COMMAND's stdout/stderr: virtio-serial ports written into FIFOs.
        -device virtio-serial-pci
        -chardev "file,id=stdout,path=$SCRATCH/stdout"
        -device virtserialport,chardev=stdout,name=stdout
        -chardev "file,id=stderr,path=$SCRATCH/stderr"
        -device virtserialport,chardev=stderr,name=stderr
    )
    if [[ -n $timeout ]]; then qemu=(timeout -k 10 "$timeout" "${qemu[@]}"); fi
    log "accel=$accel cpus=$cpus mem=$mem cgroup=$cgroup kernel=$(< "$KDIR/version")"

    # QEMU runs in the background so that INT/TERM are handled at once; its
    # open() of each FIFO waits until the matching reader has opened it.
    mkfifo "$SCRATCH/stdout" "$SCRATCH/stderr"
    "${qemu[@]}" < /dev/null 2> "$SCRATCH/qemu.log" &
    QEMU_PID=$!
    forward "$SCRATCH/stdout" &
    READER_PIDS=$!
    forward "$SCRATCH/stderr" >&2 &
    READER_PIDS+=" $!"

    local qrc=0 fifo fd
    wait "$QEMU_PID" || qrc=$?
    QEMU_PID=
    # A reader still blocked in open() (QEMU died early) is released by a
    # read-write open of its FIFO, which itself never blocks.
    for fifo in stdout stderr; do
        exec {fd}<> "$SCRATCH/$fifo"
        exec {fd}>&-
    done
    # shellcheck disable=SC2086
    wait $READER_PIDS || true
    READER_PIDS=

    if [[ $VERBOSE == 1 ]]; then
        printf -- '---- guest console ----\n%s\n-----------------------\n' "$(< "$SCRATCH/console.log")" >&2
    fi
    if [[ -e $SCRATCH/output-broken ]]; then
        exit 141                # like a command killed by SIGPIPE
    fi
    local rc
    rc=$(cat "$SCRATCH/ctl/rc" 2>/dev/null || true)
    if [[ $rc =~ ^[0-9]+$ ]]; then
        exit "$rc"
    fi
    if [[ -n $timeout && $qrc == 124 ]]; then
        printf '%s: timed out after %s s\n' "$PROG" "$timeout" >&2
        exit "$EX_TIMEOUT"
    fi
    printf '%s: the VM stopped (QEMU status %s) without a result\n' "$PROG" "$qrc" >&2
    cat "$SCRATCH/qemu.log" >&2
    tail -n 20 "$SCRATCH/console.log" >&2
    exit "$EX_VMFAIL"
}

main "$@"
