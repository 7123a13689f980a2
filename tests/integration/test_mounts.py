"""The container's filesystem as seen from inside: /proc/mounts against config.mounts,
/dev, linux.devices, masked and read-only paths, root.readonly, bind/rbind/tmpfs mounts,
--no-pivot, and mount destinations that try to escape the rootfs through symlinks."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from .conftest import Sandbox
from .helpers import SANDBOX_ENV, mounts_under


class Mnt(NamedTuple):
    source: str
    fstype: str
    options: frozenset[str]


def parse_mounts(text: str) -> dict[str, Mnt]:
    """/proc/mounts text -> {mount point: Mnt}; the last (top) mount on a path wins."""
    out: dict[str, Mnt] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mp = fields[1].replace("\\040", " ")
        out[mp] = Mnt(fields[0], fields[2], frozenset(fields[3].split(",")))
    return out


RW_ROOT = {"path": "rootfs", "readonly": False}


# --------------------------------------------------------------------------------------
# /proc/mounts


def test_proc_mounts_match_config(sandbox: Sandbox) -> None:
    """Every default mount is there with its fs type and the options config.json asked for."""
    mounts = parse_mounts(sandbox.read_file("/proc/mounts"))

    assert "ro" in mounts["/"].options, "root.readonly=true but / is not ro"
    assert mounts["/proc"].fstype == "proc"

    dev = mounts["/dev"]
    assert dev.fstype == "tmpfs"
    assert {"nosuid", "mode=755", "size=65536k"} <= dev.options

    pts = mounts["/dev/pts"]
    assert pts.fstype == "devpts"
    assert {"nosuid", "noexec", "mode=620", "ptmxmode=666", "gid=5"} <= pts.options

    shm = mounts["/dev/shm"]
    assert shm.fstype == "tmpfs"
    assert {"nosuid", "noexec", "nodev", "size=65536k"} <= shm.options

    mq = mounts["/dev/mqueue"]
    assert mq.fstype == "mqueue"
    assert {"nosuid", "noexec", "nodev"} <= mq.options

    sysfs = mounts["/sys"]
    assert sysfs.fstype == "sysfs"
    assert {"ro", "nosuid", "noexec", "nodev"} <= sysfs.options

    cg = {mp: m for mp, m in mounts.items()
          if mp == "/sys/fs/cgroup" or mp.startswith("/sys/fs/cgroup/")}
    assert cg, "nothing mounted at /sys/fs/cgroup"
    for mp, m in cg.items():
        if m.fstype in ("cgroup", "cgroup2"):
            assert "ro" in m.options, f"{mp} is a writable cgroup mount"

    for ro_path in ("/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"):
        assert ro_path in mounts, f"readonly path {ro_path} is not a mount"
        assert "ro" in mounts[ro_path].options, ro_path


def test_no_host_mounts_visible(sandbox: Sandbox) -> None:
    """Only the rootfs and config's mounts are visible: no host mount leaks in."""
    mounts = parse_mounts(sandbox.read_file("/proc/mounts"))
    allowed = ("/", "/proc", "/dev", "/sys")
    for mp in mounts:
        assert mp == "/" or mp.startswith(tuple(a + "/" for a in allowed[1:])) or mp in allowed, (
            f"unexpected mount {mp} inside the container")
    assert "/work" not in mounts and "/tmp" not in mounts


def test_proc_is_the_containers(sandbox: Sandbox) -> None:
    """/proc is a fresh procfs of the container's pid namespace."""
    out = sandbox.sh_ok("cat /proc/1/cmdline | tr '\\0' ' '; echo; readlink /proc/self")
    cmdline, self_pid = out.splitlines()
    assert cmdline.startswith("sh -c ")
    assert int(self_pid) < 10


# --------------------------------------------------------------------------------------
# /dev


DEFAULT_DEVICES = {
    "/dev/null": "1:3",
    "/dev/zero": "1:5",
    "/dev/full": "1:7",
    "/dev/random": "1:8",
    "/dev/urandom": "1:9",
    "/dev/tty": "5:0",
}


