"""linux.intelRdt through resctrl (runtime-spec 1.3: closID, schemata, l3CacheSchema,
memBwSchema, enableMonitoring).

The container's class of service is a directory under the resctrl mount: closID names it
(else the container id does). A closID whose directory exists is joined as it is: the
spec forbids changing a group someone else configured, so its schemata must already say
what the config asks. A directory this module made is removed at delete; a joined one is
left. enableMonitoring makes a monitoring group mon_groups/<id> in the container's group.
`root` is overridable for tests only (a directory laid out like resctrl); the CLI always
uses /sys/fs/resctrl.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from pyrunc.errors import SpecError, SystemError_

if TYPE_CHECKING:
    from pyrunc.spec.config import IntelRdt

RESCTRL = "/sys/fs/resctrl"
# resctrl fills a new directory with its files (schemata, tasks, mon_groups/) and rmdir
# empties it; the tests' stand-in for the kernel replaces these two.
_mkdir = os.mkdir
_rmdir = os.rmdir


def check_host() -> None:
    """Before anything is made: a config asking for RDT on a host without it is refused."""
    _check_root(RESCTRL)


def _check_root(root: str) -> None:
    """resctrl mounted: its root has a schemata file (the default group's)."""
    if not os.path.isfile(os.path.join(root, "schemata")):
        raise SpecError(f"config.json: linux.intelRdt: this host has no resctrl at {root} "
                        "(no Intel RDT / AMD QoS, or resctrl not mounted)")


def _lines(text: str) -> dict[str, str]:
    """schemata file lines by resource (L3, MB, ...), white space dropped as the kernel does."""
    out = {}
    for line in text.splitlines():
        res, _, value = line.strip().partition(":")
        if value:
            out[res.strip()] = "".join(value.split())
    return out


def apply(rdt: IntelRdt, container_id: str, pid: int, root: str = RESCTRL) -> list[str]:
    """Put `pid` into its resctrl group; returns the directories made here, to remove at
    delete (deepest first)."""
    _check_root(root)
    name = rdt.clos_id or container_id
    problem = clos_id_problem(name)
    if problem:
        raise SpecError(f"config.json: linux.intelRdt.closID: {name!r} cannot name a resctrl "
                        f"group ({problem})")
    group = os.path.join(root, name)
    made: list[str] = []
    try:
        try:
            _mkdir(group)
            made.append(group)
        except FileExistsError:
            if not os.path.isdir(group):  # a file of the root group (tasks, cpus, ...)
                raise SpecError(f"config.json: linux.intelRdt.closID: {name!r} cannot name a "
                                f"resctrl group (a file of {root} has that name)") from None
            if rdt.schemata:
                have = _lines(_read(os.path.join(group, "schemata")))
                for res, want in _lines("\n".join(rdt.schemata)).items():
                    if have.get(res) != want:
                        raise SpecError(f"config.json: linux.intelRdt: the existing group "
                                        f"{name!r} has {res}:{have.get(res)}, not {res}:{want}"
                                        ) from None
        except OSError as exc:  # out of CLOSIDs (ENOSPC), a name resctrl refuses, ...
            raise SystemError_.from_oserror(f"cannot make the resctrl group {group}", exc
                                            ) from None
        if made and rdt.schemata:
            _write(os.path.join(group, "schemata"), "\n".join(rdt.schemata) + "\n")
        _write(os.path.join(group, "tasks"), str(pid))
        if rdt.monitoring:
            mon = os.path.join(group, "mon_groups", container_id)
            try:
                _mkdir(mon)
            except OSError as exc:
                raise SystemError_.from_oserror(f"cannot make the resctrl monitoring group "
                                                f"{mon}", exc) from None
            made.insert(0, mon)
            _write(os.path.join(mon, "tasks"), str(pid))
    except BaseException:
        remove(made, in_use_check=False)
        raise
    return made


def clos_id_problem(name: str) -> str | None:
    """Why `name` cannot be a control group directory right under the resctrl root, or None:
    a path step elsewhere ('..', '/'), the root's own directories, what resctrl's mkdir
    refuses (a newline) or a path cannot hold (NUL, over NAME_MAX)."""
    if name in (".", "..") or "/" in name:
        return "not a single path step"
    if name in ("info", "mon_groups", "mon_data"):
        return "a directory of the resctrl root"
    if "\n" in name or "\0" in name:
        return "a newline or NUL byte"
    if len(name.encode(errors="surrogateescape")) > 255:
        return "longer than 255 bytes"
    return None


def remove(dirs: list[str], *, in_use_check: bool = True) -> None:
    """rmdir what apply made. resctrl moves the tasks left in a group to its parent, so at
    delete a group that still has live tasks (another container joined it by the same
    closID) is left to them: removing it would silently take their allocation away. A failed
    create removes what it made at once (`in_use_check` False: its own init may not be gone)."""
    for path in dirs:
        if in_use_check and _in_use(path):
            continue
        try:
            _rmdir(path)
        except FileNotFoundError:
            pass


def _in_use(group: str) -> bool:
    """A live (not zombie) task in the group or one of its monitoring groups."""
    try:
        with open(os.path.join(group, "tasks")) as f:
            if any(_alive(pid) for pid in f.read().split()):
                return True
        mon = os.path.join(group, "mon_groups")
        return any(_in_use(os.path.join(mon, sub)) for sub in os.listdir(mon)) \
            if os.path.isdir(mon) else False
    except OSError:
        return False  # gone, or not a group: rmdir will say


def _alive(pid: str) -> bool:
    """Read as bytes: the comm before the state is the process's to name, UTF-8 or not."""
    from pyrunc.linux.procfs import stat_fields
    try:
        fields = stat_fields(int(pid))
    except (OSError, ValueError):
        return False
    return fields is not None and fields[0] not in ("Z", "X")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot read {path}", exc) from None


def _write(path: str, data: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot open {path}", exc) from None
    try:
        os.write(fd, data.encode())
    except OSError as exc:
        # resctrl says why a schemata write failed in info/last_cmd_status.
        why = ""
        if exc.errno == errno.EINVAL:
            status = os.path.join(os.path.dirname(os.path.dirname(path)), "info",
                                  "last_cmd_status")
            if os.path.isfile(status):
                why = f" ({_read(status).strip()})"
        raise SpecError(f"config.json: linux.intelRdt: resctrl refused {data.strip()!r} in "
                        f"{path}: {exc.strerror}{why}") from None
    finally:
        os.close(fd)
