"""The `pattern`s of pyrunc's schemas as plain string tests, so a create never imports `re`.

`re` (with enum, functools and collections behind it) costs ~9 ms to import on the
machines we measure, most of what fastcheck saves over jsonschema. A schema's patterns are
ECMA-262 regexes (JSON Schema's dialect, the spec's schema's): there `$` is the end of the
string only, while `re`'s `$` also matches before a final newline, so `re` alone would let
"CAP_KILL\\n" match "^CAP_[A-Z_]+$". `for_re` rewrites a pattern so `re` reads its `$` as
ECMA does; each function here answers exactly what `re.search(for_re(pattern), s) is not
None` answers for every str `s` (test_patterns.py checks that against `re` with generated
strings). A pattern not listed here is still checked with `re` (through `for_re`) by fastcheck.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Callable

_DIGITS = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM_DASH = _DIGITS | _UPPER | frozenset("abcdefghijklmnopqrstuvwxyz-")
_AFFINITY = _DIGITS | frozenset(", -")


def for_re(pattern: str) -> str:
    """`pattern` with each `$` outside a character class as `\\Z`, the end of the string only,
    which is what ECMA-262's `$` means (without the m flag) and `re`'s `$` is not."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "$":
            c = "\\Z"
        out.append(c)
        i += 1
    return "".join(out)


def _only(s: str, allowed: frozenset[str]) -> bool:
    return all(c in allowed for c in s)


def _number(s: str) -> bool:
    """0|[1-9][0-9]*"""
    return s != "" and _only(s, _DIGITS) and (s == "0" or s[0] != "0")


def _prefixed_upper(prefix: str, extra: frozenset[str]) -> Callable[[str], bool]:
    """^PREFIX[A-Z...]+$"""
    allowed = _UPPER | extra

    def match(s: str) -> bool:
        return s.startswith(prefix) and len(s) > len(prefix) and _only(s[len(prefix):], allowed)

    return match


def _semver(s: str) -> bool:
    """Semantic Versioning 2.0.0: N.N.N, then -prerelease.idents, then +build.idents."""
    main, plus, build = s.partition("+")
    if plus and not all(part != "" and _only(part, _ALNUM_DASH) for part in build.split(".")):
        return False
    core, dash, pre = main.partition("-")
    parts = core.split(".")
    if len(parts) != 3 or not all(_number(p) for p in parts):
        return False
    if dash:
        for ident in pre.split("."):
            if ident == "" or not _only(ident, _ALNUM_DASH):
                return False
            if _only(ident, _DIGITS) and not _number(ident):
                return False  # all digits: no leading zero
    return True


def _cpu_list(s: str) -> bool:
    """^([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)?$ -- "0-3,5", or empty."""
    if s == "":
        return True
    for item in s.split(","):
        low, dash, high = item.partition("-")
        if low == "" or not _only(low, _DIGITS):
            return False
        if dash and (high == "" or not _only(high, _DIGITS)):
            return False
    return True


def _affinity_list(s: str) -> bool:
    """^[0-9, -]*$ -- the spec's pattern for execCPUAffinity: only digits, ',', ' ' and '-'."""
    return _only(s, _AFFINITY)


def _page_size(s: str) -> bool:
    """^[1-9][0-9]*[KMG]B$ -- "2MB", "1GB" (the kernel's hugetlb names use KB, MB and GB)."""
    return (len(s) >= 3 and s[0] in "123456789" and _only(s[1:-2], _DIGITS)
            and s[-2] in "KMG" and s[-1] == "B")


def _access(s: str) -> bool:
    """^[rwm]*$"""
    return _only(s, frozenset("rwm"))


def _if_name(s: str) -> bool:
    """^[^/:\\s]{1,15}$ -- a network interface name (re's \\s is str.isspace)."""
    return 0 < len(s) <= 15 and not any(c in "/:" or c.isspace() for c in s)


PLAIN: dict[str, Callable[[str], bool]] = {
    "^[^/:\\s]{1,15}$": _if_name,
    "^/": lambda s: s.startswith("/"),
    "^MB:": lambda s: s.startswith("MB:"),
    "\n": lambda s: "\n" in s,
    "^CAP_[A-Z_]+$": _prefixed_upper("CAP_", frozenset("_")),
    "^RLIMIT_[A-Z]+$": _prefixed_upper("RLIMIT_", frozenset()),
    "^[rwm]*$": _access,
    "^[1-9][0-9]*[KMG]B$": _page_size,
    "^[0-9, -]*$": _affinity_list,
    "^([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)?$": _cpu_list,
    ("^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)"
     "(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?"
     "(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$"): _semver,
}
