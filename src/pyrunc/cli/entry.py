"""The `pyrunc` entry point: the fast path for the engines' per-container calls, else click."""

from __future__ import annotations

import sys

# typing is only for the type checker here: importing it costs the hot commands ~5 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
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
