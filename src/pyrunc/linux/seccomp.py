"""Seccomp: config.json `linux.seccomp` compiled to BPF in the runtime, loaded in the init.

As crun does, the profile is compiled once by the runtime (`compile_profile`, through
libseccomp in the C core) and the container side only hands the finished program to
seccomp(2) (`load`) just before exec, so a bad profile fails `create` with a
`config.json: <path>: <problem>` message and the child needs no libseccomp work.

Behaviour follows runc where the spec leaves room:
- syscall names this libseccomp does not know are skipped, each with a warning;
- a rule whose action equals the default action is dropped (libseccomp refuses it);
- several conditions on the same argument index become one rule each (an OR), because
  libseccomp takes at most one condition per argument in a rule;
- `valueTwo` is only used by SCMP_CMP_MASKED_EQ (value is the mask, valueTwo the datum);
- errnoRet/defaultErrnoRet are valid only with SCMP_ACT_ERRNO and SCMP_ACT_TRACE (EPERM
  when not given);
- SCMP_ACT_NOTIFY is refused as the default action and for the syscalls the runtime itself
  makes after loading (write, and sendmsg that hands the listener fd over), and needs a
  listenerPath.
- as runc's patchbpf does, a syscall numbered above the highest one the profile names for
  its architecture (one newer than the profile, e.g. clone3 on an older profile) fails with
  ENOSYS rather than the default action, unless that action lets it through anyway (ALLOW,
  LOG, TRACE) or is ERRNO(ENOSYS) already: glibc falls back to an older syscall on ENOSYS
  only (`enosys_stub`, prepended to libseccomp's program).
The kernel's filter flags are returned in `CompiledFilter.flags` for seccomp(2); the
libseccomp attributes for LOG and SPEC_ALLOW are set too so that libseccomp checks them.
"""

from __future__ import annotations

import errno
import os
from _collections_abc import Mapping  # collections.abc without importing collections
from pyrunc.records import NamedTuple

from pyrunc import OCI_VERSION, jsonio, unixsock
from pyrunc.errors import SpecError, SystemError_, UnsupportedError
from pyrunc.linux import syscalls as sc

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any

#: The kernel's limit on one filter program (BPF_MAXINSNS).
BPF_MAXINSNS = 4096
#: The largest SCMP_ACT_ERRNO return code: errno values are below the kernel's MAX_ERRNO
#: (4095), and libseccomp refuses 4095 and above.
MAX_ERRNO = 4094
#: SECCOMP_RET_DATA is 16 bits: the most SCMP_ACT_TRACE can pass to the tracer.
MAX_TRACE_DATA = 0xFFFF

#: The spec's action names -> SCMP_ACT_* values (the errno/trace data is added later).
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": sc.SCMP_ACT_KILL,
    "SCMP_ACT_KILL_PROCESS": sc.SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": sc.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_TRAP": sc.SCMP_ACT_TRAP,
    "SCMP_ACT_ERRNO": sc.SCMP_ACT_ERRNO_BASE,
    "SCMP_ACT_TRACE": sc.SCMP_ACT_TRACE_BASE,
    "SCMP_ACT_ALLOW": sc.SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": sc.SCMP_ACT_LOG,
    "SCMP_ACT_NOTIFY": sc.SCMP_ACT_NOTIFY,
}
#: Actions that carry a return code, and its largest value.
_DATA_ACTIONS = {"SCMP_ACT_ERRNO": MAX_ERRNO, "SCMP_ACT_TRACE": MAX_TRACE_DATA}

OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": sc.SCMP_CMP_NE,
    "SCMP_CMP_LT": sc.SCMP_CMP_LT,
    "SCMP_CMP_LE": sc.SCMP_CMP_LE,
    "SCMP_CMP_EQ": sc.SCMP_CMP_EQ,
    "SCMP_CMP_GE": sc.SCMP_CMP_GE,
    "SCMP_CMP_GT": sc.SCMP_CMP_GT,
    "SCMP_CMP_MASKED_EQ": sc.SCMP_CMP_MASKED_EQ,
}

