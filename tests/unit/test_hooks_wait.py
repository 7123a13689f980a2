"""A hook's wait takes any timeout the spec allows (issue 18).

poll(2), under Popen.communicate, takes milliseconds in a C int: from 2147484 s up the wait
raised "OverflowError: timeout is too large", an internal error at create. hooks._communicate
waits such a timeout in pieces. Here the piece is made small (POLL_MAX_SECONDS patched) so
real processes show both sides: a hook slower than one piece still finishes, with its input
and output intact, and one slower than its whole timeout still times out.
"""

from __future__ import annotations

import subprocess

import pytest

from pyrunc.process import hooks


def _cat_after(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", f"sleep {seconds}; cat"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_timeout_poll_cannot_take_is_waited() -> None:
    """2**40 s with the real limit: was OverflowError."""
    proc = _cat_after(0)
    assert hooks._communicate(subprocess, proc, b"state", 2**40) == (b"state", b"")


def test_wait_longer_than_one_piece_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "POLL_MAX_SECONDS", 0.2)
    proc = _cat_after(0.7)  # three pieces and a bit
    assert hooks._communicate(subprocess, proc, b"state", 5) == (b"state", b"")


def test_wait_still_times_out_at_the_whole_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "POLL_MAX_SECONDS", 0.2)
    proc = _cat_after(30)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            hooks._communicate(subprocess, proc, b"state", 1)
    finally:
        proc.kill()
        proc.wait()
