"""Read a bundle's config.json once: parse, validate against the schema, convert."""

from __future__ import annotations

import os

from pyrunc import jsonio
from pyrunc.errors import SpecError
from pyrunc.spec.config import Config, convert

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any


# A real config.json is a few KiB (a big seccomp profile ~100 KiB): the cap only keeps
# /dev/zero or a runaway file from being read until MemoryError.
MAX_JSON_BYTES = 16 << 20


def _read_bounded(path: str, label: str) -> bytes:
    """The file's bytes, if it is a regular file of at most MAX_JSON_BYTES. Opened with
    O_NONBLOCK so a FIFO (or a device) never blocks the open; refused by fstat after."""
    import stat
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise SpecError(f"{label}: {path} does not exist") from None
    except OSError as exc:
        raise SpecError(f"{label}: cannot read {path}: {exc.strerror}", exc.errno) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"{label}: {path} is not a regular file")
        if st.st_size > MAX_JSON_BYTES:
            raise SpecError(f"{label}: {path} is larger than {MAX_JSON_BYTES >> 20} MiB")
        chunks: list[bytes] = []
        total = 0
        while True:  # bounded even if the file grows while it is read
            chunk = os.read(fd, MAX_JSON_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_JSON_BYTES:
                raise SpecError(f"{label}: {path} is larger than {MAX_JSON_BYTES >> 20} MiB")
        return b"".join(chunks)
    except OSError as exc:
        raise SpecError(f"{label}: cannot read {path}: {exc.strerror}", exc.errno) from None
    finally:
        os.close(fd)


def _bad_string(doc: Any, path: list[str | int]) -> tuple[list[str | int], str] | None:
    """The first string (value or key) that no syscall can take: a NUL byte ends a C string
    early (a path, an option, an env entry would be cut or raise ValueError), and a lone
    surrogate (JSON "\\ud800") cannot be encoded at all."""
    if isinstance(doc, str):
        if "\0" in doc:
            return path, "contains a NUL byte"
        if not doc.isascii():
            try:
                doc.encode()
            except UnicodeEncodeError:
                return path, "is not valid Unicode (a lone surrogate)"
        return None
    if isinstance(doc, dict):
        for key, value in doc.items():
            found = _bad_string(key, path) or _bad_string(value, [*path, key])
            if found:
                return found
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found = _bad_string(value, [*path, i])
            if found:
                return found
    return None


def _check_strings(obj: Any, label: str) -> None:
    found = _bad_string(obj, [])
    if found is not None:
        from pyrunc.spec.schema import _format_path
        where = _format_path(found[0])
        raise SpecError(f"{label}: {where}: {found[1]}" if where else f"{label}: {found[1]}")


def read_json(path: str, label: str = "config.json") -> Any:
    data = _read_bounded(path, label)
    if b"\\u" in data or not data.isascii():
        # Only an escape can put a NUL or a lone surrogate in a string (json refuses raw
        # control characters); non-ASCII bytes may be UTF-16. Then every string is looked at.
        obj = _parse(data, label)
        _check_strings(obj, label)
        return obj
    return _parse(data, label)


def _parse(data: bytes, label: str) -> Any:
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
    path = os.path.join(bundle, "config.json")
    if not os.path.lexists(path):
        # A user who ran `run ID` outside the bundle learns why it looked here.
        raise SpecError(f"config.json: {path} does not exist (the bundle is the current "
                        "directory unless --bundle names it)")
    raw = read_json(path)
    from pyrunc.spec.schema import validate_config
    validate_config(raw, "config.json")
    return convert(raw, bundle)
