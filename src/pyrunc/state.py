"""On-disk container records under <root>/<id>/, written atomically, mutated under a lock.

The record holds what cannot be derived (pid, its start time, bundle, cgroup
path...). The status is never stored: see container.py.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from pyrunc import jsonio
from pyrunc.errors import ExistsError, NotExistError, SystemError_, UsageError

# typing is only for the type checker here: importing it costs the hot commands ~5 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
# What of the config an `exec` applies (seccomp, personality, memory policy), as it was at
# create: runc keeps its whole config in its state for this. Not in state.json, which
# every `state` and `kill` reads, while only exec needs it (a seccomp profile is ~10 KB).
EXEC_CONFIG = "exec.json"
# runc's id alphabet (Go's \w is ASCII): letters, digits and _ + - .
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-.")


def _is_id(name: str) -> bool:
    return bool(name) and _ID_CHARS.issuperset(name) and name not in (".", "..")


class Record:
    """What cannot be derived about a container. A plain class, not a dataclass: `state` and
    `kill` run on every engine call and importing dataclasses (and inspect) costs more than
    reading the record."""

    __slots__ = ("id", "pid", "start_time", "bundle", "rootfs", "created", "cgroup_path",
                 "annotations", "owner", "oci_version", "new_pid_ns", "has_process", "hooks",
                 "ready", "keyring", "rdt_dirs", "unit_invocation")

    def __init__(self, id: str, pid: int, start_time: int, bundle: str, rootfs: str,
                 created: str, cgroup_path: str, annotations: dict[str, str] | None = None,
                 owner: str = "", oci_version: str = "", new_pid_ns: bool = True,
                 has_process: bool = True,
                 hooks: dict[str, list[dict[str, Any]]] | None = None,
                 ready: bool = True, keyring: str = "",
                 rdt_dirs: list[str] | None = None, unit_invocation: str = "") -> None:
        self.id = id
        self.pid = pid
        self.start_time = start_time  # /proc/PID/stat field 22: tells our init from a reused pid
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.cgroup_path = cgroup_path
        self.annotations = annotations or {}
        self.owner = owner
        self.oci_version = oci_version
        self.new_pid_ns = new_pid_ns
        self.has_process = has_process
        self.hooks = hooks or {}  # poststart, poststop
        # False from the moment the init exists (pid recorded) until it reported READY: a
        # create killed in between leaves an init that `state` and `delete` must still find.
        self.ready = ready
        self.keyring = keyring  # the session keyring the init joined, which an exec joins too
        self.rdt_dirs = rdt_dirs or []  # resctrl groups made for linux.intelRdt, removed at delete
        self.unit_invocation = unit_invocation  # the systemd driver's unit start (Unit.replaced)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def validate_id(container_id: str) -> None:
    if not container_id:
        raise UsageError("container id cannot be empty")
    if not _is_id(container_id):
        raise UsageError(f"invalid container id format: {container_id!r}")


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write to a fresh temp name in the same directory, then rename into place (no fsync).

    The directory may be world-writable (a pid file in /tmp): the temp name is unpredictable
    and made with O_EXCL|O_NOFOLLOW, so a name planted there (a symlink to a root-only file)
    is never opened, let alone truncated; on EEXIST another name is drawn."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(100):
        tmp = f"{path}.tmp{os.urandom(8).hex()}"
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            if attempt == 99:
                raise
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)  # never leave the temp name behind
        except OSError:
            pass
        raise


class Lock:
    """An flock on the container directory; released on close (or process death)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_ROOTLESS_HINT = " (rootless: set XDG_RUNTIME_DIR to an absolute path or pass --root)"


def _check_owned(st: os.stat_result, what: str, hint: str = "") -> None:
    """Refuse what this user did not make, or what others may write."""
    euid = os.geteuid()
    if st.st_uid != euid:
        raise SystemError_(f"{what} is owned by uid {st.st_uid}, not by this user "
                           f"(uid {euid}): refusing to use it{hint}", errno.EPERM)
    if st.st_mode & 0o022:
        raise SystemError_(f"{what} is writable by group or others (mode "
                           f"{stat.S_IMODE(st.st_mode):04o}): refusing to use it{hint}", errno.EPERM)


def _is_shared(st: os.stat_result) -> bool:
    """A root several users may share: made by root or this user, writable by group or others
    and sticky, so that only an entry's owner (or the root's) can rename or remove it. Each
    user's containers are then its own directories in it, checked one by one."""
    return (st.st_uid in (0, os.geteuid()) and bool(st.st_mode & 0o022)
            and bool(st.st_mode & stat.S_ISVTX))


