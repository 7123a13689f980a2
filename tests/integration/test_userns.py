"""User namespaces and idmapped mounts, read from inside the container and from the host.

Containers here map container ids 0..65535 to host ids HOST..HOST+65535; files the image
owns are chowned to HOST first, as an engine does for such a container's rootfs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox
from .helpers import Bundle, Runtime

HOST = 300000
SIZE = 65536
NOBODY = 65534
MAPS = [{"containerID": 0, "hostID": HOST, "size": SIZE}]
NAMESPACES = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup", "user")]
USERNS: dict[str, Any] = {"namespaces": NAMESPACES, "uidMappings": MAPS, "gidMappings": MAPS}


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.lchown(top, uid, gid)
    for base, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(base, name), uid, gid)


def _mapped_bundle(sandbox: Sandbox, script: str, **overrides: Any) -> Bundle:
    """A writable-root bundle in a new user namespace, its rootfs owned by the mapped root."""
    linux = {**USERNS, **overrides.pop("linux", {})}
    b = sandbox.bundle(["sh", "-c", script], root={"path": "rootfs", "readonly": False},
                       linux=linux, **overrides)
    _chown_tree(b.rootfs, HOST, HOST)
    return b


def _run_ok(rt: Runtime, sandbox: Sandbox, b: Bundle) -> list[str]:
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr!r} (stdout {res.stdout!r})"
    return res.stdout.splitlines()


def test_maps_caps_and_files_of_a_mapped_root(sandbox: Sandbox, rt: Runtime) -> None:
    """The container's uid_map/gid_map are the config's; its root is uid 0; what it writes
    is owned on the host by the mapped root, and a host file outside the mapping shows as
    nobody."""
    b = _mapped_bundle(sandbox, "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
                       "echo hi > /made-inside; "
                       "stat -c '%u:%g' /etc/host-root-file")
    host_root_file = b.rootfs / "etc" / "host-root-file"
    host_root_file.write_text("x")
    os.chown(host_root_file, 0, 0)
    out = _run_ok(rt, sandbox, b)
    assert [line.split() for line in out[:2]] == [["0", str(HOST), str(SIZE)]] * 2
    assert out[2:4] == ["0", "0"]
    assert out[4] == f"{NOBODY}:{NOBODY}"
    made = os.stat(b.rootfs / "made-inside")
    assert (made.st_uid, made.st_gid) == (HOST, HOST)


def test_process_user_inside_the_mapping(sandbox: Sandbox, rt: Runtime) -> None:
    """process.user is a container id: uid 1000 inside is HOST+1000 outside."""
    b = _mapped_bundle(sandbox, "id -u; id -g; echo x > /tmp/by-user",
                       process={"user": {"uid": 1000, "gid": 1000}})
    tmp = b.rootfs / "tmp"
    os.chmod(tmp, 0o1777)
    assert _run_ok(rt, sandbox, b)[:2] == ["1000", "1000"]
    st = os.stat(tmp / "by-user")
    assert (st.st_uid, st.st_gid) == (HOST + 1000, HOST + 1000)


def test_sysfs_and_mqueue_mount_in_a_user_namespace(sandbox: Sandbox, rt: Runtime) -> None:
    """sysfs needs a network namespace owned by the container's user namespace and mqueue an
    ipc namespace: both are made after the user namespace, so both mounts work."""
    b = _mapped_bundle(sandbox, "grep -E ' /sys | /dev/mqueue ' /proc/self/mounts; ls /sys/class/net")
    out = _run_ok(rt, sandbox, b)
    kinds = sorted(line.split()[2] for line in out if line.count(" ") >= 3)
    assert kinds == ["mqueue", "sysfs"], out
    assert out[-1] == "lo", out  # the container's own network namespace, seen through its sysfs


def test_join_a_user_namespace_by_path(sandbox: Sandbox, rt: Runtime) -> None:
    """A second container joins the first one's user namespace (no mappings of its own) and
    sees the same maps, the same namespace inode, and uid 0."""
    first = _mapped_bundle(sandbox, "sleep 1000", name="owner")
    cid = sandbox.new_id()
    rt.create(first, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    pid = rt.state(cid)["pid"]
    userns = f"/proc/{pid}/ns/user"
    namespaces = [ns if ns["type"] != "user" else {"type": "user", "path": userns}
                  for ns in NAMESPACES]
    second = sandbox.bundle(["sh", "-c", "cat /proc/self/uid_map; readlink /proc/self/ns/user; id -u"],
                            name="joiner", linux={"namespaces": namespaces})
    _chown_tree(second.rootfs, HOST, HOST)
    out = _run_ok(rt, sandbox, second)
    assert out[0].split() == ["0", str(HOST), str(SIZE)]
    assert out[1] == f"user:[{os.stat(userns).st_ino}]"
    assert out[2] == "0"


@pytest.fixture
def shared_dir(sandbox: Sandbox) -> Path:
    """A host directory owned by host root, holding a root file and a uid 1000 file."""
    d = sandbox.host_dir("shared")
    (d / "root-file").write_text("r")
    (d / "user-file").write_text("u")
    os.chown(d / "user-file", 1000, 1000)
    return d


def _idmapped(source: Path, *options: str, maps: list[dict[str, int]] | None = MAPS) -> dict[str, Any]:
    m: dict[str, Any] = {"destination": "/shared", "type": "bind", "source": str(source),
                         "options": ["rbind", *options]}
    if maps is not None:
        m["uidMappings"] = maps
        m["gidMappings"] = maps
    return m


STAT = "stat -c '%u:%g %n' /shared/root-file /shared/user-file"


def test_idmapped_mount_gives_a_mapped_root_the_host_roots_files(
        sandbox: Sandbox, rt: Runtime, shared_dir: Path) -> None:
    """With the container's own mapping on the mount, host root's files are the container
    root's, and what the container root writes there is host root's on disk (not HOST's)."""
    b = _mapped_bundle(sandbox, f"{STAT}; echo w > /shared/written; grep ' /shared ' /proc/self/mountinfo",
                       extra_mounts=[_idmapped(shared_dir, "idmap")])
    out = _run_ok(rt, sandbox, b)
    assert out[:2] == ["0:0 /shared/root-file", "1000:1000 /shared/user-file"]
    assert "idmapped" in out[2].split(" - ")[0], out[2]
    written = os.stat(shared_dir / "written")
    assert (written.st_uid, written.st_gid) == (0, 0)


def test_idmap_option_alone_takes_the_containers_mappings(
        sandbox: Sandbox, rt: Runtime, shared_dir: Path) -> None:
    b = _mapped_bundle(sandbox, STAT, extra_mounts=[_idmapped(shared_dir, "idmap", maps=None)])
    assert _run_ok(rt, sandbox, b) == ["0:0 /shared/root-file", "1000:1000 /shared/user-file"]


def test_without_idmap_the_same_files_are_nobodys(
        sandbox: Sandbox, rt: Runtime, shared_dir: Path) -> None:
    """The control for the tests above: a plain bind shows host root's files as unmapped."""
    b = _mapped_bundle(sandbox, STAT, extra_mounts=[_idmapped(shared_dir, maps=None)])
    assert _run_ok(rt, sandbox, b) == [f"{NOBODY}:{NOBODY} /shared/root-file",
                                       f"{NOBODY}:{NOBODY} /shared/user-file"]


def test_idmapped_mount_without_a_user_namespace(
        sandbox: Sandbox, rt: Runtime, shared_dir: Path) -> None:
    """The mount's mapping alone: disk id 0 shows as HOST, disk 1000 as HOST+1000."""
    b = sandbox.bundle(["sh", "-c", STAT], extra_mounts=[_idmapped(shared_dir, "idmap")])
    out = _run_ok(rt, sandbox, b)
    assert out == [f"{HOST}:{HOST} /shared/root-file", f"{HOST + 1000}:{HOST + 1000} /shared/user-file"]


@pytest.mark.parametrize("option,sub_owner", [("ridmap", "0:0"), ("idmap", f"{NOBODY}:{NOBODY}")])
def test_ridmap_maps_submounts_idmap_only_the_top(
        sandbox: Sandbox, rt: Runtime, shared_dir: Path, option: str, sub_owner: str) -> None:
    """rbind keeps a submount of the source; `ridmap` idmaps it too, `idmap` only the top."""
    sub = shared_dir / "sub"
    sub.mkdir()
    sandbox.mount_tmpfs(sub)
    (sub / "f").write_text("s")
    b = _mapped_bundle(sandbox, f"{STAT}; stat -c '%u:%g' /shared/sub/f",
                       extra_mounts=[_idmapped(shared_dir, option)])
    out = _run_ok(rt, sandbox, b)
    assert out[0] == "0:0 /shared/root-file"
    assert out[2] == sub_owner


@pytest.mark.parametrize("dev", ["null", "tty", "urandom"])
def test_image_device_that_is_a_fifo_never_hangs_create(sandbox: Sandbox, rt: Runtime,
                                                        dev: str) -> None:
    """A user namespace and no /dev tmpfs: the init binds the host's nodes over the image's
    /dev entries. An image whose /dev/<dev> is a FIFO must not block the init opening it
    (create used to hang for ever while `state` said "created"): create works with the real
    node there, or fails in one line, and `state` says which."""
    b = _mapped_bundle(sandbox, f"stat -c '%F %t:%T' /dev/{dev}")
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/dev"]
    b.write()
    fifo = b.rootfs / "dev" / dev
    os.mkfifo(fifo)
    os.lchown(fifo, HOST, HOST)
    want = {"null": "1:3", "tty": "5:0", "urandom": "1:9"}[dev]
    cid = sandbox.new_id()
    out = sandbox.tmp / "out"
    try:
        res = rt.create(b, cid, out_dir=out, check=False, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"create hung on an image whose /dev/{dev} is a FIFO")
    if res.returncode != 0:
        assert len(res.stderr.splitlines()) == 1 and f"/dev/{dev}" in res.stderr, res.stderr
        gone = rt.run_cmd("state", cid)
        assert gone.returncode == 1 and "does not exist" in gone.stderr, gone
        return
    assert rt.state(cid)["status"] == "created"
    rt.run_cmd("start", cid, check=True)
    rt.wait_status(cid, "stopped")
    major, minor = want.split(":")
    assert (out / f"{cid}.out").read_text().split() == [
        "character", "special", "file", f"{int(major):x}:{int(minor):x}"]


def test_tmpcopyup_in_a_user_namespace(sandbox: Sandbox, rt: Runtime) -> None:
    """tmpcopyup where the init is root of a user namespace only: files keep their
    (mapped) owners and modes; a device node, which mknod may not make there, is left out
    as runc leaves it, and the container still starts."""
    b = _mapped_bundle(sandbox, "stat -c '%n %u:%g %a' /cu/file /cu/sub; cat /cu/file; "
                       "ls /cu", extra_mounts=[
                           {"destination": "/cu", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "tmpcopyup"]}])
    d = b.rootfs / "cu"
    (d / "sub").mkdir(parents=True)
    (d / "file").write_text("image file\n")
    os.chmod(d / "file", 0o644)
    os.chown(d / "file", HOST + 1000, HOST + 1001)
    os.chown(d / "sub", HOST + 7, HOST + 7)
    os.chmod(d / "sub", 0o700)
    os.mknod(d / "null", 0o20666, os.makedev(1, 3))  # S_IFCHR
    out = _run_ok(rt, sandbox, b)
    assert out == ["/cu/file 1000:1001 644", "/cu/sub 7:7 700", "image file", "file", "sub"]