def test_default_devices(sandbox: Sandbox) -> None:
    """The spec's default devices exist as char devices with the right numbers, 0666."""
    script = "; ".join(f"stat -c '%n|%F|%t:%T|%a' {p}" for p in DEFAULT_DEVICES)
    out = sandbox.sh_ok(script)
    seen = {}
    for line in out.splitlines():
        name, ftype, hexnum, mode = line.split("|")
        major, minor = (int(x, 16) for x in hexnum.split(":"))
        seen[name] = (ftype, f"{major}:{minor}", mode)
    for path, num in DEFAULT_DEVICES.items():
        assert seen[path] == ("character special file", num, "666"), path


def test_default_devices_usable(sandbox: Sandbox) -> None:
    """The device cgroup allows the default devices: read zero, write null, full is full."""
    out = sandbox.sh_ok(
        "head -c 4 /dev/zero | od -An -tx1; echo x > /dev/null && echo null-ok; "
        "head -c 8 /dev/urandom | wc -c; "
        "if echo x > /dev/full; then echo full-wrote; else echo full-refused; fi")
    lines = [ln.strip() for ln in out.splitlines()]
    assert lines == ["00 00 00 00", "null-ok", "8", "full-refused"]


def test_dev_symlinks_and_ptmx(sandbox: Sandbox) -> None:
    """/dev/fd, stdin, stdout, stderr link into /proc/self/fd; /dev/ptmx reaches pts/ptmx."""
    out = sandbox.sh_ok(
        "for l in fd stdin stdout stderr; do echo $l=$(readlink /dev/$l); done; "
        "if [ -L /dev/ptmx ]; then echo ptmx=link:$(readlink /dev/ptmx); "
        "else echo ptmx=$(stat -c '%F|%t:%T' /dev/ptmx); fi")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert got["fd"] == "/proc/self/fd"
    assert got["stdin"] == "/proc/self/fd/0"
    assert got["stdout"] == "/proc/self/fd/1"
    assert got["stderr"] == "/proc/self/fd/2"
    assert got["ptmx"] in ("link:pts/ptmx", "link:/dev/pts/ptmx", "character special file|5:2")


@pytest.mark.parametrize("copyup", [False, True])
def test_readonly_dev_still_gets_devices_and_submounts(sandbox: Sandbox, copyup: bool) -> None:
    """A /dev tmpfs with `ro` (podman --read-only asks for it): the devices, links and the
    /dev/pts, /dev/shm, /dev/mqueue submounts are still made, ro applies after them (runc's
    order), and the container cannot create files in /dev. With `tmpcopyup` too, the image's
    /dev files are copied up first; the copy-up made /dev read-only at once, so the create
    failed (cannot mount devpts on /dev/pts: Read-only file system)."""
    b = sandbox.bundle(["sh", "-c",
                        "cat /dev/from-image 2>/dev/null; "
                        "echo x > /dev/null && echo null-ok; readlink /dev/ptmx; "
                        "touch /dev/newfile 2>/dev/null || echo cannot-create; cat /proc/mounts"])
    for m in b.config["mounts"]:
        if m["destination"] == "/dev":
            m["options"] = [*m["options"], "ro"] + (["tmpcopyup"] if copyup else [])
    b.write()
    (b.rootfs / "dev").mkdir(exist_ok=True)
    (b.rootfs / "dev" / "from-image").write_text("image dev file\n")
    res = sandbox.rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    if copyup:
        assert lines.pop(0) == "image dev file"
    assert lines[:3] == ["null-ok", "pts/ptmx", "cannot-create"]
    mounts = parse_mounts("\n".join(lines[3:]))
    assert "ro" in mounts["/dev"].options and mounts["/dev"].fstype == "tmpfs"
    assert {"nosuid"} <= mounts["/dev"].options
    assert mounts["/dev/pts"].fstype == "devpts" and "rw" in mounts["/dev/pts"].options
    assert mounts["/dev/shm"].fstype == "tmpfs" and "rw" in mounts["/dev/shm"].options
    assert mounts["/dev/mqueue"].fstype == "mqueue"