def _still_at(fd: int, path: str) -> bool:
    """Whether the directory open as `fd` is still the one named `path`."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


class StateStore:
    def __init__(self, root: str, private: bool = False) -> None:
        if not root:  # abspath("") is the cwd of the moment: state nobody would find again
            raise UsageError("--root cannot be empty")
        self.root = os.path.abspath(root)
        # Rootless: the root is the user's alone (0700, sticky: XDG cleaners keep it), so no
        # other user can list, read or signal through it; root's is 0711 (state.json and the
        # fifo are 0600 anyway).
        self.private = private

    def dir(self, container_id: str) -> str:
        validate_id(container_id)
        return os.path.join(self.root, container_id)

    def fifo(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), EXEC_FIFO)

    def claim(self, container_id: str) -> Lock:
        """Create the container's directory and lock it; exactly one caller wins an id."""
        path = self.dir(container_id)
        try:
            os.makedirs(self.root, mode=0o1700 if self.private else 0o711, exist_ok=True)
        except OSError as exc:
            hint = _ROOTLESS_HINT if self.private and isinstance(exc, PermissionError) else ""
            raise SystemError_.from_oserror(f"cannot create root directory {self.root}{hint}",
                                            exc) from None
        self.check_root()
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise ExistsError(f"container with id exists: {container_id}") from None
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot create state directory {path}", exc) from None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not _still_at(fd, path):  # a delete got in between mkdir and flock and removed it
            os.close(fd)
            raise SystemError_(f"container {container_id}: its state directory was removed "
                               "while being created (a concurrent delete); try again")
        return Lock(fd)

    def lock(self, container_id: str, blocking: bool = True) -> Lock:
        """Lock an existing container's directory for a mutation.

        While we waited, the holder may have removed the directory and a new `create` may
        have made another one under the same name: a lock on the old one guards nothing,
        so it is taken again on whatever the name now holds."""
        path = self.dir(container_id)
        self._check_own_dir(container_id)
        while True:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                raise NotExistError(f"container {container_id} does not exist") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                if _still_at(fd, path):
                    return Lock(fd)
            except OSError:
                os.close(fd)
                raise
            os.close(fd)

    def is_locked(self, container_id: str) -> bool:
        """True while some pyrunc process holds the lock (e.g. a create in progress)."""
        try:
            lock = self.lock(container_id, blocking=False)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        lock.release()
        return False

    def save(self, record: Record) -> None:
        path = os.path.join(self.dir(record.id), STATE_FILE)
        atomic_write(path, jsonio.dumps(record.to_dict()).encode())

    def load(self, container_id: str) -> Record:
        """The record, from a state file this user wrote: one owned by anyone else (planted
        in a root another user can write, or a user's own read by root) is refused, since
        its hooks run and its pid is signalled as the caller."""
        self.check_root()
        self._check_own_dir(container_id)
        raw = self._read_own(container_id, STATE_FILE)
        if raw is None:
            raise NotExistError(f"container {container_id} does not exist")
        return Record(**raw)

    def save_exec_config(self, container_id: str, config: dict[str, Any]) -> None:
        atomic_write(os.path.join(self.dir(container_id), EXEC_CONFIG),
                     jsonio.dumps(config).encode())

    def load_exec_config(self, container_id: str) -> dict[str, Any] | None:
        """What create kept for exec (after load() checked the directory); None for a
        container made before it was kept."""
        return self._read_own(container_id, EXEC_CONFIG)

    def _read_own(self, container_id: str, name: str) -> dict[str, Any] | None:
        """A JSON file of the container's directory, which this user must have written."""
        path = os.path.join(self.dir(container_id), name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SystemError_(f"container {container_id}: corrupt state file {path}: {exc}") from None
        try:
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                _check_owned(st, f"container {container_id}: state file {path}")
                raw: dict[str, Any] = jsonio.loads(f.read())
        except (ValueError, OSError) as exc:
            raise SystemError_(f"container {container_id}: corrupt state file {path}: {exc}") from None
        return raw

    def check_root(self) -> None:
        """Rootless: the root must be the user's own and writable by nobody else (a root
        another user made, say $XDG_RUNTIME_DIR/pyrunc in a shared XDG_RUNTIME_DIR, lets
        that user plant, rename and remove containers), or shared as _is_shared says.
        Root's root: see load()."""
        if not self.private:
            return
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot access root directory {self.root}", exc) from None
        if _is_shared(st):
            return
        if st.st_mode & 0o022 and st.st_uid in (0, os.geteuid()):
            raise SystemError_(f"root directory {self.root} is writable by group or others (mode "
                               f"{stat.S_IMODE(st.st_mode):04o}) without the sticky bit, so they "
                               "could rename or remove this user's containers: refusing to use it "
                               "(chmod +t it to share it)", errno.EPERM)
        # the way out is the same as when the root cannot be made
        _check_owned(st, f"root directory {self.root}", _ROOTLESS_HINT)

    def _is_own_dir(self, container_id: str) -> bool:
        try:
            st = os.stat(self.dir(container_id), follow_symlinks=False)
        except FileNotFoundError:
            return False
        return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022

    def _check_own_dir(self, container_id: str) -> None:
        """In a shared root, a container directory is another user's unless this user made
        it (and only it may write there). Root too: a user's symlink in a root they may
        write, to one of root's container directories elsewhere, would have root act on
        that container (whose state.json is root's)."""
        path = self.dir(container_id)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            raise NotExistError(f"container {container_id} does not exist") from None
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot access the state of {container_id} "
                                            f"in {self.root}", exc) from None
        _check_owned(st, f"container {container_id}: state directory {path}")

    def exists(self, container_id: str) -> bool:
        """Whether the container's directory is there; one we may not look at (another
        user's rootless root, 0700) is an error, not "no such container"."""
        path = self.dir(container_id)
        try:
            return stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise SystemError_.from_oserror(f"cannot access the state of {container_id} "
                                            f"in {self.root}", exc) from None

    def remove(self, container_id: str) -> None:
        """Remove the state directory. It is flat (state.json, exec.fifo, temp files), so no
        shutil (whose imports, re among them, cost `delete` ~10 ms) unless it is not."""
        path = self.dir(container_id)
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        raise IsADirectoryError(entry.path)
                    os.unlink(entry.path)
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            import shutil
            shutil.rmtree(path, ignore_errors=True)

    def ids(self) -> Iterator[str]:
        self.check_root()
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        for name in names:
            if not _is_id(name):
                continue
            if self._is_own_dir(name):  # another user's, in a shared root: not listed
                yield name
