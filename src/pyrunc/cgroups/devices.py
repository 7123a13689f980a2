"""The device allow-list: v1 semantics emulated, v1 transitions and the v2 eBPF program.

Both cgroup versions get the same decision: the spec's rules, then the default
allow-list, applied in order onto "deny everything" (runc's behaviour, so a spec's
rules cannot take away /dev/null). The emulator reduces that list to a default
(allow or deny) plus exceptions, exactly as the v1 kernel code would hold it:

- v1 writes only the difference between what the cgroup holds and the target,
  so an update never opens a window in which a running container loses a device;
- v2 has no devices files: the exceptions become a BPF_PROG_TYPE_CGROUP_DEVICE
  program built here instruction by instruction (the C core only loads it).
"""

from __future__ import annotations

import struct
from pyrunc.records import NamedTuple

from pyrunc.errors import SpecError
from pyrunc.spec.config import DeviceRule

# Devices every container gets after its own rules, as runc does.
DEFAULT_ALLOWED: tuple[DeviceRule, ...] = (
    DeviceRule(True, "c", None, None, "m"),   # mknod of any char device
    DeviceRule(True, "b", None, None, "m"),   # mknod of any block device
    DeviceRule(True, "c", 1, 3, "rwm"),       # null
    DeviceRule(True, "c", 1, 8, "rwm"),       # random
    DeviceRule(True, "c", 1, 7, "rwm"),       # full
    DeviceRule(True, "c", 5, 0, "rwm"),       # tty
    DeviceRule(True, "c", 1, 5, "rwm"),       # zero
    DeviceRule(True, "c", 1, 9, "rwm"),       # urandom
    DeviceRule(True, "c", 136, None, "rwm"),  # pts/*
    DeviceRule(True, "c", 5, 2, "rwm"),       # ptmx
    DeviceRule(True, "c", 5, 1, "rwm"),       # console
    DeviceRule(True, "c", 10, 200, "rwm"),    # net/tun
)

DENY_ALL = DeviceRule(False, "a", None, None, "rwm")

Key = tuple[str, int | None, int | None]  # (type b/c, major, minor); None is '*'


def _perms(access: str) -> frozenset[str]:
    bad = set(access) - set("rwm")
    if bad:
        raise SpecError(f"linux.resources.devices: unknown access {''.join(sorted(bad))!r}")
    return frozenset(access)


def _text(perms: frozenset[str]) -> str:
    return "".join(c for c in "rwm" if c in perms)


class DeviceState:
    """A devices cgroup as the v1 kernel holds it: a default and exceptions to it.
    (A plain class: dataclasses cost every `create` an import.)"""

    def __init__(self, default_allow: bool = False,
                 exceptions: dict[Key, frozenset[str]] | None = None) -> None:
        self.default_allow = default_allow
        self.exceptions: dict[Key, frozenset[str]] = {} if exceptions is None else exceptions

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DeviceState) and other.default_allow == self.default_allow
                and other.exceptions == self.exceptions)

    def __repr__(self) -> str:
        return f"DeviceState({self.default_allow!r}, {self.exceptions!r})"

    @classmethod
    def from_rules(cls, rules: tuple[DeviceRule, ...], defaults: bool = True) -> "DeviceState":
        """Deny everything, then apply `rules` (and the default allow-list) in order."""
        st = cls()
        for rule in rules + (DEFAULT_ALLOWED if defaults else ()):
            st.apply(rule)
        return st

    def apply(self, rule: DeviceRule) -> None:
        """One devices.allow/devices.deny write, as the kernel would take it."""
        if rule.type == "a":
            # "a" (whatever its numbers) resets the cgroup to allow- or deny-everything.
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        if rule.type not in ("b", "c"):
            raise SpecError(f"linux.resources.devices: invalid type {rule.type!r}")
        key: Key = (rule.type, rule.major, rule.minor)
        perms = _perms(rule.access)
        if rule.allow != self.default_allow:
            self.exceptions[key] = self.exceptions.get(key, frozenset()) | perms
            return
        # A rule agreeing with the default removes access from an exception. The kernel
        # silently ignores a hole punched in a wildcard exception: refuse it instead.
        for wild in ((rule.type, None, rule.minor), (rule.type, rule.major, None),
                     (rule.type, None, None)):
            if wild != key and self.exceptions.get(wild, frozenset()) & perms:
                raise SpecError(
                    f"linux.resources.devices: rule {rule_str(rule)} cannot punch a hole in "
                    f"the wildcard rule {_key_str(wild)} {_text(self.exceptions[wild])}")
        left = self.exceptions.get(key, frozenset()) - perms
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)

    def ordered(self) -> list[tuple[Key, frozenset[str]]]:
        """Exceptions in the order they were first added, as the kernel lists them: a spec's
        rules are written (and so show in devices.list) in the spec's order, defaults last."""
        return list(self.exceptions.items())

    def transition(self, target: "DeviceState") -> list[DeviceRule]:
        """The fewest v1 writes that turn this cgroup into `target`.

        A change of default needs the disruptive "a" write first; so does a source
        in allow-all mode, whose deny exceptions devices.list cannot show."""
        out: list[DeviceRule] = []
        old = dict(self.exceptions)
        if self.default_allow or self.default_allow != target.default_allow:
            out.append(DeviceRule(target.default_allow, "a", None, None, "rwm"))
            old = {}
        for key, perms in DeviceState(self.default_allow, old).ordered():
            dropped = perms - target.exceptions.get(key, frozenset())
            if dropped:
                out.append(DeviceRule(target.default_allow, key[0], key[1], key[2], _text(dropped)))
        for key, perms in target.ordered():
            gained = perms - old.get(key, frozenset())
            if gained:
                out.append(DeviceRule(not target.default_allow, key[0], key[1], key[2],
                                      _text(gained)))
        return out


