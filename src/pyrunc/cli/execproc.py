"""`exec`'s process: from --process FILE, or the container's own process plus the flags."""

from __future__ import annotations


from pyrunc.errors import UnsupportedError, UsageError
from pyrunc.spec.config import Process, User, check_exec_size, process_from_json
from pyrunc.spec.load import read_json

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any


MAX_ID = 2147483647  # the largest uid/gid runc accepts (and the kernel's ids are below 2**32-1)


def _user(text: str, base: User, gids: tuple[int, ...]) -> User:
    uid_s, _, gid_s = text.partition(":")
    try:
        uid = int(uid_s)
        gid = int(gid_s) if gid_s else base.gid
    except ValueError:
        raise UsageError(f"--user {text!r}: expected UID[:GID] as numbers") from None
    for value in (uid, gid):
        if not 0 <= value <= MAX_ID:
            # (uid_t)-1 is "unchanged" to setresuid: 4294967295 would stay root.
            raise UsageError(f"--user {text!r}: {value} is not an id between 0 and {MAX_ID}")
    return User(uid=uid, gid=gid, umask=base.umask, additional_gids=gids or base.additional_gids)


def sub_cgroups(args: tuple[str, ...]) -> dict[str, str]:
    """runc's `exec --cgroup` words: `PATH` (alone) for every controller, or
    `CTRL[,CTRL]:PATH` (repeatable); {controller or "": path}."""
    paths: dict[str, str] = {}
    for arg in args:
        parts = arg.split(":")
        if len(parts) > 2:
            raise UsageError(f"invalid --cgroup argument: {arg}")
        if len(parts) == 1:
            if len(args) != 1:
                raise UsageError(f"invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            paths[""] = arg
        else:
            for ctrl in parts[0].split(","):
                paths[ctrl] = parts[1]
    return paths


def build_process(rt: Any, container_id: str, process_file: str | None, command: tuple[str, ...],
                  console_socket: str | None, tty: bool, cwd: str | None, env: tuple[str, ...],
                  user: str | None, additional_gids: tuple[int, ...], cap: tuple[str, ...],
                  no_new_privs: bool, apparmor: str | None, process_label: str | None) -> Process:
    if apparmor or process_label:
        raise UnsupportedError("exec: AppArmor and SELinux labels are not supported on this host")
    if process_file:
        proc = process_from_json(read_json(process_file, "process.json"))
    else:
        if not command:
            raise UsageError("exec: give a command to run, or --process FILE")
        base = rt.base_process(container_id)
        proc = base._replace(args=command, terminal=tty)
    changes: dict[str, Any] = {}
    if cwd and not cwd.startswith("/"):
        raise UsageError(f"--cwd {cwd!r}: the working directory must be an absolute path")
    if cwd:
        changes["cwd"] = cwd
    if env:
        keys = {e.partition("=")[0] for e in env}
        changes["env"] = tuple(e for e in proc.env if e.partition("=")[0] not in keys) + env
    if user or additional_gids:
        changes["user"] = _user(user or f"{proc.user.uid}:{proc.user.gid}", proc.user, additional_gids)
    if cap:
        caps = proc.capabilities
        changes["capabilities"] = caps._replace(
            bounding=caps.bounding + cap, effective=caps.effective + cap,
            permitted=caps.permitted + cap)
    if no_new_privs:
        changes["no_new_privileges"] = True
    if tty:
        changes["terminal"] = True
    if not changes and process_file:
        return proc  # checked whole by process_from_json
    proc = proc._replace(**changes)
    # The command and --env replace what config.json's check saw: execve's limits again
    # (the container's env plus --env past them was an internal error, a TypeError).
    check_exec_size(proc, "exec")
    return proc
