"""Signal names and numbers as runc accepts them: 9, KILL, SIGKILL, kill."""

from __future__ import annotations

import signal

from pyrunc.errors import UsageError


def parse_signal(text: str) -> int:
    if text.isdigit():
        num = int(text)
        if num not in {int(s) for s in signal.valid_signals()}:
            raise UsageError(f"unknown signal {text!r}")
        return num
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    if sig is None:
        raise UsageError(f"unknown signal {text!r}")
    return int(sig)
