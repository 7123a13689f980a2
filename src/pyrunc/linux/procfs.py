"""Process facts from /proc, used to derive status rather than trust a file."""

from __future__ import annotations

import errno
import os


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the comm field, which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """Field 22 (start time in clock ticks) of a live, non-zombie process; None otherwise."""
    if pid <= 0:
        return None
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_same_process(pid: int, recorded_start: int) -> bool:
    return recorded_start != 0 and start_time(pid) == recorded_start


IdRange = tuple[int, int, int]  # (first id inside, first id outside, count) of an id map


def parse_id_map(text: str) -> list[IdRange]:
    """A uid_map or gid_map's ranges (a line that is not three numbers is left out)."""
    out: list[IdRange] = []
    for line in text.splitlines():
        try:
            inside, outside, count = (int(x) for x in line.split())
        except ValueError:
            continue
        out.append((inside, outside, count))
    return out


def id_map(name: str, pid: int | str = "self") -> list[IdRange] | None:
    """/proc/PID/`name` ("uid_map" or "gid_map") parsed; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return parse_id_map(f.read())
    except OSError:
        return None


def map_id(ranges: list[IdRange], inside_id: int) -> int | None:
    """What `inside_id` is in the parent user namespace by `ranges`; None if unmapped."""
    for inside, outside, count in ranges:
        if inside <= inside_id < inside + count:
            return outside + inside_id - inside
    return None


MountEntry = tuple[int, str, str, list[str]]  # (mount id, mount point, fs type, super options)


def mountinfo(pid: int | str = "self", proc_dir: int = -1) -> list[MountEntry]:
    """/proc/PID/mountinfo, one entry a mount in the order the kernel lists them (a mount
    after the mounts it covers); the mount point unescaped, and bytes that are not UTF-8
    kept as os.fsdecode keeps them (the kernel escapes only blanks and backslashes). Plain
    tuples: the create path must not import collections. `proc_dir`: an fd of the
    /proc/PID directory to read it from instead (one taken before /proc was detached)."""
    out: list[MountEntry] = []
    path = f"/proc/{pid}/mountinfo" if proc_dir < 0 else os.open(
        "mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
    with open(path, errors="surrogateescape") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split(" ", 5)
            mp = fields[4]
            if "\\" in mp:
                mp = unescape(mp)
            # one blank between fields, each escaped: an empty source is an empty field
            fstype, _source, superopts = post.rstrip("\n").split(" ")[:3]
            out.append((int(fields[0]), mp, fstype, superopts.split(",")))
    return out


def unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash come as \\ooo octal escapes."""
    parts = field.split("\\")
    out = [parts[0]]
    for part in parts[1:]:
        code = part[:3]
        if len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)) + part[3:])
        else:
            out.append("\\" + part)
    return "".join(out)


PROC_SUPER_MAGIC = 0x9FA0


def write_proc_file(path: str, value: str) -> None:
    """Write a /proc file after checking it really is on procfs: a hostile config can bind a
    host directory over /proc (or /proc/sys) to make the runtime write there instead."""
    from pyrunc.linux import syscalls as sc
    # O_NONBLOCK: a FIFO of the image where /proc should be must not hang the init.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if sc.fstatfs_type(fd) != PROC_SUPER_MAGIC:
            raise OSError(errno.EXDEV, "not on procfs (something is mounted over /proc)", path)
        os.write(fd, value.encode())
    finally:
        os.close(fd)


PROC_ROOT_INO = 1


def write_sysctl(proc_root: int, key: str, value: str) -> None:
    """Write /proc/sys/<key> of the procfs whose root `proc_root` is (an fd of it), and no
    other file: the lookup stays beneath that root and on that one mount (RESOLVE_NO_XDEV:
    a file bound over the sysctl, even a procfs one such as a host process's
    oom_score_adj, is refused), follows no symlink, and cannot block."""
    from pyrunc.linux import syscalls as sc
    st = os.fstat(proc_root)
    if sc.fstatfs_type(proc_root) != PROC_SUPER_MAGIC or st.st_ino != PROC_ROOT_INO:
        raise OSError(errno.EXDEV, "not the root of a procfs (something is mounted over /proc)",
                      "/proc")
    strict = (sc.RESOLVE_BENEATH | sc.RESOLVE_NO_XDEV | sc.RESOLVE_NO_SYMLINKS
              | sc.RESOLVE_NO_MAGICLINKS)
    rel = "sys/" + key.replace(".", "/")
    try:
        fd = sc.openat2(proc_root, rel, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC, 0, strict)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise OSError(errno.EXDEV, "something is mounted over it", "/proc/" + rel) from None
        raise OSError(exc.errno, exc.strerror, "/proc/" + rel) from None
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def pid_ns_members(pid: int) -> list[int]:
    """Host pids of the processes in `pid`'s pid namespace that we may look at: what a
    container without a cgroup (rootless) holds, when the namespace is its own."""
    try:
        st = os.stat(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    ns = (st.st_dev, st.st_ino)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            other = os.stat(f"/proc/{entry}/ns/pid")
        except OSError:  # gone, or another user's
            continue
        if (other.st_dev, other.st_ino) == ns:
            found.append(int(entry))
    return sorted(found)