def _list_line(line: str) -> tuple[str, str, str, str] | None:
    """"c 1:3 rwm" -> its four parts; None for anything else. (Plain splitting: `re` would
    cost every create its import.)"""
    t, _, rest = line.partition(" ")
    number, _, acc = rest.partition(" ")
    ma, colon, mi = number.partition(":")

    def num(s: str) -> bool:
        return s == "*" or (s != "" and all(c in "0123456789" for c in s))

    if t not in ("a", "b", "c") or not colon or not num(ma) or not num(mi):
        return None
    if acc == "" or any(c not in "rwm" for c in acc):
        return None
    return t, ma, mi, acc


def from_devices_list(text: str) -> DeviceState:
    """A v1 cgroup's state from its devices.list (an allow list; "a *:* rwm" = allow all)."""
    st = DeviceState()
    for line in text.splitlines():
        m = _list_line(line.strip())
        if m is None:
            continue
        t, ma, mi, acc = m
        if t == "a":
            return DeviceState(True, {})
        st.apply(DeviceRule(True, t, None if ma == "*" else int(ma),
                            None if mi == "*" else int(mi), acc))
    return st


def _key_str(key: Key) -> str:
    t, ma, mi = key
    return f"{t} {'*' if ma is None else ma}:{'*' if mi is None else mi}"


def rule_str(rule: DeviceRule) -> str:
    return f"{'allow' if rule.allow else 'deny'} {_key_str((rule.type, rule.major, rule.minor))} {rule.access}"


# -- the v2 eBPF program --------------------------------------------------------------------

# struct bpf_cgroup_dev_ctx { u32 access_type /* (access << 16) | type */; u32 major; u32 minor; }
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
_ACCESS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_TYPE = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}

# opcodes: class | op | source (linux/bpf_common.h, linux/bpf.h)
_LDX_MEM_W = 0x61      # BPF_LDX | BPF_MEM | BPF_W
_ALU32_AND_K = 0x54    # BPF_ALU | BPF_AND | BPF_K
_ALU32_RSH_K = 0x74    # BPF_ALU | BPF_RSH | BPF_K
_ALU32_MOV_K = 0xB4    # BPF_ALU | BPF_MOV | BPF_K
_ALU32_MOV_X = 0xBC    # BPF_ALU | BPF_MOV | BPF_X
_JMP_JNE_K = 0x55      # BPF_JMP | BPF_JNE | BPF_K
_JMP_JNE_X = 0x5D      # BPF_JMP | BPF_JNE | BPF_X
_JMP_EXIT = 0x95       # BPF_JMP | BPF_EXIT
R0, R1, R2, R3, R4, R5 = range(6)
LICENSE = "Apache"


