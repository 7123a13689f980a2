"""Read a bundle's config.json once: parse, validate against the schema, convert."""

from __future__ import annotations

import os

from pyrunc import jsonio
from pyrunc.errors import SpecError
from pyrunc.spec.config import Config, convert

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any


def read_json(path: str, label: str = "config.json") -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SpecError(f"{label}: {path} does not exist") from None
    except OSError as exc:
        raise SpecError(f"{label}: cannot read {path}: {exc.strerror}", exc.errno) from None
    try:
        # jsonio accepts nothing json rejects; what it refuses, json reads again, to accept
        # what jsonio does not handle (UTF-16, a BOM) or to word the error. (json's import,
        # with re's, costs every create ~12 ms.)
        return jsonio.loads(data)
    except (ValueError, RecursionError):
        pass
    import json
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise SpecError(f"{label}: not valid UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{label}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise SpecError(f"{label}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise SpecError(f"{label}: invalid JSON: {exc}") from None


def load_bundle(bundle: str) -> Config:
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise SpecError(f"bundle {bundle} does not exist or is not a directory")
    raw = read_json(os.path.join(bundle, "config.json"))
    from pyrunc.spec.schema import validate_config
    validate_config(raw, "config.json")
    return convert(raw, bundle)