#: The spec's architecture names (config-linux.md and the schema). libseccomp's name for
#: each is the suffix in lower case; the ones this libseccomp does not know are skipped.
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)

#: The spec's filter flags -> seccomp(2) flags.
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": sc.SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": sc.SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}
#: Flags libseccomp has an attribute for (set so that libseccomp validates them).
_FLAG_ATTRS = {
    "SECCOMP_FILTER_FLAG_LOG": sc.SCMP_FLTATR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": sc.SCMP_FLTATR_CTL_SSB,
}

#: Syscalls the runtime makes after the filter is loaded and before the agent has the
#: listener fd: notifying them would block the init forever.
NOTIFY_FORBIDDEN = ("write", "sendmsg")

#: The name of the listener fd in the container process state's `fds`.
SECCOMP_FD_NAME = "seccompFd"


class CompiledFilter(NamedTuple):
    """A profile ready for seccomp(2): the BPF program (struct sock_filter array), the
    filter flags to load it with, whether it notifies (the load then returns a listener
    fd to send to `listener_path`), and the warnings met while compiling."""

    bpf: bytes
    flags: int
    uses_notify: bool
    warnings: tuple[str, ...] = ()
    listener_path: str | None = None
    listener_metadata: str = ""

    @property
    def instructions(self) -> int:
        return len(self.bpf) // 8


def _err(path: str, msg: str) -> SpecError:
    return SpecError(f"config.json: {path}: {msg}")