def test_linux_devices_created(sandbox: Sandbox) -> None:
    """linux.devices entries are created with type, major:minor, mode, uid and gid as
    configured (a nested path included)."""
    devices: list[dict[str, Any]] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o620,
         "uid": 1000, "gid": 1000},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": "/dev/loop-test", "type": "b", "major": 7, "minor": 200, "fileMode": 0o640,
         "uid": 0, "gid": 5},
    ]
    script = "; ".join(f"stat -c '%n|%F|%t:%T|%a|%u|%g' {d['path']}" for d in devices)
    out = sandbox.sh_ok(script, linux={"devices": devices})
    got = {}
    for line in out.splitlines():
        name, ftype, hexnum, mode, uid, gid = line.split("|")
        major, minor = (int(x, 16) for x in hexnum.split(":"))
        got[name] = (ftype, major, minor, int(mode, 8), int(uid), int(gid))
    kinds = {"c": "character special file", "b": "block special file"}
    for d in devices:
        assert got[d["path"]] == (kinds[d["type"]], d["major"], d["minor"], d["fileMode"],
                                  d["uid"], d["gid"]), d["path"]


def test_device_cgroup_denies_unlisted(sandbox: Sandbox) -> None:
    """A created device node is not usable unless linux.resources.devices allows it."""
    dev = {"path": "/dev/loop-test", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600,
           "uid": 0, "gid": 0}
    res = sandbox.sh("head -c 1 /dev/loop-test", linux={"devices": [dev]})
    assert res.returncode != 0
    assert "Operation not permitted" in res.stderr, res.stderr


# --------------------------------------------------------------------------------------
# masked / read-only paths, root.readonly


def test_masked_paths(sandbox: Sandbox) -> None:
    """maskedPaths: files read empty and directories list empty (host /proc/timer_list and
    rootfs files that do have content)."""
    assert Path("/proc/timer_list").read_text(), "host /proc/timer_list unexpectedly empty"
    out = sandbox.sh_ok(
        "echo timer=$(wc -c < /proc/timer_list); echo secret=$(wc -c < /etc/secret.txt); "
        "echo dir=$(ls -A /etc/secretdir | wc -l); echo acpi=$(ls -A /proc/acpi | wc -l)",
        linux={"maskedPaths": ["/proc/timer_list", "/proc/acpi", "/etc/secret.txt",
                               "/etc/secretdir", "/does/not/exist"]})
    got = dict(line.split("=") for line in out.splitlines())
    assert got == {"timer": "0", "secret": "0", "dir": "0", "acpi": "0"}


def test_unmasked_paths_are_readable(sandbox: Sandbox) -> None:
    """Control for test_masked_paths: without the mask the same files have content."""
    out = sandbox.sh_ok("wc -c < /etc/secret.txt; ls -A /etc/secretdir",
                        linux={"maskedPaths": []})
    assert out.split() == ["11", "inner.txt"]


def test_readonly_paths(sandbox: Sandbox) -> None:
    """readonlyPaths refuse writes with EROFS while the rest of a writable root accepts them."""
    res = sandbox.sh(
        "touch /tmp/ok && echo tmp-ok; "
        "cat /data/existing.txt; "
        "touch /data/new 2>&1; "
        "{ echo x > /proc/sys/kernel/hostname; } 2>&1; true",
        root=RW_ROOT,
        linux={"readonlyPaths": ["/data", "/proc/sys", "/does/not/exist"]})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "tmp-ok"
    assert lines[1] == "data"
    assert "Read-only file system" in lines[2], lines
    assert "Read-only file system" in lines[3], lines


