"""The `pyrunc` entry point: the fast path for the engines' per-container calls, else click."""

from __future__ import annotations

import sys
from typing import NoReturn


def main(argv: list[str] | None = None) -> NoReturn:
    from pyrunc.cli.edge import leave
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from pyrunc.cli import fast
        code = fast.run(args)
        if code is None:
            from pyrunc.cli.main import main as click_main
            click_main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    leave(code or 0)
