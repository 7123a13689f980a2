#!/usr/bin/env bash
# systemd.sh - bench/systemd.py in the systemd guest (tests/vm/run-in-vm.sh --systemd): the
# only place systemd is PID 1 here. The guest is emulated (TCG): absolute numbers are ~10-50x
# a real host's; the pyrunc/runc ratio is what to read.
# Usage: bench/systemd.sh [-n N]   (PYRUNC_BIN: default /opt/pyrunc/bin/pyrunc)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
python=${PYRUNC_PYTHON:-/opt/pyrunc/bin/python}
"$python" - <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from integration.helpers import build_rootfs_cache
build_rootfs_cache(Path("tests/.cache"))
PY
rootfs=$(ls -d "$repo"/tests/.cache/rootfs-* | head -n 1)
exec bash tests/vm/run-in-vm.sh --systemd --timeout "${BENCH_TIMEOUT:-900}" -- \
    python3 bench/systemd.py --pyrunc "${PYRUNC_BIN:-/opt/pyrunc/bin/pyrunc}" --rootfs "$rootfs" "$@"