def test_root_readonly(sandbox: Sandbox) -> None:
    """root.readonly=true: writing anywhere on the rootfs fails with EROFS; tmpfs mounts
    stay writable."""
    res = sandbox.sh("touch /newfile 2>&1; touch /dev/shm/ok && echo shm-ok")
    assert res.returncode == 0, res.stderr
    assert "Read-only file system" in res.stdout
    assert "shm-ok" in res.stdout


def test_root_writable(sandbox: Sandbox) -> None:
    """root.readonly=false: the rootfs is writable and writes land in the bundle's rootfs."""
    b = sandbox.bundle(["sh", "-c", "echo written > /newfile"], root=RW_ROOT)
    res = sandbox.rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    assert (b.rootfs / "newfile").read_text() == "written\n"


# --------------------------------------------------------------------------------------
# bind / rbind / tmpfs


def test_bind_mount_rw(sandbox: Sandbox) -> None:
    """A rw bind mount shows host content and container writes reach the host."""
    host = sandbox.host_dir("rw")
    (host / "hello.txt").write_text("from host\n")
    b = sandbox.bundle(
        ["sh", "-c", "cat /mnt/rw/hello.txt; echo from container > /mnt/rw/out.txt; "
                     "grep ' /mnt/rw ' /proc/mounts"],
        extra_mounts=[{"destination": "/mnt/rw", "type": "bind", "source": str(host),
                       "options": ["bind", "rw"]}])
    res = sandbox.rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "from host"
    assert "rw" in lines[1].split()[3].split(",")
    assert (host / "out.txt").read_text() == "from container\n"


def test_bind_mount_ro(sandbox: Sandbox) -> None:
    """A ro bind mount is readable, refuses writes (EROFS) and shows ro in /proc/mounts."""
    host = sandbox.host_dir("ro")
    (host / "hello.txt").write_text("from host\n")
    res = sandbox.sh(
        "cat /mnt/ro/hello.txt; touch /mnt/ro/new 2>&1; grep ' /mnt/ro ' /proc/mounts; true",
        extra_mounts=[{"destination": "/mnt/ro", "type": "bind", "source": str(host),
                       "options": ["bind", "ro", "nosuid", "nodev"]}])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "from host"
    assert "Read-only file system" in lines[1]
    opts = set(lines[2].split()[3].split(","))
    assert {"ro", "nosuid", "nodev"} <= opts
    assert not (host / "new").exists()


def test_bind_mount_file(sandbox: Sandbox) -> None:
    """A single file can be bind mounted onto a path that does not exist in the rootfs."""
    host = sandbox.host_dir("file")
    (host / "conf").write_text("key=value\n")
    out = sandbox.read_file(
        "/etc/app/conf",
        extra_mounts=[{"destination": "/etc/app/conf", "type": "bind",
                       "source": str(host / "conf"), "options": ["bind", "ro"]}])
    assert out == "key=value\n"


