"""The container's own session keyring (runc's `_ses.<id>`), so that it cannot use the keys
of the session that ran the runtime (their possessor permissions follow the session)."""

from __future__ import annotations

import errno

from pyrunc.errors import SystemError_
from pyrunc.linux import syscalls as sc

# keyctl permission bits (linux/keyctl.h): the keyring's owner, and anyone ("other").
KEY_USR_SEARCH = 0x00080000
KEY_OTH_SEARCH = 0x00000008


def join(name: str, in_userns: bool, set_perm: bool = True) -> None:
    """Join the session keyring `name` (made if none of that name can be joined) and make it
    searchable as runc does: by its owner, or, in a user namespace (where the container's
    ids need not be the keyring's owner once it switches user), by anyone. A kernel without
    keyrings (ENOSYS) keeps the inherited one, as with runc. An exec joins the container's
    keyring by the same name and leaves its permissions alone (`set_perm` False)."""
    try:
        serial = sc.keyctl_join_session_keyring(name)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return
        raise SystemError_.from_oserror(f"cannot join the session keyring {name}", exc) from None
    if not set_perm:
        return
    try:
        perm = int(sc.keyctl_describe(serial).split(";")[3], 16)
        sc.keyctl_setperm(serial, perm | (KEY_OTH_SEARCH if in_userns else KEY_USR_SEARCH))
    except (OSError, IndexError, ValueError) as exc:
        raise SystemError_(f"cannot set the permissions of the session keyring {name}: {exc}",
                           getattr(exc, "errno", None) or errno.EIO) from None
