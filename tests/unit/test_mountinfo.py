"""procfs.mountinfo, the one /proc/PID/mountinfo parser (cgroups' hierarchies, the init's
raced-mount check, --no-pivot's hiding of the host's /proc and /sys), through the kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pyrunc.linux import procfs

# In a mount namespace of its own: a cgroup2 bind and a tmpfs at paths the kernel escapes.
PROBE = r"""
import os, subprocess, sys
from pyrunc.linux import procfs
from pyrunc import cgroups
top = sys.argv[1]
odd = os.path.join(top, "a b\tc\\d")
os.makedirs(odd)
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", odd], check=True)
os.mkdir(odd + "/cg")
src = "/sys/fs/cgroup" if cgroups.is_v2_host() else "/sys/fs/cgroup/unified"
subprocess.run(["mount", "--bind", src, odd + "/cg"], check=True)
cgroups._mounts.clear()
for m in procfs.mountinfo():
    print(repr(m))
print("CG", repr([m for m in cgroups.mountinfo() if m[0].startswith(top)]))
"""


def test_mount_points_are_unescaped_and_ids_are_the_kernels(tmp_path: Path) -> None:
    top = str(tmp_path / "mi")
    res = subprocess.run(["unshare", "-m", sys.executable, "-I", "-c", PROBE, top],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res
    lines = res.stdout.splitlines()
    entries = [eval(line) for line in lines if not line.startswith("CG ")]
    odd = top + "/a b\tc\\d"
    assert any(mp == odd and fstype == "tmpfs" for _i, mp, fstype, _o in entries)
    ids = [i for i, *_ in entries]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) and i > 0 for i in ids)
    cg = eval(lines[-1][3:])
    assert [(mp, fstype) for mp, fstype, _o in cg] == [(odd + "/cg", "cgroup2")]


def test_own_mountinfo_lists_root_and_proc() -> None:
    entries = procfs.mountinfo()
    assert entries[0][1] == "/" or any(mp == "/" for _i, mp, _t, _o in entries)
    assert any(mp == "/proc" and fstype == "proc" for _i, mp, fstype, _o in entries)
    assert all(isinstance(opts, list) and opts for *_r, opts in entries)


def test_unescape() -> None:
    assert procfs.unescape(r"/a\040b\011c\012d\134e") == "/a b\tc\nd\\e"
    assert procfs.unescape(r"/plain\x") == r"/plain\x"


# A filesystem mounted with an empty source: the kernel writes nothing between the fs type
# and the super options ("tmpfs  rw"), which a split on runs of blanks read as two fields.
EMPTY_SOURCE = r"""
import os, subprocess, sys
from pyrunc.linux import procfs
from pyrunc import cgroups
top = sys.argv[1]
os.makedirs(top)
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "", top], check=True)
cgroups._mounts.clear()
print(repr([m for m in procfs.mountinfo() if m[1] == top]))
print(len(cgroups.mountinfo()) > 0)
"""


def test_a_mount_with_an_empty_source_is_parsed(tmp_path: Path) -> None:
    """mount -t tmpfs "" DIR (or a FUSE fsname= left empty) on the host made every parse of
    mountinfo fail with 'internal error: ValueError', create included."""
    top = str(tmp_path / "empty")
    res = subprocess.run(["unshare", "-m", sys.executable, "-I", "-c", EMPTY_SOURCE, top],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    entries, cgroup_mounts = res.stdout.splitlines()
    [(mnt_id, mp, fstype, opts)] = eval(entries)
    assert (mp, fstype) == (top, "tmpfs") and mnt_id > 0 and "rw" in opts
    assert cgroup_mounts == "True"


NOT_UTF8 = r"""
import os, subprocess, sys
from pyrunc.linux import procfs
from pyrunc import cgroups
top = os.fsencode(sys.argv[1]) + b"/\xff\xfe"
os.makedirs(top)
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
subprocess.run([b"mount", b"-t", b"tmpfs", b"tmpfs", top], check=True)
cgroups._mounts.clear()
print(ascii([m[1] for m in procfs.mountinfo() if os.fsencode(m[1]) == top]))
print(len(cgroups.mountinfo()) > 0)
"""


def test_a_mount_point_that_is_not_utf8_is_parsed(tmp_path: Path) -> None:
    """The kernel escapes only blanks and backslashes: a mount point named by other bytes
    (a FUSE mount in a user's home, an image's symlink to such a directory as a mount's
    destination) came through as is, and reading mountinfo as UTF-8 failed with 'internal
    error: UnicodeDecodeError' in every create (the cgroup mounts, the raced-mount check)."""
    res = subprocess.run(["unshare", "-m", sys.executable, "-I", "-c", NOT_UTF8,
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    points, cgroup_mounts = res.stdout.splitlines()
    assert eval(points) == [os.fsdecode(os.fsencode(str(tmp_path)) + b"/\xff\xfe")]
    assert cgroup_mounts == "True"