def test_bind_source_relative_to_bundle(sandbox: Sandbox) -> None:
    """A relative bind source is resolved against the bundle directory (runtime-spec:
    "Path values for bind mounts are either absolute or relative to the bundle")."""
    b = sandbox.bundle(["cat", "/mnt/rel/f"],
                       extra_mounts=[{"destination": "/mnt/rel", "type": "bind",
                                      "source": "bundle-data", "options": ["bind", "ro"]}])
    (b.path / "bundle-data").mkdir()
    (b.path / "bundle-data" / "f").write_text("relative source\n")
    res = sandbox.rt.run(b, sandbox.new_id(), cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "relative source\n"


def test_absolute_root_path(sandbox: Sandbox) -> None:
    """root.path may be absolute (and outside the bundle)."""
    b = sandbox.bundle(["cat", "/etc/rootfs-marker"])
    moved = sandbox.tmp / "elsewhere-rootfs"
    b.rootfs.rename(moved)
    b.config["root"] = {"path": str(moved), "readonly": True}
    b.write()
    res = sandbox.rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout == "pyrunc-test-rootfs\n"


@pytest.mark.parametrize("recursive", [True, False], ids=["rbind", "bind"])
def test_rbind_includes_submounts(sandbox: Sandbox, recursive: bool) -> None:
    """rbind carries the source's submounts into the container, plain bind does not."""
    tree = sandbox.host_dir("tree")
    (tree / "top.txt").write_text("top\n")
    (tree / "sub").mkdir()
    sandbox.mount_tmpfs(tree / "sub")
    (tree / "sub" / "in-sub.txt").write_text("sub\n")
    out = sandbox.sh_ok(
        "cat /mnt/tree/top.txt; ls -A /mnt/tree/sub; echo end",
        extra_mounts=[{"destination": "/mnt/tree", "type": "bind", "source": str(tree),
                       "options": ["rbind" if recursive else "bind", "ro"]}])
    if recursive:
        assert out.split() == ["top", "in-sub.txt", "end"]
    else:
        assert out.split() == ["top", "end"]


def test_rro_makes_submounts_readonly(sandbox: Sandbox) -> None:
    """`rro` (recursive read-only, kernel >= 5.12) makes the bind and its submounts ro,
    where plain `ro` leaves the submount writable."""
    tree = sandbox.host_dir("tree")
    (tree / "sub").mkdir()
    sandbox.mount_tmpfs(tree / "sub")
    out = sandbox.sh_ok(
        "for d in /mnt/rro /mnt/rro/sub /mnt/ro /mnt/ro/sub; do "
        "if touch $d/probe 2>/dev/null; then echo $d=rw; else echo $d=ro; fi; done",
        extra_mounts=[
            {"destination": "/mnt/rro", "type": "bind", "source": str(tree),
             "options": ["rbind", "rro"]},
            {"destination": "/mnt/ro", "type": "bind", "source": str(tree),
             "options": ["rbind", "ro"]},
        ])
    got = dict(line.split("=") for line in out.splitlines())
    assert got == {"/mnt/rro": "ro", "/mnt/rro/sub": "ro", "/mnt/ro": "ro", "/mnt/ro/sub": "rw"}


def test_tmpfs_options(sandbox: Sandbox) -> None:
    """A tmpfs mount gets its size, mode and flags."""
    out = sandbox.sh_ok(
        "grep ' /scratch ' /proc/mounts; stat -c %a /scratch; "
        "touch /scratch/f && echo writable",
        extra_mounts=[{"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec", "size=2m", "mode=1770"]}])
    lines = out.splitlines()
    fields = lines[0].split()
    assert fields[2] == "tmpfs"
    assert {"rw", "nosuid", "nodev", "noexec", "size=2048k", "mode=1770"} <= set(
        fields[3].split(","))
    assert lines[1] == "1770"
    assert lines[2] == "writable"


