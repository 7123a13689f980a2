"""Capability names -> numbers, and applying the five sets around the user switch."""

from __future__ import annotations

from pyrunc.errors import SystemError_
from pyrunc.linux import syscalls as sc
from pyrunc.spec.config import Capabilities

# Numbers from linux/capability.h; names the running kernel may not know are filtered later.
CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAP_NUMBERS.values())


def unknown(caps: Capabilities | None) -> list[str]:
    """Names pyrunc or this kernel does not know: warned about and skipped, like runc."""
    if caps is None:
        return []
    top = last_cap()
    bad: list[str] = []
    for names in (caps.bounding, caps.effective, caps.inheritable, caps.permitted, caps.ambient):
        for name in names or ():
            if (CAP_NUMBERS.get(name, top + 1) > top) and name not in bad:
                bad.append(name)
    return bad


def unraisable_ambient(caps: Capabilities | None) -> list[str]:
    """Ambient caps the kernel refuses to raise (not both permitted and inheritable).

    runc starts such containers anyway; pyrunc does too, and says which were skipped."""
    if caps is None:
        return []
    both = set(caps.permitted or ()) & set(caps.inheritable or ())
    return [c for c in caps.ambient or () if c not in both and c in CAP_NUMBERS]


def _nums(names: tuple[str, ...] | None, top: int) -> set[int]:
    return {CAP_NUMBERS[n] for n in names or () if CAP_NUMBERS.get(n, top + 1) <= top}


def drop_bounding(caps: Capabilities) -> None:
    """Before the user switch, while CAP_SETPCAP is still ours; keep caps across setuid."""
    top = last_cap()
    keep = _nums(caps.bounding, top)
    for cap in range(top + 1):
        if cap not in keep:
            try:
                sc.prctl(sc.PR_CAPBSET_DROP, cap)
            except OSError as exc:  # EPERM: a runtime started without CAP_SETPCAP
                name = next(n for n, c in CAP_NUMBERS.items() if c == cap)
                raise SystemError_.from_oserror(
                    f"cannot drop {name} from the container's bounding set (dropping needs "
                    "CAP_SETPCAP, which the runtime itself may lack)", exc) from None
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)


def apply_sets(caps: Capabilities) -> None:
    """After the user switch: exactly the configured effective/permitted/inheritable/ambient."""
    top = last_cap()
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    eff, perm, inh = (_nums(caps.effective, top), _nums(caps.permitted, top),
                      _nums(caps.inheritable, top))
    try:
        sc.capset(eff, perm, inh)
    except OSError as exc:
        missing = _not_held(eff | perm, inh)
        names = {n: name for name, n in CAP_NUMBERS.items()}
        if missing:
            what = (f"the runtime itself lacks {', '.join(missing)}; drop it from the "
                    "container's capabilities")
        elif eff - perm:  # the kernel's rule: effective is a subset of permitted
            what = (f"{', '.join(names[c] for c in sorted(eff - perm))} is effective but not "
                    "permitted; add it to process.capabilities.permitted")
        else:
            what = "a capability outside this process's bounding set?"
        raise SystemError_.from_oserror(f"cannot apply the capabilities (capset: {what})",
                                        exc) from None
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in sorted(_nums(caps.ambient, top) & perm & inh):
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, cap)


def _not_held(raised: set[int], inheritable: set[int]) -> list[str]:
    """Names of the capabilities capset refused because this process does not hold them (a
    runtime started with a smaller bounding set: docker --privileged in a restricted host);
    [] when /proc cannot tell."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        prm = int(fields["CapPrm"].strip(), 16)
        bnd = int(fields["CapBnd"].strip(), 16)
    except (OSError, KeyError, ValueError):
        return []
    names = {n: name for name, n in CAP_NUMBERS.items()}
    lacking = {c for c in raised if not prm >> c & 1} | {c for c in inheritable
                                                          if not (prm | bnd) >> c & 1}
    return [names.get(c, f"capability {c}") for c in sorted(lacking)]