def _typed(value: object, kind: type, path: str, what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _err(path, f"{value!r} is not {what}")
    return value


def _uint(value: object, path: str, top: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise _err(path, f"{value!r} is not an integer from 0 to {top}")
    return value


_actions_avail: dict[int, bool] = {}


def _kernel_has_action(base: int) -> bool:
    if base not in _actions_avail:
        try:
            _actions_avail[base] = sc.seccomp_action_avail(base)
        except OSError:  # no SECCOMP_GET_ACTION_AVAIL (before 4.14): let libseccomp judge
            _actions_avail[base] = True
    return _actions_avail[base]


def _action(raw: Mapping[str, Any], key: str, errno_key: str, path: str) -> tuple[str, int]:
    """(name, SCMP_ACT_* value with its return code) of raw[key], checked."""
    if key not in raw:
        raise _err(f"{path}.{key}", "is required")
    name = raw[key]
    if not isinstance(name, str) or name not in ACTIONS:
        raise _err(f"{path}.{key}", f"unknown action {name!r}")
    value = ACTIONS[name]
    ret = raw.get(errno_key)
    if name in _DATA_ACTIONS:
        if ret is None:
            ret = errno.EPERM
        value |= _uint(ret, f"{path}.{errno_key}", _DATA_ACTIONS[name])
    elif ret is not None:
        raise _err(f"{path}.{errno_key}",
                   f"{errno_key} is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {name}")
    if not _kernel_has_action(ACTIONS[name]):
        raise _err(f"{path}.{key}", f"{name} is not supported by this kernel")
    return name, value


def _conditions(args: object, path: str) -> list[tuple[int, int, int, int]]:
    out: list[tuple[int, int, int, int]] = []
    for k, arg in enumerate(_typed(args, list, path, "an array")):
        apath = f"{path}[{k}]"
        _typed(arg, Mapping, apath, "an object")
        for key in ("index", "value", "op"):
            if key not in arg:
                raise _err(f"{apath}.{key}", "is required")
        index = _uint(arg["index"], f"{apath}.index", sc.SECCOMP_MAX_CMPS - 1)
        value = _uint(arg["value"], f"{apath}.value", (1 << 64) - 1)
        value_two = _uint(arg.get("valueTwo", 0), f"{apath}.valueTwo", (1 << 64) - 1)
        op = arg["op"]
        if not isinstance(op, str) or op not in OPERATORS:
            raise _err(f"{apath}.op", f"unknown operator {op!r}")
        out.append((index, OPERATORS[op], value, value_two))
    return out


def _rules(conds: list[tuple[int, int, int, int]]) -> list[list[tuple[int, int, int, int]]]:
    """The conditions of each rule to add: all together, or one rule per condition when an
    argument index repeats (libseccomp's limit; runc does the same)."""
    indexes = [c[0] for c in conds]
    if len(set(indexes)) == len(indexes):
        return [conds]
    return [[c] for c in conds]


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _export(ctx: sc.SeccompCtx) -> bytes:
    """The filter's BPF program, through a memfd (libseccomp 2.5 writes to an fd only)."""
    try:
        fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot compile the seccomp profile: memfd_create",
                                        exc) from None
    try:
        sc.seccomp_export_bpf(ctx, fd)
        return _read_all(fd)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot compile the seccomp profile", exc) from None
    finally:
        os.close(fd)


def compile_profile(raw: Mapping[str, Any]) -> CompiledFilter:
    """Compile config.json's `linux.seccomp` object; SpecError names the bad JSON path."""
    top = "linux.seccomp"
    _typed(raw, Mapping, top, "an object")
    default_name, default_action = _action(raw, "defaultAction", "defaultErrnoRet", top)
    if default_name == "SCMP_ACT_NOTIFY":
        raise _err(f"{top}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")

    flag_names = _typed(raw.get("flags") or [], list, f"{top}.flags", "an array")
    for i, flag in enumerate(flag_names):
        if not isinstance(flag, str) or flag not in FLAGS:
            raise _err(f"{top}.flags[{i}]", f"unknown flag {flag!r}")
    listener_path = raw.get("listenerPath") or None
    if listener_path is not None:
        _typed(listener_path, str, f"{top}.listenerPath", "a string")
    metadata = raw.get("listenerMetadata") or ""
    _typed(metadata, str, f"{top}.listenerMetadata", "a string")
    if metadata and listener_path is None:
        raise _err(f"{top}.listenerMetadata", "listenerMetadata needs listenerPath")

    warnings: list[str] = []
    uses_notify = False
    ctx = sc.SeccompCtx(default_action)
    try:
        # We load the program ourselves; no_new_privs is the init's business.
        sc.seccomp_attr_set(ctx, sc.SCMP_FLTATR_CTL_NNP, 0)
        sc.seccomp_attr_set(ctx, sc.SCMP_FLTATR_API_SYSRAWRC, 1)
        for flag in flag_names:
            if flag in _FLAG_ATTRS:
                try:
                    sc.seccomp_attr_set(ctx, _FLAG_ATTRS[flag], 1)
                except OSError as exc:
                    raise _err(f"{top}.flags", f"{flag} is not supported here: {exc.strerror}") from None

        native = sc.seccomp_arch_native()
        tokens = [native]  # the architectures of the filter, for the ENOSYS stub
        all_names: list[str] = []
        for i, arch in enumerate(_typed(raw.get("architectures") or [], list,
                                        f"{top}.architectures", "an array")):
            if not isinstance(arch, str) or arch not in ARCHITECTURES:
                raise _err(f"{top}.architectures[{i}]", f"unknown architecture {arch!r}")
            token = sc.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower())
            if token == 0:
                warnings.append(f"config.json: {top}.architectures[{i}]: {arch} is not known to "
                                f"libseccomp {libseccomp_version()}, skipped")
                continue
            if token == native:
                continue
            try:
                sc.seccomp_arch_add(ctx, token)
                tokens.append(token)
            except OSError as exc:
                if exc.errno == errno.EEXIST:  # listed twice
                    continue
                if exc.errno == errno.EDOM:
                    # libseccomp cannot mix byte orders in one filter; a big-endian ABI
                    # cannot run on this little-endian kernel (or the reverse) anyway.
                    warnings.append(f"config.json: {top}.architectures[{i}]: {arch} has another "
                                    "byte order than this host's, skipped")
                    continue
                raise _err(f"{top}.architectures[{i}]", f"cannot add {arch}: {exc.strerror}") from None

        notify_at: str | None = None
        for i, call in enumerate(_typed(raw.get("syscalls") or [], list, f"{top}.syscalls", "an array")):
            path = f"{top}.syscalls[{i}]"
            _typed(call, Mapping, path, "an object")
            name, action = _action(call, "action", "errnoRet", path)
            names = _typed(call.get("names"), list, f"{path}.names", "an array of syscall names")
            if not names:
                raise _err(f"{path}.names", "at least one syscall name is needed")
            for j, sys_name in enumerate(names):
                _typed(sys_name, str, f"{path}.names[{j}]", "a syscall name")
                if name == "SCMP_ACT_NOTIFY" and sys_name in NOTIFY_FORBIDDEN:
                    raise _err(f"{path}.names[{j}]", f"SCMP_ACT_NOTIFY cannot be used for "
                               f"{sys_name!r}: the runtime needs it after the filter is loaded")
            all_names += names
            rules = _rules(_conditions(call.get("args") or [], f"{path}.args"))
            if action == default_action:
                continue  # libseccomp refuses a rule that does what the default does
            for j, sys_name in enumerate(names):
                npath = f"{path}.names[{j}]"
                nr = sc.seccomp_syscall_resolve_name(sys_name)
                if nr == sc.NR_SCMP_ERROR:
                    warnings.append(f"config.json: {npath}: unknown syscall {sys_name!r} skipped")
                    continue
                for conds in rules:
                    try:
                        sc.seccomp_rule_add_array(ctx, action, nr, conds)
                    except OSError as exc:
                        raise _err(path, f"cannot add the rule for {sys_name!r}: {exc.strerror}") from None
                if name == "SCMP_ACT_NOTIFY" and notify_at is None:
                    notify_at = path
                    uses_notify = True

        if uses_notify and listener_path is None:
            raise _err(f"{top}.listenerPath",
                       f"SCMP_ACT_NOTIFY is used ({notify_at}) but listenerPath is not set")

        bpf = _export(ctx)
    finally:
        ctx.release()
    if default_name not in _PERMISSIVE and default_action != sc.SCMP_ACT_ERRNO_BASE | errno.ENOSYS:
        bpf = enosys_stub(last_syscalls(tokens, all_names)) + bpf

    if not bpf or len(bpf) % 8:
        raise SystemError_(f"seccomp_export_bpf: a BPF program of {len(bpf)} bytes is not a "
                           "whole number of instructions")
    if len(bpf) // 8 > BPF_MAXINSNS:
        raise _err(top, f"the profile compiles to {len(bpf) // 8} BPF instructions, more than "
                        f"the kernel's limit of {BPF_MAXINSNS}")

    flags = 0
    for flag in flag_names:
        if flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" and not uses_notify:
            warnings.append(f"config.json: {top}.flags: {flag} has no effect without "
                            "SCMP_ACT_NOTIFY, ignored")
            continue
        flags |= FLAGS[flag]
    if uses_notify:
        flags |= sc.SECCOMP_FILTER_FLAG_NEW_LISTENER
        if flags & sc.SECCOMP_FILTER_FLAG_TSYNC:  # the kernel wants both with a listener
            flags |= sc.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    _check_flags(flags, flag_names)
    return CompiledFilter(bpf, flags, uses_notify, tuple(warnings), listener_path, metadata)


