"""scripts/fresh.sh, interrupted while the demo installs in its chroot, leaves nothing behind.

The check runs `bash scripts/demo.sh` in a chroot inside a private mount namespace and a pid
namespace of its own. An interrupted run (Ctrl-C, which signals the whole foreground process
group, or a plain SIGTERM to the script) must kill everything that ran inside, let the mount
namespace die (so the chroot's /proc, /sys, /dev and cgroup binds vanish with it), remove its
tree and any cgroup the demo made, and exit 128 + the signal. Seen from the host: the
processes, the namespace, the mounts, the cgroup and the directory are all gone.

Needs root and the network (apt, PyPI); the first run on a machine builds the Debian 12 rootfs
(a few minutes), later ones reuse it. PYRUNC_SKIP_FRESH=1 skips it, as it skips the fresh suites.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FRESH = REPO / "scripts" / "fresh.sh"
CACHE = Path(os.environ.get("FRESH_CACHE", "/var/cache/pyrunc-fresh"))

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="fresh.sh needs root"),
    pytest.mark.skipif(os.environ.get("PYRUNC_SKIP_FRESH") == "1", reason="PYRUNC_SKIP_FRESH=1"),
]


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[19]


def _descendants(root: int) -> dict[int, str]:
    """Every process below `root`, pid -> start time (identity across pid reuse)."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            parents[int(entry)] = st
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        for child, (ppid, start) in parents.items():
            if ppid == pid and child not in found:
                found[child] = start
                todo.append(child)
    return found


def _mnt_ns(pid: int | str) -> str | None:
    """A process's mount namespace ("mnt:[inode]"), None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _holders_of(ns: str) -> list[int]:
    """Processes whose mount namespace is `ns`."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _mnt_ns(e) == ns]


def _cgroup_mounts() -> list[str]:
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                mounts.append(fields[4])
    return mounts


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(f"{path}/")
                or line.split()[4] == str(path)]


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_fresh_leaves_nothing(how: str) -> None:
    assert not [m for m in _cgroup_mounts() if os.path.isdir(f"{m}/pyrunc-demo")], \
        "a demo's cgroup exists before the test: another demo runs"
    # A terminal's Ctrl-C reaches a shell whose SIGINT is not ignored; a run started in the
    # background of a non-interactive shell (CI, nohup ... &) inherits SIGINT ignored, which
    # bash then cannot trap, so the script is started with the dispositions a terminal gives.
    proc = subprocess.Popen(["bash", str(FRESH), "debian12"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_default_signals)
    assert proc.stdout is not None
    output: list[str] = []
    buf = b""
    busy: dict[int, str] = {}
    try:
        # The demo has started in the chroot: wait until it is well into its install
        # (apt, dpkg or pip working inside), with a namespace of its own.
        deadline = time.monotonic() + 900  # a cold cache builds the rootfs first
        started = None
        mnt_ns = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, rest = buf.split(b"\n")
                buf = rest
                output.extend(line.decode(errors="replace") for line in lines)
            if started is None and any("running scripts/demo.sh" in line for line in output):
                started = time.monotonic()
            if started is not None and time.monotonic() - started > 3:
                busy = _descendants(proc.pid)
                ours = _mnt_ns("self")
                inside = [p for p in busy if _mnt_ns(p) not in (None, ours)]
                names = {_comm(p) for p in inside}
                # Any installer: on a warm cache apt is over in seconds, and pip runs as the
                # venv's `python` (a CI run here missed every window the old set named).
                installers = {"apt-get", "dpkg", "http", "pip", "python", "python3",
                              "cc1", "gcc", "cc", "ld"}
                if inside and names & installers:
                    mnt_ns = _mnt_ns(inside[0]) or ""
                    # Hold the install where it is, so the demo cannot finish before the
                    # signal lands (a warm cache is through a step in well under a second);
                    # the script's SIGKILL of the namespace ends stopped processes too.
                    for p in inside:
                        if _comm(p) not in installers:
                            continue  # never unshare, setpriv or the shells that wait
                        try:
                            os.kill(p, signal.SIGSTOP)
                        except ProcessLookupError:
                            pass
                    break
        assert mnt_ns, "fresh.sh never got to installing in its chroot:\n" + "\n".join(output[-30:])
        work = CACHE / "run" / f"debian12.{proc.pid}"
        assert work.is_dir()
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole group
            want = 130
        else:
            os.kill(proc.pid, signal.SIGTERM)
            want = 143
        # Judged when the script has exited, not at EOF: a leftover process may hold its stdout.
        proc.wait(timeout=120)
        # SIGKILLed processes go away asynchronously (a loaded machine: seconds).
        until = time.monotonic() + 15
        while True:
            time.sleep(0.5)
            alive = [p for p, start in busy.items()
                     if (st := _stat(p)) is not None and st[1] == start]
            holders = _holders_of(mnt_ns)
            if not (alive or holders) or time.monotonic() > until:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # A broken script's leftovers are the test's to remove (the next run sweeps the rest).
        for p, start in busy.items():
            if (st := _stat(p)) is not None and st[1] == start:
                os.kill(p, signal.SIGKILL)
    os.set_blocking(proc.stdout.fileno(), False)
    tail = "\n".join(output[-10:]) + "\n" + (proc.stdout.read() or b"").decode(errors="replace")
    assert proc.returncode == want, tail
    assert not alive, f"processes of the run still alive: {alive}\n{tail}"
    assert not holders, f"the chroot's mount namespace {mnt_ns} still has processes: {holders}"
    assert not _mounts_under(work)
    assert not work.exists(), f"{work} was left behind"
    left = [m for m in _cgroup_mounts() if os.path.isdir(f"{m}/pyrunc-demo")]
    assert not left, f"the demo's cgroup was left behind: {left}"
