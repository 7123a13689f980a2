"""A yes/no JSON Schema check for pyrunc's own schemas, without importing jsonschema.

Every `create` validates config.json, and importing jsonschema alone costs over 100 ms per
process, while a runc command takes ~15 ms in all. So a schema is compiled here into nested
closures that only answer "valid or not" (compiling the config schema takes ~1.5 ms, checking a
typical config ~0.1 ms; an interpreting dict walk needs no compile step but checks ~5x slower,
and the compile doubles as the up-front vetting below). When the answer is "not", the caller
runs jsonschema to word the error.

The answer must equal jsonschema's (Draft 2020-12, with schema.py's strict "integer": a real
int, never a bool or 1.0). Hence:

* only the keywords our schemas use are implemented, with jsonschema's exact semantics
  (`pattern` is `re.search(patterns.for_re(pattern), x)`: ECMA's `$`, as schema.py's
  jsonschema; `minimum` applies only to numbers, `required` only to objects, enum/const only
  with string values, `$ref` only to the document's own `$defs`, ...);
  anything else -- an unknown keyword, an unusual value, a nested `$id` -- raises
  UnsupportedSchema at compile time, so a schema edit can make validation slower, never weaker;
* values are classified by exact type (`type(x) is dict`); for anything json.loads cannot
  produce (a tuple, a dict or str subclass, a Decimal) the check gives up and answers False,
  leaving the verdict to jsonschema. So `True` always means jsonschema would accept.

Imports nothing heavy: the schema is parsed with pyrunc.jsonio, and the schemas' patterns
are tested without `re` (pyrunc.spec.patterns); the schema file is read on the first check.
"""

from __future__ import annotations

from pyrunc import jsonio
from pyrunc.spec.patterns import PLAIN, for_re

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    Check = Callable[[Any], bool]