def test_bind_source_the_user_namespace_cannot_reach(sandbox: Sandbox, rt: Runtime) -> None:
    """A bind source below a host directory of mode 0700 (root's): the container's mapped
    root may not even look it up. runc opens bind sources on the host before the container
    enters its user namespace, so it still mounts -- with its options (ro) -- and shows the
    host's content; pyrunc must too, and leave the host directory as it was."""
    locked = sandbox.host_dir("locked")
    os.chmod(locked, 0o700)
    shared = locked / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    (shared / "file").write_text("from the host\n")
    os.chmod(shared / "file", 0o644)
    b = _mapped_bundle(sandbox, "cat /mnt/shared/file; touch /mnt/shared/new 2>/dev/null "
                       "|| echo read-only", extra_mounts=[
                           {"destination": "/mnt/shared", "type": "bind", "source": str(shared),
                            "options": ["rbind", "ro"]}])
    assert _run_ok(rt, sandbox, b) == ["from the host", "read-only"]
    assert sorted(os.listdir(shared)) == ["file"]
    assert os.stat(locked).st_mode & 0o777 == 0o700


UNMAPPED_GID = "the devpts gid (gid=5 in the mount options) is not mapped in the user namespace"


def test_devpts_gid_unmapped_in_the_callers_user_namespace(sandbox: Sandbox, rt: Runtime) -> None:
    """Root of `unshare -r` maps only gid 0: the default spec's devpts gid=5 makes the kernel
    refuse the mount with a bare EINVAL. The one line says which option and why; the same
    bundle without gid=5 runs there (so that was the cause), its ptmx owned by gid 0."""
    b = sandbox.bundle(["sh", "-c", "cat /proc/self/gid_map; stat -c %g /dev/pts/ptmx"])
    devpts = next(m for m in b.config["mounts"] if m["type"] == "devpts")
    assert "gid=5" in devpts["options"]

    def run_in_unshare() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unshare", "-r", *rt.argv("run", "--bundle", str(b.path),
                                                         sandbox.new_id())],
                              capture_output=True, text=True, timeout=60)
    res = run_in_unshare()
    assert res.returncode == 1, res
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
    assert UNMAPPED_GID in res.stderr and "(its gids: 0)" in res.stderr, res.stderr
    devpts["options"].remove("gid=5")
    b.write()
    res = run_in_unshare()
    assert res.returncode == 0, res
    assert res.stdout.split() == ["0", "0", "1", "0"]


def test_devpts_gid_unmapped_in_the_containers_user_namespace(sandbox: Sandbox, rt: Runtime) -> None:
    """A container user namespace that maps only its root: the same line, from its gid_map."""
    one = [{"containerID": 0, "hostID": HOST, "size": 1}]
    b = _mapped_bundle(sandbox, "true", linux={"uidMappings": one, "gidMappings": one})
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 1, res
    assert UNMAPPED_GID in res.stderr and "(its gids: 0)" in res.stderr, res.stderr