class Insn(NamedTuple):
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def pack(self) -> bytes:
        """struct bpf_insn: u8 code, u8 dst_reg:4 src_reg:4 (little endian), s16 off, s32 imm."""
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


def program(state: DeviceState) -> list[Insn]:
    """The device filter for `state`: each exception is a block that returns its verdict
    when type, access, major and minor all match, else jumps to the next block; the
    last block returns the default. R2 = type, R3 = requested access, R4/R5 = major/minor."""
    insns = [
        Insn(_LDX_MEM_W, R2, R1, 0), Insn(_ALU32_AND_K, R2, imm=0xFFFF),
        Insn(_LDX_MEM_W, R3, R1, 0), Insn(_ALU32_RSH_K, R3, imm=16),
        Insn(_LDX_MEM_W, R4, R1, 4),
        Insn(_LDX_MEM_W, R5, R1, 8),
    ]
    verdict = 0 if state.default_allow else 1  # an exception says the opposite of the default
    for (dtype, major, minor), perms in state.ordered():
        access = _perm_bits("".join(perms))
        # An Insn, or (code, dst, src, imm) of a "jump to the next block unless equal".
        seq: list[Insn | tuple[int, int, int, int]] = [(_JMP_JNE_K, R2, 0, _TYPE[dtype])]
        if access != 0b111:
            # (requested & allowed) != requested: something requested is not allowed here
            seq += [Insn(_ALU32_MOV_X, R1, R3), Insn(_ALU32_AND_K, R1, imm=access),
                    (_JMP_JNE_X, R1, R3, 0)]
        for reg, num in ((R4, major), (R5, minor)):
            if num is not None:
                if not 0 <= num < 1 << 31:
                    raise SpecError(f"linux.resources.devices: device number {num} out of range")
                seq.append((_JMP_JNE_K, reg, 0, num))
        seq += [Insn(_ALU32_MOV_K, R0, imm=verdict), Insn(_JMP_EXIT)]
        for i, item in enumerate(seq):
            if isinstance(item, Insn):
                insns.append(item)
            else:
                code, dst, src, imm = item
                insns.append(Insn(code, dst, src, off=len(seq) - i - 1, imm=imm))
    insns += [Insn(_ALU32_MOV_K, R0, imm=1 if state.default_allow else 0), Insn(_JMP_EXIT)]
    return insns


def assemble(insns: list[Insn]) -> bytes:
    return b"".join(i.pack() for i in insns)


def evaluate(insns: list[Insn], dtype: str, major: int, minor: int, access: str) -> bool:
    """Run a program built by `program` on one request: a tiny interpreter for the opcodes
    used above, so unit tests can check the program's verdicts without a kernel."""
    ctx = [(_perm_bits(access) << 16) | _TYPE[dtype], major, minor]
    regs = [0] * 11
    pc = 0
    while True:
        i = insns[pc]
        pc += 1
        if i.code == _LDX_MEM_W:
            regs[i.dst] = ctx[i.off // 4]
        elif i.code == _ALU32_AND_K:
            regs[i.dst] = (regs[i.dst] & i.imm) & 0xFFFFFFFF
        elif i.code == _ALU32_RSH_K:
            regs[i.dst] = (regs[i.dst] & 0xFFFFFFFF) >> i.imm
        elif i.code == _ALU32_MOV_K:
            regs[i.dst] = i.imm & 0xFFFFFFFF
        elif i.code == _ALU32_MOV_X:
            regs[i.dst] = regs[i.src] & 0xFFFFFFFF
        elif i.code == _JMP_JNE_K:
            if regs[i.dst] != i.imm:
                pc += i.off
        elif i.code == _JMP_JNE_X:
            if regs[i.dst] != regs[i.src]:
                pc += i.off
        elif i.code == _JMP_EXIT:
            return regs[R0] == 1
        else:  # pragma: no cover - the builder emits nothing else
            raise ValueError(f"unknown opcode {i.code:#x}")


def _perm_bits(access: str) -> int:
    bits = 0
    for c in access:
        bits |= _ACCESS[c]
    return bits