__all__ = ["Check", "UnsupportedSchema", "checker", "compile_schema", "is_valid"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class UnsupportedSchema(ValueError):
    """The schema uses something this module does not implement; validate with jsonschema."""


class _Unsure(Exception):
    """The instance holds a non-JSON Python value whose classification could differ from jsonschema's."""


_NoneType = type(None)
# Exactly what json.loads produces. Values of other types (subclasses included) raise _Unsure.
_JSON_TYPES: frozenset[type] = frozenset({dict, list, str, int, float, bool, _NoneType})
_TYPE_NAMES: dict[str, frozenset[type]] = {
    "object": frozenset({dict}),
    "array": frozenset({list}),
    "string": frozenset({str}),
    # schema.py redefines "integer" as int-but-not-bool, so 1.0 is not an integer here either.
    "integer": frozenset({int}),
    "number": frozenset({int, float}),
    "boolean": frozenset({bool}),
    "null": frozenset({_NoneType}),
}
_NUMBER_TYPES = (int, float)
_STR_ONLY: frozenset[type] = frozenset({str})

# Keywords that never affect validity (x-message is pyrunc's error text for pattern/not).
_ANNOTATIONS = frozenset({"title", "description", "$comment", "x-message"})
_ROOT_ONLY = frozenset({"$schema", "$id", "$defs"})
_OBJECT_KEYWORDS = frozenset({"required", "properties", "additionalProperties", "propertyNames", "dependentRequired"})
_ARRAY_KEYWORDS = frozenset({"items", "minItems", "maxItems"})
_STRING_KEYWORDS = frozenset({"pattern", "minLength", "maxLength"})
_NUMBER_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
_GENERAL_KEYWORDS = frozenset({"type", "enum", "const", "$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"})
KEYWORDS = _ANNOTATIONS | _OBJECT_KEYWORDS | _ARRAY_KEYWORDS | _STRING_KEYWORDS | _NUMBER_KEYWORDS | _GENERAL_KEYWORDS

_DEF_PREFIX = "#/$defs/"


def _true(_x: Any) -> bool:
    return True


def _false(_x: Any) -> bool:
    return False


def _mismatch(x: Any) -> bool:
    """x is not of the one type a node wants: invalid if x is plain JSON, otherwise unsure."""
    if type(x) in _JSON_TYPES:
        return False
    raise _Unsure


def compile_schema(document: Any, lazy: bool = False) -> Check:
    """Compile a whole Draft 2020-12 schema document; the Check never raises (unsure means False).

    Eager (the default) compiles every $defs entry now, vetting the whole document. `lazy`
    compiles each on its first use instead: a config reaches a fraction of the schema, and
    compiling all of it costs every create ~2.5 ms. A lazily met unsupported keyword raises
    UnsupportedSchema from the check itself (the caller then asks jsonschema); the shipped
    schemas are vetted eagerly by the tests."""
    if not isinstance(document, (dict, bool)):
        raise UnsupportedSchema(f"schema root is a {type(document).__name__}")
    defs: Mapping[str, Any] = {}
    if isinstance(document, dict):
        dialect = document.get("$schema", DIALECT)
        if dialect != DIALECT:
            raise UnsupportedSchema(f"$schema {dialect!r}: only {DIALECT} is implemented")
        if "$id" in document and not isinstance(document["$id"], str):
            raise UnsupportedSchema("$id is not a string")
        defs = document.get("$defs", {})
        if not isinstance(defs, dict):
            raise UnsupportedSchema("$defs is not an object")
    compiler = _Compiler(defs, lazy)
    check = compiler.node(document, "#", root=True)
    if not lazy:
        for name in defs:  # unreferenced definitions are still vetted, so none can hide an unknown keyword
            compiler.ref(f"#/$defs/{name}", "#")

    def checked(instance: Any) -> bool:
        try:
            return check(instance)
        except (_Unsure, RecursionError):
            return False

    return checked


class _Compiler:
    """Turns schema nodes into closures; $defs are compiled once each and shared."""

    def __init__(self, defs: Mapping[str, Any], lazy: bool = False) -> None:
        self.defs = defs
        self.lazy = lazy
        self.done: dict[str, Check] = {}
        self.slots: dict[str, list[Check]] = {}

    def ref(self, ref: Any, where: str) -> Check:
        name = ref[len(_DEF_PREFIX):] if isinstance(ref, str) and ref.startswith(_DEF_PREFIX) else ""
        # No "/", "~" or "%": then the JSON pointer is the name itself, with nothing to unescape.
        if name not in self.defs or any(c in name for c in "/~%"):
            raise UnsupportedSchema(f"{where}: $ref {ref!r} is not '#/$defs/<name>' of this document")
        if name in self.done:
            return self.done[name]
        if self.lazy:
            compiled: list[Check] = []

            def on_first_use(x: Any) -> bool:
                if not compiled:
                    compiled.append(self.node(self.defs[name], f"#/$defs/{name}"))
                return compiled[0](x)

            self.done[name] = on_first_use  # a cycle meets this too: compiled by then
            return on_first_use
        if name in self.slots:  # a cycle: go through an indirection filled in below
            slot = self.slots[name]
            return lambda x: slot[0](x)
        self.slots[name] = slot = [_false]
        check = self.node(self.defs[name], f"#/$defs/{name}")
        slot[0] = self.done[name] = check
        del self.slots[name]
        return check

    def node(self, schema: Any, where: str, root: bool = False) -> Check:
        """One schema object: a type dispatch to per-type checks, then the type-independent ones."""
        if schema is True:
            return _true
        if schema is False:
            return _false
        if not isinstance(schema, dict):
            raise UnsupportedSchema(f"{where}: a schema must be an object or a boolean")
        for key in schema:
            if key not in KEYWORDS and not (root and key in _ROOT_ONLY):
                raise UnsupportedSchema(f"{where}: unsupported keyword {key!r}")
        if ("then" in schema or "else" in schema) and "if" not in schema:
            raise UnsupportedSchema(f"{where}: then/else without if")

        types = self._types(schema, where)
        specific: dict[type, list[Check]] = {}
        if not _OBJECT_KEYWORDS.isdisjoint(schema):
            specific[dict] = [self._object(schema, where)]
        if not _ARRAY_KEYWORDS.isdisjoint(schema):
            specific[list] = [self._array(schema, where)]
        if not _STRING_KEYWORDS.isdisjoint(schema):
            specific[str] = [self._string(schema, where)]
        if not _NUMBER_KEYWORDS.isdisjoint(schema):
            specific[int] = specific[float] = [self._number(schema, where)]
        enum = self._enum(schema, where)
        if enum is not None:  # string-only (see _enum): no other type can pass
            types &= _STR_ONLY
            specific[str] = [enum, *specific.get(str, ())]
        general = self._general(schema, where)
        if not specific and types is _JSON_TYPES:
            return _all(general)  # e.g. a bare $ref: nothing here depends on the type
        # For each JSON type the node admits, the checks that apply to that type.
        parts = {kind: _all(specific.get(kind, ())) for kind in types}

        if len(parts) == 1 and not general:  # nearly every node: one type, no dispatch dict
            ((only, part),) = parts.items()
            if part is _true:
                return lambda x: type(x) is only or _mismatch(x)
            return lambda x: part(x) if type(x) is only else _mismatch(x)

        def dispatch(x: Any) -> bool:
            part = parts.get(type(x))
            return _mismatch(x) if part is None else part(x)

        return _all([dispatch, *general])

    # --- type and the type-independent keywords --------------------------------------------

    def _types(self, schema: Mapping[str, Any], where: str) -> frozenset[type]:
        names = schema.get("type")
        if names is None:
            return _JSON_TYPES
        if type(names) is str and names in _TYPE_NAMES:
            return _TYPE_NAMES[names]
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or any(n not in _TYPE_NAMES for n in names):
            raise UnsupportedSchema(f"{where}: type {schema['type']!r}")
        return frozenset().union(*(_TYPE_NAMES[n] for n in names))

    def _enum(self, schema: Mapping[str, Any], where: str) -> Check | None:
        """enum/const with string values only: then jsonschema's `equal` is plain `==` on str."""
        options: set[str] | None = None
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values or any(type(v) is not str for v in values):
                raise UnsupportedSchema(f"{where}: enum must be a non-empty list of strings")
            options = set(values)
        if "const" in schema:
            if type(schema["const"]) is not str:
                raise UnsupportedSchema(f"{where}: const must be a string")
            options = {schema["const"]} if options is None else options & {schema["const"]}
        if options is None:
            return None
        members = frozenset(options)
        return members.__contains__

    def _general(self, schema: Mapping[str, Any], where: str) -> list[Check]:
        checks: list[Check] = []
        if "$ref" in schema:
            checks.append(self.ref(schema["$ref"], where))
        for keyword in ("allOf", "anyOf", "oneOf"):
            if keyword not in schema:
                continue
            branches = schema[keyword]
            if not isinstance(branches, list) or not branches:
                raise UnsupportedSchema(f"{where}: {keyword} must be a non-empty list")
            subs = tuple(self.node(s, f"{where}/{keyword}/{i}") for i, s in enumerate(branches))
            if keyword == "allOf":
                checks.extend(subs)
            elif keyword == "anyOf":
                checks.append(_any(subs))
            else:
                checks.append(_one(subs))
        if "not" in schema:
            negated = self.node(schema["not"], f"{where}/not")
            checks.append(lambda x: not negated(x))
        if "if" in schema:
            condition = self.node(schema["if"], f"{where}/if")
            then = self.node(schema.get("then", True), f"{where}/then")
            otherwise = self.node(schema.get("else", True), f"{where}/else")
            checks.append(lambda x: then(x) if condition(x) else otherwise(x))
        return checks

    # --- per-type keywords (each closure gets a value of its exact type) ------------------------

    def _object(self, schema: Mapping[str, Any], where: str) -> Check:
        required = _strings(schema.get("required", []), f"{where}/required")
        raw_props = schema.get("properties", {})
        if not isinstance(raw_props, dict):
            raise UnsupportedSchema(f"{where}: properties must be an object")
        props = {name: self.node(sub, f"{where}/properties/{name}") for name, sub in raw_props.items()}
        extra = self.node(schema["additionalProperties"], f"{where}/additionalProperties") \
            if "additionalProperties" in schema else None
        names = self.node(schema["propertyNames"], f"{where}/propertyNames") if "propertyNames" in schema else None
        raw_deps = schema.get("dependentRequired", {})
        if not isinstance(raw_deps, dict):
            raise UnsupportedSchema(f"{where}: dependentRequired must be an object")
        deps = tuple((key, _strings(needs, f"{where}/dependentRequired/{key}")) for key, needs in raw_deps.items())
        walk = bool(props) or extra is not None

        def check(x: dict[Any, Any]) -> bool:
            for key in required:
                if key not in x:
                    return False
            if walk:
                for key, value in x.items():
                    sub = props.get(key, extra)
                    if sub is not None and not sub(value):
                        return False
            if names is not None:
                for key in x:
                    if not names(key):
                        return False
            for key, needs in deps:
                if key in x:
                    for need in needs:
                        if need not in x:
                            return False
            return True

        return check

    def _array(self, schema: Mapping[str, Any], where: str) -> Check:
        low = _count(schema, "minItems", where)
        high = _count(schema, "maxItems", where)
        item = self.node(schema["items"], f"{where}/items") if "items" in schema else _true

        def check(x: list[Any]) -> bool:
            if len(x) < low or (high is not None and len(x) > high):
                return False
            if item is not _true:
                for value in x:
                    if not item(value):
                        return False
            return True

        return check

    def _string(self, schema: Mapping[str, Any], where: str) -> Check:
        low = _count(schema, "minLength", where)
        high = _count(schema, "maxLength", where)
        pattern = schema.get("pattern")
        if pattern is not None and not isinstance(pattern, str):
            raise UnsupportedSchema(f"{where}: pattern must be a string")
        plain = PLAIN.get(pattern) if pattern is not None else None
        # Compiled on first use: most configs never reach most patterns, and re is slow.
        compiled: list[re.Pattern[str]] = []

        def check(x: str) -> bool:
            if len(x) < low or (high is not None and len(x) > high):
                return False
            if plain is not None:
                return plain(x)
            if pattern is not None:
                if not compiled:
                    import re
                    compiled.append(re.compile(for_re(pattern)))  # ECMA's `$`, as schema.py's
                if compiled[0].search(x) is None:
                    return False
            return True

        return check

    def _number(self, schema: Mapping[str, Any], where: str) -> Check:
        """Bounds, with jsonschema's own comparisons (`x < minimum` fails, so NaN passes)."""
        bounds = {key: schema[key] for key in _NUMBER_KEYWORDS if key in schema}
        for key, bound in bounds.items():
            if type(bound) not in _NUMBER_TYPES:
                raise UnsupportedSchema(f"{where}: {key} must be a number")
        low, high = bounds.get("minimum"), bounds.get("maximum")
        above, below = bounds.get("exclusiveMinimum"), bounds.get("exclusiveMaximum")
        if above is None and below is None and low is not None and high is not None:
            return lambda x: not (x < low or x > high)

        def check(x: int | float) -> bool:
            return not (
                (low is not None and x < low)
                or (high is not None and x > high)
                or (above is not None and x <= above)
                or (below is not None and x >= below)
            )

        return check


def _all(checks: Sequence[Check]) -> Check:
    if not checks:
        return _true
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    frozen = tuple(checks)
    return lambda x: all(c(x) for c in frozen)


def _any(subs: tuple[Check, ...]) -> Check:
    return lambda x: any(s(x) for s in subs)


def _one(subs: tuple[Check, ...]) -> Check:
    return lambda x: sum(1 for s in subs if s(x)) == 1


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or any(type(v) is not str for v in value):
        raise UnsupportedSchema(f"{where}: must be a list of strings")
    return tuple(value)


def _count(schema: Mapping[str, Any], key: str, where: str) -> Any:
    """A non-negative int limit; 0 (minimum) or None (maximum) when absent."""
    if key not in schema:
        return 0 if key.startswith("min") else None
    value = schema[key]
    if type(value) is not int or value < 0:
        raise UnsupportedSchema(f"{where}: {key} must be a non-negative integer")
    return value


# --- pyrunc's schema files ---------------------------------------------------------------------

_compiled: dict[str, Check | UnsupportedSchema] = {}


def checker(name: str) -> Check:
    """The compiled check for schema file `name` (see pyrunc.spec.schema), built once per process.

    Raises UnsupportedSchema (every time) if the file uses something not implemented here.
    """
    found = _compiled.get(name)
    if found is None:
        from pyrunc.spec.schema import _schema_bytes  # that module imports this one

        try:
            found = compile_schema(jsonio.loads(_schema_bytes(name)), lazy=True)
        except UnsupportedSchema as exc:
            found = exc
        _compiled[name] = found
    if isinstance(found, UnsupportedSchema):
        raise found
    return found


def is_valid(instance: Any) -> bool:
    """Would jsonschema accept `instance` as a config.json? (False may also mean "ask jsonschema".)"""
    from pyrunc.spec.schema import CONFIG_SCHEMA

    return checker(CONFIG_SCHEMA)(instance)