def test_mount_order_is_config_order(sandbox: Sandbox) -> None:
    """Mounts are applied in config order: a later mount nested in an earlier one is
    visible (an out-of-order runtime hides it under the outer tmpfs)."""
    host = sandbox.host_dir("inner")
    (host / "f").write_text("inner\n")
    out = sandbox.read_file(
        "/outer/inner/f",
        extra_mounts=[
            {"destination": "/outer", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m"]},
            {"destination": "/outer/inner", "type": "bind", "source": str(host),
             "options": ["bind"]},
        ])
    assert out == "inner\n"


def test_no_pivot(sandbox: Sandbox) -> None:
    """`run --no-pivot` (MS_MOVE + chroot) still gives the rootfs and the config's mounts."""
    res = sandbox.run(
        ["sh", "-c", "cat /etc/rootfs-marker; ls /; grep -c ' /proc proc ' /proc/mounts"],
        "--no-pivot")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert lines[0] == "pyrunc-test-rootfs"
    assert {"bin", "etc", "proc", "dev", "sys"} <= set(lines[1:-1])
    assert "work" not in lines and "boot" not in lines
    assert int(lines[-1]) >= 1


@pytest.mark.parametrize("fs", ["proc", "sysfs"])
def test_no_pivot_hides_the_bare_proc_and_sys(sandbox: Sandbox, fs: str) -> None:
    """runc's case: without pivot_root the host's /proc and /sys would stay in the
    container's mount namespace, fully visible, and the kernel would then let a nested user
    namespace mount a fresh procfs (or sysfs) past the container's masked and read-only
    paths (/proc/sysrq-trigger...). With --no-pivot they must be gone: the mount is denied.
    With pivot_root the same mount is denied as well (the container's /proc is masked)."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP"]
    script = f"unshare -mrpfn sh -c 'mount -t {fs} none /mnt && echo MOUNTED'"
    for flags in (("--no-pivot",), ()):
        b = sandbox.bundle(["sh", "-c", script], process={"capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps}})
        res = sandbox.rt.run(b, sandbox.new_id(), *flags)
        assert "MOUNTED" not in res.stdout, f"a fresh {fs} was mounted ({flags})"
        assert res.returncode != 0
        assert "ermission denied" in res.stderr or "not permitted" in res.stderr, res.stderr
    # the same nested user namespace may mount what the kernel allows it (a tmpfs)
    res = sandbox.run(["sh", "-c", "unshare -mrpf sh -c 'mount -t tmpfs none /mnt && echo OK'"],
                      "--no-pivot", process={"capabilities": {
                          "bounding": caps, "effective": caps, "permitted": caps}})
    assert res.stdout == "OK\n", res.stderr


def test_no_pivot_hides_a_bare_proc_under_another_mount(sandbox: Sandbox) -> None:
    """A host procfs that another mount covers (here a tmpfs over it, in a mount namespace
    the runtime runs in) is still 'fully visible' to the kernel's check, which looks at what
    is mounted inside a procfs, not over it. --no-pivot detached by path, which took the
    covering tmpfs off and left that procfs: a nested user namespace mounted a fresh one."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP"]
    script = "unshare -mrpfn sh -c 'mount -t proc none /mnt && echo MOUNTED'"
    b = sandbox.bundle(["sh", "-c", script], process={"capabilities": {
        "bounding": caps, "effective": caps, "permitted": caps}})
    covered = sandbox.host_dir("covered-proc")
    run = " ".join(sandbox.rt.argv("run", "--no-pivot", "--bundle", str(b.path),
                                   sandbox.new_id()))
    res = subprocess.run(["unshare", "-m", "sh", "-c",
                          f"mount --make-rprivate / && mount -t proc proc {covered} && "
                          f"mount -t tmpfs tmpfs {covered} && exec {run}"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, SANDBOX_ENV: sandbox.rt.sandbox_id})
    assert "MOUNTED" not in res.stdout, "a fresh procfs was mounted"
    assert "ermission denied" in res.stderr or "not permitted" in res.stderr, res


# --------------------------------------------------------------------------------------
# symlink escapes


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_mount_destination_symlink_stays_in_rootfs(sandbox: Sandbox, kind: str) -> None:
    """A destination that is a symlink pointing outside the rootfs is resolved inside the
    rootfs: the host dir it names is not created, written or mounted over."""
    # on the host's /tmp, not the sandbox's /dev/shm: inside the container /dev is a tmpfs,
    # which would hide where the in-rootfs mount point got created
    victim = sandbox.pytest_tmp / "victim"
    victim.mkdir()
    (victim / "sentinel").write_text("untouched\n")
    target = victim / "newdir"  # does not exist on the host
    src = sandbox.host_dir("src")
    (src / "marker").write_text("bind-source\n")

    b = sandbox.bundle(["sh", "-c", "cat /evil/marker && echo via-link > /evil/written"],
                       root=RW_ROOT)
    link_target = str(target) if kind == "absolute" else "../" * 12 + str(target).lstrip("/")
    os.symlink(link_target, b.rootfs / "evil")
    b.add_mount({"destination": "/evil", "type": "bind", "source": str(src),
                 "options": ["bind", "rw"]})
    res = sandbox.rt.run(b, sandbox.new_id())

    assert not target.exists(), "runtime followed the symlink out of the rootfs"
    assert sorted(p.name for p in victim.iterdir()) == ["sentinel"]
    assert (victim / "sentinel").read_text() == "untouched\n"
    assert mounts_under(victim) == []
    assert res.returncode == 0, res.stderr
    assert res.stdout == "bind-source\n"
    assert (src / "written").read_text() == "via-link\n"
    # the mount point was created inside the rootfs instead
    assert (b.rootfs / str(target).lstrip("/")).is_dir()


