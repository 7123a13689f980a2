"""A hostile rootfs: symlinks that point out of it must never lead the runtime to the host.

Each test plants symlinks in the bundle's rootfs that, followed naively on the host, lead
to a host directory the test owns (`outside`). The runtime runs as root and builds the
rootfs before pivot_root, when the host's tree is still its "/": a mount point, a device
node or a cwd it creates through such a link would appear in `outside`. After the
container ran (or was refused), `outside` must be byte-for-byte as it was, with nothing
mounted on it.

The race test flips a rootfs directory and a symlink to `outside` back and forth
(renameat2 RENAME_EXCHANGE, atomic) while containers are being set up through it.
"""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox
from .helpers import Runtime, mounts_under

RENAME_EXCHANGE = 2
AT_FDCWD = -100


def _snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under root with its type, mode, owner, size, mtime and content hash."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mode & 0o7777,
                                             st.st_uid, st.st_gid, st.st_rdev, content, link,
                                             st.st_mtime_ns)
    st = root.lstat()
    out["."] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return out


@pytest.fixture
def outside(sandbox: Sandbox) -> Path:
    """The host directory a hostile rootfs aims at (absolute path, owned by the test)."""
    d = sandbox.host_dir("outside")
    (d / "sentinel").write_text("host data\n")
    (d / "sub").mkdir()
    return d


def _abs_link(target: Path) -> str:
    return str(target)


def _rel_link(target: Path) -> str:
    return "../" * 40 + str(target).lstrip("/")


def _plant(rootfs: Path, rel: str, target: str) -> None:
    p = rootfs / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_dir() and not p.is_symlink():
        p.rmdir()
    os.symlink(target, p)


def _mnt(dest: str, **kw: Any) -> dict[str, Any]:
    return {"destination": dest, **kw}


# Each case: (links to plant: rel path -> "abs"|"rel"|"abs:/suffix"), config overrides.
CASES: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "mount-tmpfs-below-abs-link": (
        {"mnt/evil": "abs"},
        {"extra_mounts": [_mnt("/mnt/evil/newdir/deeper", type="tmpfs", source="tmpfs")]}),
    "mount-tmpfs-below-rel-link": (
        {"mnt/evil": "rel"},
        {"extra_mounts": [_mnt("/mnt/evil/newdir", type="tmpfs", source="tmpfs")]}),
    "mount-tmpfs-on-link-to-missing": (
        {"mnt/final": "abs:/newfinal"},
        {"extra_mounts": [_mnt("/mnt/final", type="tmpfs", source="tmpfs")]}),
    "mount-tmpfs-dotdot-destination": (
        {"mnt/evil": "rel"},
        {"extra_mounts": [_mnt("/mnt/evil/../evil/sub/newdir", type="tmpfs", source="tmpfs")]}),
    "bind-dir-below-link": (
        {"mnt/evil": "abs"},
        {"extra_mounts": [_mnt("/mnt/evil/newbind", type="bind", source="{src_dir}", options=["rbind"])]}),
    "bind-file-below-link": (
        {"mnt/evil": "abs"},
        {"extra_mounts": [_mnt("/mnt/evil/newfile", type="bind", source="{src_file}", options=["bind"])]}),
    "bind-file-on-link-to-missing": (
        {"etc/evilfile": "abs:/newfile"},
        {"extra_mounts": [_mnt("/etc/evilfile", type="bind", source="{src_file}", options=["bind"])]}),
    "bind-file-on-link-to-host-file": (
        {"etc/evilfile": "abs:/sentinel"},
        {"extra_mounts": [_mnt("/etc/evilfile", type="bind", source="{src_file}", options=["bind"])]}),
    "device-below-link": (
        {"mnt/evil": "abs"},
        {"linux": {"devices": [{"path": "/mnt/evil/newdev", "type": "c", "major": 1, "minor": 3,
                                "fileMode": 0o666, "uid": 0, "gid": 0}]}}),
    "device-on-link-to-host-file": (
        {"mnt/devlink": "abs:/sentinel"},
        {"linux": {"devices": [{"path": "/mnt/devlink", "type": "c", "major": 1, "minor": 3,
                                "fileMode": 0o666, "uid": 1000, "gid": 1000}]}}),
    "dev-is-a-link": (
        {"dev": "abs"},
        {}),
    "cwd-below-link": (
        {"mnt/evil": "abs"},
        {"process": {"cwd": "/mnt/evil/newcwd"}}),
    "masked-and-readonly-paths-are-links": (
        {"mnt/masked": "abs:/sentinel", "mnt/rodir": "abs:/sub"},
        {"linux": {"maskedPaths": ["/mnt/masked", "/mnt/rodir"],
                   "readonlyPaths": ["/mnt/rodir", "/mnt/masked"]}}),
}