# The ENOSYS stub's BPF: struct sock_filter {u16 code; u8 jt, jf; u32 k} in host order.
_INSN = "=HBBI"
_LD_ABS_W, _JA, _JEQ, _JGT, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06
_AUDIT_X86_64 = 0xC000003E
_TOKEN_X32 = 0x4000003E  # SCMP_ARCH_X32: x86_64's audit arch, syscalls with bit 30 set
_X32_BIT = 0x40000000
_S390 = (0x00000016, 0x80000016)  # syscall 0 multiplexes the large numbers there
#: Default actions that already let a new syscall through: no stub (runc's isAllowAction).
_PERMISSIVE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")


def last_syscalls(tokens: list[int], names: list[str]) -> dict[int, int]:
    """Arch token -> the highest syscall number among `names` there (archs with none known
    are left out: the stub then leaves them to the filter)."""
    last: dict[int, int] = {}
    for token in tokens:
        nrs = [sc.seccomp_syscall_resolve_name_arch(token, n) for n in names]
        top = max((nr for nr in nrs if nr >= 0), default=0)
        if top > 0:
            last[token] = top
    return last


def enosys_stub(last: dict[int, int]) -> bytes:
    """BPF to run before the filter: for each architecture of `last`, a syscall numbered
    above its highest known one returns ERRNO(ENOSYS); anything else falls through to the
    filter, which loads what it needs itself. Jumps to the two shared ends are `ja`s (32-bit
    offsets), so no conditional jump is longer than a few instructions."""
    import struct
    enosys, filt = "enosys", "filter"
    code: list[tuple[int, int, int, int | str]] = []

    def check(top: int | None) -> list[tuple[int, int, int, int | str]]:
        if top is None:  # this mode of the arch is not the profile's: the filter judges
            return [(_JA, 0, 0, filt)]
        return [(_JGT, 0, 1, top), (_JA, 0, 0, enosys), (_JA, 0, 0, filt)]

    by_audit: dict[int, dict[int, int]] = {}
    for token, top in last.items():
        audit = _AUDIT_X86_64 if token == _TOKEN_X32 else token
        by_audit.setdefault(audit, {})[token] = top
    code.append((_LD_ABS_W, 0, 0, 4))  # seccomp_data.arch
    for audit, tops in sorted(by_audit.items()):
        body: list[tuple[int, int, int, int | str]] = [(_LD_ABS_W, 0, 0, 0)]  # .nr
        if audit in _S390:
            body += [(_JEQ, 0, 1, 0), (_JA, 0, 0, enosys)]
        if audit == _AUDIT_X86_64:
            native = check(tops.get(_AUDIT_X86_64))
            body += [(_JSET, len(native), 0, _X32_BIT), *native, *check(tops.get(_TOKEN_X32))]
        else:
            body += check(tops[audit])
        code.append((_JEQ, 0, len(body), audit))
        code += body
    code += [(_JA, 0, 0, filt), (_RET, 0, 0, sc.SCMP_ACT_ERRNO_BASE | errno.ENOSYS)]
    ends = {enosys: len(code) - 1, filt: len(code)}
    out = []
    for pc, (op, jt, jf, k) in enumerate(code):
        if isinstance(k, str):
            k = ends[k] - pc - 1
        out.append(struct.pack(_INSN, op, jt, jf, k))
    return b"".join(out)


