"""Signal names and numbers as runc accepts them: 9, KILL, SIGKILL, kill.

From `_signal`, the C core that `signal` re-exports: `signal` itself builds enums at import,
which costs `kill` more than the rest of its work."""

from __future__ import annotations

import _signal

from pyrunc.errors import UsageError


def _names() -> dict[str, int]:
    """SIGxxx -> number, for every signal this platform names (aliases such as SIGIOT too)."""
    out: dict[str, int] = {}
    for name in dir(_signal):
        if name.isupper() and name.startswith("SIG") and not name.startswith("SIG_"):
            value = getattr(_signal, name)
            if isinstance(value, int):
                out[name] = value
    return out


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        # 0 sends nothing but is still checked: "is it alive?" (`kill ID 0`), as with kill(2).
        if num != 0 and num not in _signal.valid_signals():
            raise UsageError(f"unknown signal {text!r}")
        return num
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    num_by_name = _names()
    if name not in num_by_name:
        raise UsageError(f"unknown signal {text!r}")
    return num_by_name[name]