def test_file_mount_destination_symlink_stays_in_rootfs(sandbox: Sandbox) -> None:
    """Same for a file bind mount: the runtime must not create the host file the symlink
    names."""
    victim = sandbox.host_dir("victim")
    target = victim / "created-by-runtime"
    src = sandbox.host_dir("src")
    (src / "f").write_text("file-source\n")
    b = sandbox.bundle(["cat", "/evil-file"], root=RW_ROOT)
    os.symlink(str(target), b.rootfs / "evil-file")
    b.add_mount({"destination": "/evil-file", "type": "bind", "source": str(src / "f"),
                 "options": ["bind", "ro"]})
    res = sandbox.rt.run(b, sandbox.new_id())
    assert not target.exists(), "runtime created a file on the host through the symlink"
    assert list(victim.iterdir()) == []
    assert res.returncode == 0, res.stderr
    assert res.stdout == "file-source\n"


def test_rootfs_symlink_to_host_proc_not_followed(sandbox: Sandbox) -> None:
    """A rootfs whose /proc is a symlink to a host path must not get procfs mounted on the
    host path (runc refuses such a /proc; mounting elsewhere is also acceptable)."""
    victim = sandbox.host_dir("victim-proc")
    b = sandbox.bundle(["sh", "-c", "test -e /proc/self/status && echo has-proc"],
                       root=RW_ROOT)
    os.rmdir(b.rootfs / "proc")
    os.symlink(str(victim), b.rootfs / "proc")
    res = sandbox.rt.run(b, sandbox.new_id())
    assert list(victim.iterdir()) == [], "procfs (or something) appeared in the host dir"
    assert mounts_under(victim) == []
    if res.returncode == 0:
        assert res.stdout == "has-proc\n"
    else:
        assert res.stderr.strip(), "refused without a message"