def _check_flags(flags: int, names: list[str]) -> None:
    """Refuse now, with the flag's name, what seccomp(2) would refuse in the init."""
    try:
        if not flags or sc.seccomp_probe_flags(flags):
            return
    except OSError as exc:
        raise UnsupportedError(f"seccomp is not usable on this kernel: {exc.strerror}",
                               exc.errno) from None
    listener = flags & sc.SECCOMP_FILTER_FLAG_NEW_LISTENER
    for name in dict.fromkeys(names):
        probe = FLAGS[name] | listener
        if listener and name == "SECCOMP_FILTER_FLAG_TSYNC":
            probe |= sc.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        if FLAGS[name] & flags and not sc.seccomp_probe_flags(probe):
            raise _err("linux.seccomp.flags", f"{name} is not supported by this kernel")
    if listener and not sc.seccomp_probe_flags(listener):
        raise _err("linux.seccomp", "SCMP_ACT_NOTIFY needs a kernel with seccomp user "
                                    "notification (SECCOMP_FILTER_FLAG_NEW_LISTENER, Linux 5.0)")
    raise _err("linux.seccomp.flags", f"this kernel refuses the filter flags {flags:#x}")


def load(f: CompiledFilter) -> int | None:
    """In the container init, just before exec: install the filter. Returns the listener fd
    (close-on-exec) when the profile notifies, else None. Needs no_new_privs or
    CAP_SYS_ADMIN: the caller orders this against prctl(PR_SET_NO_NEW_PRIVS) and the
    capability drop."""
    try:
        fd = sc.seccomp_set_mode_filter(f.flags, f.bpf)
    except OSError as exc:
        raise SystemError_.from_oserror("cannot load the seccomp filter", exc) from None
    return fd if f.flags & sc.SECCOMP_FILTER_FLAG_NEW_LISTENER else None


