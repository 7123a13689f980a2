"""Check config.json and container state against pyrunc's OCI runtime-spec v1.2 JSON schemas.

The runtime-spec says runtimes MUST error on invalid values, so `create` validates the whole
config up front and reports the single most relevant problem as one line:

    config.json: linux.namespaces[2].type: 'foo' is not one of ['cgroup', 'ipc', ...]

jsonschema is imported, and the validator built, only on first use (the import alone costs
~100 ms and most CLI commands never need it). `validate_config(..., cache_dir=...)` can skip
even that for configs already validated: a hit requires the byte-identical canonical JSON of
the config under the byte-identical schema, and only successes are cached, so it accepts and
rejects exactly what the validator does.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pyrunc.errors import PyruncError, SpecError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = ["validate_config", "validate_state", "schema_path", "CONFIG_SCHEMA", "STATE_SCHEMA"]

CONFIG_SCHEMA = "config-schema.json"
STATE_SCHEMA = "state-schema.json"

# Bump when this module changes what it accepts, so old cache entries stop matching.
_CACHE_FORMAT = b"pyrunc-schema-cache-1"
_CACHE_SUBDIR = "validated-configs"
# An entry is an empty file; past this many the directory is emptied rather than managed.
_CACHE_MAX_ENTRIES = 1024

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_REPR = 72


def _schema_dirs() -> tuple[Path, Path]:
    """Installed package data first (pyrunc/schemas), then the checkout's top-level schemas/."""
    here = Path(__file__).resolve()
    return here.parent.parent / "schemas", here.parents[3] / "schemas"


def schema_path(name: str) -> Path:
    """Where the schema file `name` lives; a missing schema is a broken install, not a bad config."""
    dirs = _schema_dirs()
    for directory in dirs:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    where = " or ".join(str(d) for d in dirs)
    raise PyruncError(f"schema {name} not found in {where}", errno.ENOENT)


@lru_cache(maxsize=None)
def _schema_bytes(name: str) -> bytes:
    """Raw schema text, read once; also the basis of the cache key."""
    try:
        return schema_path(name).read_bytes()
    except OSError as exc:
        raise PyruncError(f"reading schema {name}: {exc.strerror or exc}", exc.errno) from exc


@lru_cache(maxsize=None)
def _validator(name: str) -> Validator:
    """Build the validator once per process; this is where jsonschema gets imported."""
    import jsonschema.validators

    schema: dict[str, Any] = json.loads(_schema_bytes(name))
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    # JSON Schema counts 1.0 as an integer; Go (runc, the spec's bindings) and the syscalls
    # these values end up in do not, so integers must really be ints.
    strict_types = base.TYPE_CHECKER.redefine("integer", _is_int)
    cls: type[Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        base, type_checker=strict_types
    )
    return cls(schema, format_checker=None)


def _is_int(_checker: object, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def validate_config(raw: object, source: str = "config.json", cache_dir: Path | None = None) -> None:
    """Raise SpecError naming the most relevant schema violation of a parsed config.json.

    `source` prefixes the message. With `cache_dir`, a config whose canonical JSON already
    validated under the same schema is accepted without loading jsonschema; the directory must
    be private to the runtime (anyone who can write it can make configs skip validation).
    """
    marker = _cache_marker(raw, cache_dir) if cache_dir is not None else None
    if marker is not None and marker.exists():
        return
    _validate(CONFIG_SCHEMA, raw, source)
    if marker is not None:
        _remember(marker)


def validate_state(raw: object) -> None:
    """Raise SpecError if `raw` is not a valid runtime-spec state (what `state` prints and hooks read)."""
    _validate(STATE_SCHEMA, raw, "state")


def _validate(name: str, raw: object, source: str) -> None:
    from jsonschema.exceptions import best_match

    try:
        error = best_match(_validator(name).iter_errors(cast(Any, raw)))
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply") from None
    if error is None:
        return
    path, text = _describe(error)
    where = _format_path(path)
    raise SpecError(f"{source}: {where}: {text}" if where else f"{source}: {text}")


def _describe(error: ValidationError) -> tuple[Iterable[str | int], str]:
    """Pick the specific error inside anyOf/oneOf and word it; returns (json path, text)."""
    from jsonschema.exceptions import best_match

    while error.validator in ("anyOf", "oneOf") and error.context:
        if all(sub.validator == "required" for sub in error.context):
            branches: Any = error.validator_value
            names = [name for branch in branches for name in branch.get("required", ())]
            listed = ", ".join(repr(n) for n in names)
            return error.absolute_path, f"at least one of {listed} is required"
        sub = best_match(error.context)
        if sub is None:
            break
        error = sub
    return error.absolute_path, _text(error)


def _text(error: ValidationError) -> str:
    """One phrase for one failed keyword; stable across jsonschema versions."""
    kind = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("x-message")
    shown = _short(instance)
    if kind == "required":
        missing = [name for name in value if isinstance(instance, dict) and name not in instance]
        return f"{(missing or value)[0]!r} is a required property"
    if kind == "type":
        wanted = value if isinstance(value, list) else [value]
        return f"{shown} is not of type {' or '.join(repr(t) for t in wanted)}"
    if kind == "enum":
        return f"{shown} is not one of {sorted(value, key=str)!r}"
    if kind == "const":
        return f"{shown} is not {value!r}"
    if kind in ("pattern", "not") and hint:
        return f"{shown} {hint}"
    if kind == "pattern":
        return f"{shown} does not match {value!r}"
    if kind == "minimum":
        return f"{shown} is less than the minimum of {value}"
    if kind == "maximum":
        return f"{shown} is greater than the maximum of {value}"
    if kind == "exclusiveMinimum":
        return f"{shown} is not greater than {value}"
    if kind in ("minItems", "minLength"):
        if list(error.relative_schema_path)[-2:] == ["propertyNames", "minLength"]:
            return f"key {shown} is too short"
        return f"{shown} is too short"
    if kind == "dependentRequired":
        for prop, needs in value.items():
            if isinstance(instance, dict) and prop in instance:
                for need in needs:
                    if need not in instance:
                        return f"{need!r} is required when {prop!r} is set"
    return error.message


def _short(instance: object) -> str:
    text = repr(instance)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _format_path(parts: Iterable[str | int]) -> str:
    """process.args[0]; keys that are not identifiers are quoted: linux.sysctl["net.core.x"]."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _cache_marker(raw: object, cache_dir: Path) -> Path | None:
    """Cache entry for `raw`, or None when `raw` is not plain JSON data and so not cacheable."""
    try:
        if not _plain_json(raw):
            return None
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (RecursionError, ValueError, TypeError):
        return None
    import hashlib  # ~5 ms of OpenSSL setup, only paid when a cache is in use

    digest = hashlib.sha256()
    for part in (_CACHE_FORMAT, _schema_bytes(CONFIG_SCHEMA), canonical.encode("ascii")):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return cache_dir / _CACHE_SUBDIR / digest.hexdigest()


def _plain_json(value: object) -> bool:
    """Only exact JSON types: a tuple or str subclass serialises like a list or str but validates differently."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and _plain_json(v) for k, v in value.items())  # type: ignore[attr-defined]
    if kind is list:
        return all(_plain_json(v) for v in value)  # type: ignore[attr-defined]
    return value is None or kind in (str, int, float, bool)


def _remember(marker: Path) -> None:
    """Record a success; best effort, the cache is only an optimisation."""
    try:
        directory = marker.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with os.scandir(directory) as entries:
            stale = [entry.path for entry in entries]
        if len(stale) >= _CACHE_MAX_ENTRIES:
            for path in stale:
                os.unlink(path)
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError:
        pass