def _materialize(sandbox: Sandbox, outside: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    src_dir = sandbox.host_dir("bind-src")
    (src_dir / "from-bind-source").write_text("bind source\n")
    src_file = sandbox.tmp / "host" / "bind-src-file"
    src_file.write_text("bind source file\n")

    def subst(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace("{src_dir}", str(src_dir)).replace("{src_file}", str(src_file))
        if isinstance(v, list):
            return [subst(x) for x in v]
        if isinstance(v, dict):
            return {k: subst(x) for k, x in v.items()}
        return v

    return subst(overrides)


def _link_target(kind: str, outside: Path) -> str:
    base, _, suffix = kind.partition(":")
    target = _abs_link(outside) if base == "abs" else _rel_link(outside)
    return target + suffix


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_symlink_out_of_rootfs_never_reaches_host(sandbox: Sandbox, rt: Runtime, outside: Path,
                                                   case: str) -> None:
    links, overrides = CASES[case]
    b = sandbox.bundle(["sh", "-c", "ls / >/dev/null && echo ran"],
                       **_materialize(sandbox, outside, overrides))
    for rel, kind in links.items():
        _plant(b.rootfs, rel, _link_target(kind, outside))
    before = _snapshot(outside)
    res = rt.run(b, sandbox.new_id())
    assert res.returncode in (0, 1), res
    if res.returncode == 1:  # refusing is fine; it must still say why, in one line
        assert len(res.stderr.splitlines()) == 1, res.stderr
    else:
        assert "ran" in res.stdout
    assert mounts_under(outside) == []
    assert _snapshot(outside) == before, "the runtime changed a host directory through a rootfs symlink"


# --------------------------------------------------------------------------------------
# the race: a rootfs directory that becomes a symlink (and back) during setup


class _Flipper:
    """Swap rootfs/<name> (a directory) and rootfs/<name>.alt (a symlink out of the rootfs)
    atomically, as fast as possible, until stopped."""

    def __init__(self, parent: Path, name: str, target: str) -> None:
        self.a = str(parent / name)
        self.b = str(parent / f"{name}.alt")
        os.mkdir(self.a)
        os.symlink(target, self.b)
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.stop = threading.Event()
        self.flips = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        a, b = self.a.encode(), self.b.encode()
        while not self.stop.is_set():
            if self.libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0:
                self.flips += 1
            else:  # pragma: no cover - the kernel lacks renameat2 exchange
                raise OSError(ctypes.get_errno(), "renameat2")

    def __enter__(self) -> "_Flipper":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.mark.parametrize("link", ["abs", "rel"])
def test_directory_flipping_to_symlink_during_setup(sandbox: Sandbox, rt: Runtime, outside: Path,
                                                    link: str) -> None:
    """While containers are created through rootfs/mnt/flip, a thread keeps exchanging it
    with a symlink to the host directory `outside`. Whatever each create does (succeed, or
    fail because a path vanished under it), `outside` stays untouched."""
    src_dir = sandbox.host_dir("bind-src")
    overrides: dict[str, Any] = {
        "extra_mounts": [
            _mnt("/mnt/flip/t1/t2", type="tmpfs", source="tmpfs"),
            _mnt("/mnt/flip/bind", type="bind", source=str(src_dir), options=["rbind"]),
            _mnt("/mnt/flip/t3", type="tmpfs", source="tmpfs"),
        ],
        "linux": {"devices": [{"path": "/mnt/flip/dev0", "type": "c", "major": 1, "minor": 3,
                               "fileMode": 0o666, "uid": 0, "gid": 0}]},
        "process": {"cwd": "/mnt/flip/cwd"},
    }
    b = sandbox.bundle(["true"], **overrides)
    target = _abs_link(outside) if link == "abs" else _rel_link(outside)
    before = _snapshot(outside)
    outcomes: list[int] = []
    with _Flipper(b.rootfs / "mnt", "flip", target) as flipper:
        deadline = time.monotonic() + 25
        while len(outcomes) < 8 and time.monotonic() < deadline:
            res = rt.run(b, sandbox.new_id())
            # 127: the cwd vanished between setup and the exec (the container's own failure)
            assert res.returncode in (0, 1, 127), res
            if res.returncode == 1:
                assert len(res.stderr.splitlines()) == 1, res.stderr
            outcomes.append(res.returncode)
            assert mounts_under(outside) == []
            assert _snapshot(outside) == before, (
                f"the runtime changed a host directory through a flipping symlink "
                f"(after {len(outcomes)} runs, {flipper.flips} flips)")
    assert flipper.flips > 100, "the flipper did not run"
    assert len(outcomes) >= 3


@pytest.mark.parametrize("via", ["config", "image-symlink"])
@pytest.mark.parametrize("fd", range(3, 7))
def test_magic_link_destination_discloses_no_host_path(sandbox: Sandbox, rt: Runtime, fd: int,
                                                       via: str) -> None:
    """A mount destination that leads through /proc/self/fd/N -- written so in the config,
    or through an image symlink `/mnt/vol -> /proc/self/fd/N` under an innocent volume path
    -- is a magic link to one of the runtime's own fds while it builds the rootfs. It must
    be refused, or at least not followed by its text: that creates, inside the container,
    directories named after the host path behind the runtime's fd (its state dir, the
    bundle), disclosing it to the image."""
    dest = f"/proc/self/fd/{fd}/x" if via == "config" else "/mnt/vol/x"
    b = sandbox.bundle(["sh", "-c", "ls -R /dev/shm /tmp /mnt"],
                       extra_mounts=[_mnt(dest, type="tmpfs", source="tmpfs")])
    if via == "image-symlink":
        _plant(b.rootfs, "mnt/vol", f"/proc/self/fd/{fd}")
    res = rt.run(b, sandbox.new_id())
    if res.returncode == 1:
        assert len(res.stderr.splitlines()) == 1, res.stderr
    assert sandbox.tmp.name not in res.stdout, (
        f"/proc/self/fd/{fd} was followed by its text: the container sees host path "
        f"{sandbox.tmp} recreated inside it")
    assert not (b.rootfs / str(sandbox.tmp).lstrip("/")).exists()


@pytest.mark.parametrize("kind", ["fifo", "dir", "endless-line"])
def test_hostile_etc_passwd_does_not_hang_create(sandbox: Sandbox, rt: Runtime, kind: str) -> None:
    """The init reads the image's /etc/passwd to find HOME when the config sets none. An
    image whose /etc/passwd is a FIFO, a directory, or a 256 MiB line (a sparse file; a
    symlink to /dev/zero would be endless) must not hang `create` -- which holds the id's
    lock meanwhile -- nor make the runtime read without bound (here the container's 48 MiB
    memory limit keeps that from hurting the host): it is refused, or HOME falls back."""
    b = sandbox.bundle(["sh", "-c", "echo HOME=$HOME"],
                       linux={"resources": {"memory": {"limit": 48 << 20}}})
    passwd = b.rootfs / "etc" / "passwd"
    passwd.unlink()
    if kind == "fifo":
        os.mkfifo(passwd)
    elif kind == "dir":
        passwd.mkdir()
    else:
        with open(passwd, "wb") as f:
            f.truncate(256 << 20)
    cid = sandbox.new_id()
    try:
        res = rt.create(b, cid, out_dir=sandbox.tmp / "out", check=False, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"create hung reading an /etc/passwd that is a {kind}")
    if res.returncode == 0:
        rt.run_cmd("start", cid, check=True)
        rt.wait_status(cid, "stopped")
        assert "HOME=/" in (sandbox.tmp / "out" / f"{cid}.out").read_text()
    else:
        assert len(res.stderr.splitlines()) == 1 and "passwd" in res.stderr, res.stderr


@pytest.mark.parametrize("dest,target", [("proc", "tmp"), ("sys", "mnt"), ("proc", "/etc")])
def test_proc_or_sys_symlink_in_image_refused(sandbox: Sandbox, rt: Runtime, dest: str,
                                              target: str) -> None:
    """An image whose /proc or /sys is a symlink (to a directory of the image): procfs or
    sysfs would be mounted through it; runc refuses ("must be mounted on ordinary
    directory"), and so must pyrunc: exit 1, one line, nothing created, the link untouched."""
    b = sandbox.bundle(["true"])
    link = b.rootfs / dest
    link.rmdir()
    os.symlink(target, link)
    before = sorted(os.listdir(b.rootfs / target.lstrip("/")))
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 1, "procfs/sysfs was mounted through a symlink"
    assert "must be mounted on ordinary directory" in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert os.readlink(link) == target
    assert sorted(os.listdir(b.rootfs / target.lstrip("/"))) == before
    assert rt.list_ids() == []


def test_mount_through_a_link_to_a_name_that_is_not_utf8(sandbox: Sandbox, rt: Runtime) -> None:
    """An image's /odd is a symlink to a directory named by bytes that are not UTF-8: a
    tmpfs mounted there puts that name in the init's mountinfo, and the next mount that is
    checked against a race (a tmpfs with a propagation option) read mountinfo as UTF-8 and
    failed with 'internal error: UnicodeDecodeError'. Both mounts must simply be made."""
    script = "ls -d /odd/. /later/. && grep -c ' /later ' /proc/self/mountinfo"
    b = sandbox.bundle(["sh", "-c", script], extra_mounts=[
        {"destination": "/odd", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/later", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "rprivate"]}])
    os.mkdir(os.fsencode(b.rootfs) + b"/\xff\xfe")
    os.symlink(b"/\xff\xfe", os.fsencode(b.rootfs) + b"/odd")
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == sorted(["/odd/.", "/later/.", "1"]), res


def _mountinfo_lines(text: str) -> list[tuple[str, str, set[str]]]:
    """(root, mount point, per-mount options) of each /proc/self/mountinfo line."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) > 5 and "-" in f:
            out.append((f[3], f[4], set(f[5].split(","))))
    return out


def test_ro_bind_racing_a_swap_with_a_link_to_root(sandbox: Sandbox, rt: Runtime) -> None:
    """Another container sharing the rootfs directory keeps exchanging /rodata with
    /rodata.alt, a symlink to "/" (renameat2 RENAME_EXCHANGE; here a thread of the test).
    The config binds a host directory on /rodata read-only. In every run the bind is
    read-only and is not the container's root, and the root stays read-write -- or the
    create is refused in one line. (The ro remount looked /rodata up a second time: the
    bind stayed rw with the root made ro, or the bind became the root.)"""
    src = sandbox.host_dir("ro-src")
    (src / "host-marker").write_text("host\n")
    b = sandbox.bundle(["cat", "/proc/self/mountinfo"], root={"path": "rootfs", "readonly": False},
                       extra_mounts=[_mnt("/rodata", type="bind", source=str(src),
                                          options=["rbind", "ro"])])
    checked = refused = 0
    with _Flipper(b.rootfs, "rodata", "/") as flipper:
        deadline = time.monotonic() + 60
        while checked + refused < 40 and time.monotonic() < deadline:
            res = rt.run(b, sandbox.new_id())
            assert (src / "host-marker").read_text() == "host\n"
            assert mounts_under(src) == []
            if res.returncode != 0:
                assert res.returncode == 1 and len(res.stderr.splitlines()) == 1, res
                assert "/rodata" in res.stderr, f"not a refusal of the mount: {res.stderr!r}"
                refused += 1
                continue
            lines = _mountinfo_lines(res.stdout)
            root = [opts for _r, mp, opts in lines if mp == "/"]
            assert root and "rw" in root[-1], f"the rootfs root became read-only: {lines}"
            binds = [opts for _r, mp, opts in lines if mp in ("/rodata", "/rodata.alt")]
            assert binds, f"the bind is not on /rodata (it went on the root?): {lines}"
            assert all("ro" in opts for opts in binds), f"the bind stayed read-write: {lines}"
            checked += 1
    assert flipper.flips > 100, "the flipper did not run"
    assert checked >= 3, f"only {checked} runs got as far as the container ({refused} refused)"
