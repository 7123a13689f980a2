#!/usr/bin/env bash
# The main job, end to end: install pyrunc, build a busybox bundle, run a container with it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"

bundle=${DEMO_BUNDLE:-/tmp/pyrunc-demo}
rm -rf "$bundle"
mkdir -p "$bundle/rootfs/bin"
cp /usr/bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/usr/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$bundle/rootfs/bin/$applet"
done
mkdir -p "$bundle/rootfs/"{proc,sys,dev,tmp,etc,root}
echo "root:x:0:0:root:/root:/bin/sh" > "$bundle/rootfs/etc/passwd"
echo "root:x:0:" > "$bundle/rootfs/etc/group"

cd "$bundle"
pyrunc spec
# A non-interactive demo: no terminal, a command that shows it is inside a container.
"${PYRUNC_PREFIX:-/opt/pyrunc}/bin/python" - <<'PY'
import json
with open("config.json") as f:
    cfg = json.load(f)
cfg["process"]["terminal"] = False
cfg["process"]["args"] = ["sh", "-c",
    'echo "hello from $(hostname), pid $$, uid $(id -u)"; echo "mounts:"; cut -d" " -f2,3 /proc/mounts | head -8']
cfg["linux"]["cgroupsPath"] = "/pyrunc-demo"
with open("config.json", "w") as f:
    json.dump(cfg, f, indent=2)
PY
pyrunc --root /run/pyrunc-demo run demo-$$