def _tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """path -> (type, mode, uid, gid, mtime_ns, nlink or link target or rdev), not following
    symlinks."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = stat.S_IFMT(st.st_mode)
            extra: Any = st.st_nlink
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode):
                extra = st.st_rdev
            out[str(p.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                             st.st_mtime_ns, extra)
    return out


def _image_dir(root: Path, secret_dir: Path) -> None:
    """An image directory with everything a copy-up must keep, and symlinks out of the rootfs."""
    d = root / "data"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "file").write_text("image file\n")
    os.chown(d / "file", 1000, 1001)
    os.chmod(d / "file", 0o4755)  # setuid survives (chown comes first)
    os.setxattr(d / "file", "user.origin", b"image")
    (d / "sub" / "deeper" / "nested").write_text("nested\n")
    os.chmod(d / "sub", 0o710)
    os.link(d / "file", d / "sub" / "hardlink")
    os.symlink(str(secret_dir), d / "abs-out")  # absolute, to a host directory
    os.symlink("../../../../../../../..", d / "rel-out")
    os.symlink("file", d / "rel-in")
    os.mkfifo(d / "fifo", 0o620)
    os.mknod(d / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for p in [d / "sub" / "deeper", d / "sub", d / "fifo", d / "file"]:
        os.utime(p, ns=(1_000_000_000, 1_234_567_890_123_456_789 % 10**18))
    os.utime(d / "rel-in", ns=(1_000_000_000, 2_000_000_000), follow_symlinks=False)
    os.chmod(d, 0o751)


@pytest.mark.parametrize("ro", [False, True])
def test_tmpfs_tmpcopyup(sandbox: Sandbox, ro: bool) -> None:
    """tmpcopyup (podman adds it to every tmpfs): the tmpfs starts with the image's files,
    owners, modes, times, hard links, symlinks as symlinks (never followed out of the rootfs),
    fifos, device nodes and xattrs; the image's own directory is left as it was; with `ro`
    the filled tmpfs is read-only."""
    secret = sandbox.tmp / "host-secret"
    secret.mkdir()
    (secret / "secret").write_text("host only\n")
    options = ["nosuid", "nodev", "tmpcopyup", "size=1m"] + (["ro"] if ro else [])
    b = sandbox.bundle(["sleep", "300"], extra_mounts=[
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": options}])
    _image_dir(b.rootfs, secret)
    expected = _tree(b.rootfs / "data")
    cid = sandbox.new_id()
    sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out")
    pid = sandbox.rt.state(cid)["pid"]
    inside = Path(f"/proc/{pid}/root/data")
    mounts = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
    top = [m for m in mounts if m[4] == "/data"]
    assert top and top[-1][top[-1].index("-") + 1] == "tmpfs", top
    assert ("ro" in top[-1][5].split(",")) is ro
    got = _tree(inside)
    assert got == expected
    assert stat.S_IMODE(inside.stat().st_mode) == 0o751  # the image directory's mode
    assert (inside / "file").read_text() == "image file\n"
    assert (inside / "sub" / "deeper" / "nested").read_text() == "nested\n"
    assert os.getxattr(inside / "file", "user.origin") == b"image"
    assert (inside / "file").stat().st_ino == (inside / "sub" / "hardlink").stat().st_ino
    assert not any(n == "secret" for _d, _s, names in os.walk(inside) for n in names)
    res = sandbox.rt.run_cmd("exec", cid, "sh", "-c",
                             "echo new > /data/new; echo rc=$?; cat /data/rel-in")
    assert res.stdout.splitlines() == [f"rc={1 if ro else 0}", "image file"], res.stderr
    assert not (b.rootfs / "data" / "new").exists()  # the image is untouched
    assert _tree(b.rootfs / "data") == expected
    sandbox.rt.run_cmd("delete", "--force", cid, check=True)


def test_tmpcopyup_keeps_holes(sandbox: Sandbox) -> None:
    """A hostile image's sparse file (4 GiB long, 8 KiB of data) is copied up as a sparse
    file: its data at the right offsets and its holes as holes. Copied byte by byte it
    filled the 16 MiB tmpfs (create failed: No space left on device); without a size= it
    would take 4 GiB of the host's memory."""
    size, mid = 4 << 30, 3 << 30
    b = sandbox.bundle(["sleep", "300"], extra_mounts=[
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "tmpcopyup", "size=16m"]}])
    (b.rootfs / "data").mkdir(exist_ok=True)
    with open(b.rootfs / "data" / "sparse", "wb") as f:
        f.write(b"head" * 1024)
        f.seek(mid)
        f.write(b"mid!" * 1024)
        f.truncate(size)
    cid = sandbox.new_id()
    sandbox.rt.create(b, cid, out_dir=sandbox.tmp / "out")
    pid = sandbox.rt.state(cid)["pid"]
    inside = Path(f"/proc/{pid}/root/data/sparse")
    st = inside.stat()
    assert st.st_size == size
    assert st.st_blocks * 512 <= 64 << 10, st.st_blocks  # 8 KiB of data, not 4 GiB
    with open(inside, "rb") as f:
        assert f.read(4096) == b"head" * 1024
        f.seek(4096)
        assert f.read(4096) == bytes(4096)
        f.seek(mid)
        assert f.read(4096) == b"mid!" * 1024
        f.seek(size - 4096)
        assert f.read() == bytes(4096)
    res = sandbox.rt.run_cmd("exec", cid, "sh", "-c",
                             "stat -c %s /data/sparse; head -c 4 /data/sparse")
    assert res.stdout == f"{size}\nhead", res.stderr
    sandbox.rt.run_cmd("delete", "--force", cid, check=True)
