"""Check config.json and container state against pyrunc's OCI runtime-spec v1.3 JSON schemas.

The runtime-spec says runtimes MUST error on invalid values, so `create` validates the whole
config up front and reports the single most relevant problem as one line:

    config.json: linux.namespaces[2].type: 'foo' is not one of ['cgroup', 'ipc', ...]

Importing jsonschema costs 100+ ms, more than a whole runc command, so a document is first
checked by pyrunc.spec.fastcheck (the same schema compiled into plain closures, a few ms the
first time in a process): a valid config never loads jsonschema. Only when fastcheck says
"invalid" does jsonschema run, to find and word the problem; should it find none, its verdict
stands (test_fastcheck.py shows the two agree). If the schema ever uses a keyword fastcheck
lacks, jsonschema does all the work. (The on-disk cache of validated configs that used to skip
jsonschema is gone: a hit cost 4+ ms, mostly hashlib's import, more than fastcheck does.)
"""

from __future__ import annotations

import errno
import os

from pyrunc import jsonio
from pyrunc.errors import PyruncError, SpecError
from pyrunc.spec import fastcheck
from pyrunc.spec.patterns import for_re

# typing is for the type checker, and json, re and functools are for wording an invalid
# config only: each import costs every create.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = ["validate_config", "validate_state", "validate_features", "schema_path", "CONFIG_SCHEMA",
           "STATE_SCHEMA", "FEATURES_SCHEMA"]

CONFIG_SCHEMA = "config-schema.json"
STATE_SCHEMA = "state-schema.json"
FEATURES_SCHEMA = "features-schema.json"

_IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT_REST = _IDENT_START | frozenset("0123456789")
_MAX_REPR = 72


def _schema_dirs() -> tuple[str, str]:
    """Installed package data first (pyrunc/schemas), then the checkout's top-level schemas/.
    (os.path, not pathlib: pathlib's import costs every create ~9 ms.)"""
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    return os.path.join(package, "schemas"), os.path.join(package, "..", "..", "schemas")


def schema_path(name: str) -> str:
    """Where the schema file `name` lives; a missing schema is a broken install, not a bad config."""
    dirs = _schema_dirs()
    for directory in dirs:
        candidate = os.path.normpath(os.path.join(directory, name))
        if os.path.isfile(candidate):
            return candidate
    where = " or ".join(str(d) for d in dirs)
    raise PyruncError(f"schema {name} not found in {where}", errno.ENOENT)


_read: dict[str, bytes] = {}
_validators: dict[str, Validator] = {}


def _schema_bytes(name: str) -> bytes:
    """Raw schema text, read once per process (fastcheck and jsonschema both compile from it)."""
    if name not in _read:
        try:
            with open(schema_path(name), "rb") as f:
                _read[name] = f.read()
        except OSError as exc:
            raise PyruncError(f"reading schema {name}: {exc.strerror or exc}", exc.errno) from exc
    return _read[name]


def _validator(name: str) -> Validator:
    """The validator, built once per process; this is where jsonschema gets imported."""
    if name not in _validators:
        _validators[name] = validator_for(jsonio.loads(_schema_bytes(name)))
    return _validators[name]


def validator_for(schema: dict[str, Any]) -> Validator:
    """jsonschema's validator for `schema`, as pyrunc runs it (strict integers, ECMA's `$`)."""
    import jsonschema.validators

    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    # JSON Schema counts 1.0 as an integer; Go (runc, the spec's bindings) and the syscalls
    # these values end up in do not, so integers must really be ints.
    strict_types = base.TYPE_CHECKER.redefine("integer", _is_int)
    # jsonschema runs `pattern` as re.search(pattern, instance): re's `$` also matches before
    # a final newline, ECMA-262's (JSON Schema's, the spec schema's) does not.
    cls: type[Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        base, validators={"pattern": _pattern}, type_checker=strict_types
    )
    return cls(schema, format_checker=None)


def _pattern(validator: Validator, pattern: str, instance: object, _schema: object) -> Iterator[ValidationError]:
    """jsonschema's `pattern` keyword with ECMA-262's `$` (see patterns.for_re)."""
    import re

    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and re.search(for_re(pattern), instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_int(_checker: object, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def validate_config(raw: object, source: str = "config.json") -> None:
    """Raise SpecError naming the most relevant schema violation of a parsed config.json.

    `source` prefixes the message. A valid config costs well under a millisecond once the
    schema is compiled, and never imports jsonschema.
    """
    _check(CONFIG_SCHEMA, raw, source)


def validate_state(raw: object) -> None:
    """Raise SpecError if `raw` is not a valid runtime-spec state (what `state` prints and hooks read)."""
    _check(STATE_SCHEMA, raw, "state")


def validate_features(raw: object) -> None:
    """Raise SpecError if `raw` is not a valid runtime-spec features document (`features`)."""
    _check(FEATURES_SCHEMA, raw, "features")


def _check(name: str, raw: object, source: str) -> None:
    """fastcheck first; jsonschema only to explain a failure (or to decide alone, see module doc)."""
    try:
        if fastcheck.checker(name)(raw):
            return
    except fastcheck.UnsupportedSchema:
        pass  # slower, never weaker: the full validator below decides
    _validate(name, raw, source)


def _validate(name: str, raw: object, source: str) -> None:
    """The jsonschema path: raise SpecError for the best-matching error, return if there is none."""
    from typing import Any, cast  # only a config that failed the fast check gets here

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
    if kind == "maxItems" and isinstance(instance, list):
        return f"{len(instance)} items are more than the maximum of {value}"
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
        elif part and part[0] in _IDENT_START and all(c in _IDENT_REST for c in part):
            out += f".{part}" if out else part
        else:
            out += f"[{jsonio.dumps(part)}]"
    return out
