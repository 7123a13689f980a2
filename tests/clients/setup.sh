#!/bin/sh
# Install what tests/clients needs on a fresh Debian 12 machine (CI). Idempotent: does nothing when
# everything is already there. Must run as root.
#
# Package postinst scripts may start a system-wide containerd/dockerd (with /var/lib/docker,
# iptables rules, ...). The tests start their own, isolated daemons, so this script keeps the
# packages from starting services (a temporary policy-rc.d, only if the machine has none) and stops
# any containerd/dockerd that appeared during the install anyway - only those, by pid.
set -eu

# Rootless podman (test_rootless_podman.py): uidmap (newuidmap/newgidmap, setuid), and what
# podman only recommends (a --no-install-recommends machine lacks it): fuse-overlayfs, slirp4netns;
# crun proves the rootless flow beside runc. Same names on Debian 12 and 13.
# The CRI test's CNI plugin (tests/clients/cri/cni-plugin) uses ip(8) from iproute2.
PACKAGES="containerd docker.io podman conmon runc crun uidmap fuse-overlayfs slirp4netns busybox-static util-linux bsdutils iproute2"
APT="apt-get -o DPkg::Lock::Timeout=600"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "tests/clients: all packages present"
    exit 0
fi
echo "tests/clients: installing$missing"

[ "$(id -u)" = 0 ] || { echo "tests/clients/setup.sh: must run as root" >&2; exit 1; }

daemon_pids() { pgrep -x containerd; pgrep -x dockerd; true; }
before=$(daemon_pids | sort)

policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from pyrunc tests/clients/setup.sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created_policy=1
fi
cleanup() { if [ -n "$created_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT INT TERM

export DEBIAN_FRONTEND=noninteractive
$APT update -q
# shellcheck disable=SC2086
$APT install -y $missing

# Whatever daemon appeared during our install was started by it: stop it (and keep it from
# starting at boot when systemd runs the machine).
new=""
for pid in $(daemon_pids | sort); do
    echo "$before" | grep -qx "$pid" || new="$new $pid"
done
if [ -n "$new" ]; then
    echo "tests/clients: stopping daemons started by the install:$new"
    if [ -d /run/systemd/system ]; then
        systemctl stop docker.socket docker.service containerd.service 2>/dev/null || true
        systemctl disable docker.socket docker.service containerd.service 2>/dev/null || true
    fi
    for pid in $new; do kill "$pid" 2>/dev/null || true; done
fi
echo "tests/clients: done"