def process_state(state_json: bytes, metadata: str = "", pid: int | None = None) -> bytes:
    """The spec's container process state (config-linux.md) for one listener fd."""
    state = jsonio.loads(state_json)
    if not isinstance(state, dict):
        raise ValueError("the container state must be a JSON object")
    doc: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "fds": [SECCOMP_FD_NAME],
        "pid": int(state.get("pid", 0)) if pid is None else pid,
    }
    if metadata:
        doc["metadata"] = metadata
    doc["state"] = state
    return jsonio.dumps(doc).encode()


def send_listener(listener_path: str, listener_fd: int, state_json: bytes, metadata: str = "",
                  *, pid: int | None = None, timeout: float = 10.0) -> None:
    """Send the container process state and the listener fd (SCM_RIGHTS) to the seccomp
    agent's AF_UNIX stream socket at `listener_path`, over one connection closed after.
    `state_json` is the runtime state (runtime.md); `pid` defaults to its "pid"."""
    payload = process_state(state_json, metadata, pid)
    s = unixsock.Socket(unixsock.AF_UNIX, unixsock.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        try:
            s.connect(listener_path)
        except OSError as exc:  # runc's words, which its users match
            raise SystemError_(
                "failed to connect with seccomp agent specified in the seccomp profile: "
                f"{listener_path}: {exc.strerror or exc}", exc.errno or errno.EIO) from None
        # The fds travel with the first sendmsg only; the rest is plain payload.
        sent = unixsock.send_fds(s, payload, [listener_fd])
        if sent < len(payload):
            s.sendall(payload[sent:])
    except TimeoutError:
        raise SystemError_(f"cannot send the seccomp listener fd to {listener_path}: timed out",
                           errno.ETIMEDOUT) from None
    except OSError as exc:
        raise SystemError_.from_oserror(f"cannot send the seccomp listener fd to {listener_path}",
                                        exc) from None
    finally:
        s.close()


def features() -> dict[str, Any]:
    """`linux.seccomp` of `pyrunc features` (runtime-spec features.md)."""
    archs = [a for a in ARCHITECTURES
             if sc.seccomp_arch_resolve_name(a.removeprefix("SCMP_ARCH_").lower()) != 0]
    supported = []
    for name, flag in FLAGS.items():
        if flag == sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV:
            flag |= sc.SECCOMP_FILTER_FLAG_NEW_LISTENER
        if sc.seccomp_probe_flags(flag):
            supported.append(name)
    return {
        "enabled": True,
        "actions": sorted(n for n in ACTIONS if _kernel_has_action(ACTIONS[n])),
        "operators": sorted(OPERATORS),
        "archs": sorted(archs),
        "knownFlags": sorted(FLAGS),
        "supportedFlags": sorted(supported),
    }


def libseccomp_version() -> str:
    """e.g. "2.5.4" (runc reports it as the io.github.seccomp.libseccomp.version annotation)."""
    return ".".join(map(str, sc.seccomp_version()))
