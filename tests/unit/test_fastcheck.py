"""Differential tests: pyrunc.spec.fastcheck must accept exactly what jsonschema accepts.

validate_config trusts a "valid" from fastcheck without ever running jsonschema, so a single
case where fastcheck says valid and jsonschema says invalid would let a bad config through.
The oracle is schema.py's own jsonschema validator (Draft 2020-12 with strict integers), and
every comparison asserts equality both ways:

* the fixed corpus: every valid and invalid config and state of test_schema.py, `runc spec`
  output, and every single-point mutation of the maximal config that the schema makes
  interesting (each integer at and beyond its bounds, each enum member and near misses, each
  pattern probed, each key deleted, each missing property added, every type swapped);
* hypothesis: several mutations at once on whole configs and on each $defs type, random JSON,
  and random small schemas over every keyword fastcheck implements.

Mutated sub-documents are checked against the schema rooted at their enclosing $defs entry
(same $defs, same keywords), which keeps jsonschema -- the slow side -- fast enough for
thousands of cases.
"""

from __future__ import annotations

import collections
import copy
import decimal
import enum
import functools
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import test_schema
from pyrunc.errors import SpecError
from pyrunc.spec import fastcheck, schema
from pyrunc.spec.schema import CONFIG_SCHEMA, FEATURES_SCHEMA, STATE_SCHEMA, schema_path, validate_config
from test_schema import CASES, MAXIMAL, RUNC_DEFAULT, mutated

Json = Any
Path_ = tuple[str | int, ...]

DOC: dict[str, Json] = json.loads(Path(schema_path(CONFIG_SCHEMA)).read_text())
DEFS: dict[str, Json] = DOC["$defs"]
# schema.py's jsonschema validator class: Draft 2020-12 with "integer" meaning a real int.
STRICT = type(schema._validator(CONFIG_SCHEMA))
FAST_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Pair(NamedTuple):
    fast: Callable[[Json], bool]
    slow: Callable[[Json], bool]


@functools.cache
def pair(root: str | None = None) -> Pair:
    """fastcheck and jsonschema for the config schema, or for it rooted at $defs/<root>."""
    if root is None:
        return Pair(fastcheck.checker(CONFIG_SCHEMA), schema._validator(CONFIG_SCHEMA).is_valid)
    document = {"$schema": DOC["$schema"], "$defs": DEFS, "$ref": f"#/$defs/{root}"}
    return Pair(fastcheck.compile_schema(document), STRICT(document, format_checker=None).is_valid)


def agree(instance: Json, root: str | None = None) -> bool:
    """Assert both validators give the same verdict; return it."""
    fast, slow = pair(root)
    expected = slow(instance)
    assert fast(instance) is expected, f"fastcheck says {not expected}, jsonschema {expected}: {instance!r:.300}"
    return expected


def _parametrized(test: Callable[..., object]) -> list[tuple[Any, ...]]:
    """The argument tuples of a test_schema test's @pytest.mark.parametrize."""
    mark = next(m for m in getattr(test, "pytestmark") if m.name == "parametrize")
    rows = []
    for entry in mark.args[1]:
        if hasattr(entry, "marks"):  # pytest.param(...)
            rows.append(tuple(entry.values))
        else:
            rows.append(entry if isinstance(entry, tuple) else (entry,))
    return rows


# --- the schemas compile ----------------------------------------------------------------------


@pytest.mark.parametrize("name", [CONFIG_SCHEMA, STATE_SCHEMA, FEATURES_SCHEMA])
def test_shipped_schemas_compile(name: str) -> None:
    """If this fails, validate_config still works, but loads jsonschema for the configs that
    reach the unsupported part: extend fastcheck. (The runtime compiles lazily; this vets all.)"""
    assert callable(fastcheck.checker(name))
    assert callable(fastcheck.compile_schema(json.loads(Path(schema_path(name)).read_text())))


def test_lazy_compile_meets_an_unsupported_keyword_at_check_time() -> None:
    """Lazily, a $defs entry is compiled when a value first reaches it: an unsupported keyword
    there raises then (schema._check falls back to jsonschema), never a silent pass."""
    document = {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}},
                "$defs": {"A": {"type": "string", "format": "hostname"}}}
    with pytest.raises(fastcheck.UnsupportedSchema, match="format"):
        fastcheck.compile_schema(document)
    check = fastcheck.compile_schema(document, lazy=True)
    assert check({"b": 1})  # never reaches A
    with pytest.raises(fastcheck.UnsupportedSchema, match="format"):
        check({"a": "x"})


def test_every_pattern_compiles() -> None:
    """fastcheck compiles patterns on first use; a broken one must not wait for a config to hit it."""
    def patterns(node: Json) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern":
                    yield value
                yield from patterns(value)
        elif isinstance(node, list):
            for item in node:
                yield from patterns(item)

    found = list(patterns(DOC)) + list(patterns(json.loads(Path(schema_path(STATE_SCHEMA)).read_text())))
    assert len(found) >= 8
    for pattern in found:
        re.compile(pattern)


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"type": "string", "format": "uri"}, "format"),
        ({"patternProperties": {"^a": {}}}, "patternProperties"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "array", "prefixItems": [{}]}, "prefixItems"),
        ({"x-note": "annotations other than x-message are refused too"}, "x-note"),
        ({"properties": {"a": {"$id": "other", "type": "string"}}}, "$id"),
        ({"properties": {"a": {"$defs": {}}}}, "$defs"),
        ({"$ref": "other.json#/$defs/x"}, "other.json"),
        ({"$ref": "#/$defs/missing", "$defs": {}}, "missing"),
        ({"$defs": {"a": {"type": "strin"}}}, "strin"),  # unreferenced definitions are vetted as well
        ({"enum": ["a", 1]}, "enum"),
        ({"const": 1}, "const"),
        ({"minimum": True}, "minimum"),
        ({"minItems": 1.0}, "minItems"),
        ({"required": "a"}, "required"),
        ({"then": {"required": ["a"]}}, "then/else without if"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "draft-07"),
        ([], "list"),
    ],
)
def test_unknown_schema_features_are_refused(document: Json, why: str) -> None:
    with pytest.raises(fastcheck.UnsupportedSchema, match=re.escape(why)):
        fastcheck.compile_schema(document)


def test_unsupported_schema_falls_back_to_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema edit fastcheck cannot follow makes validation slower, not weaker."""
    edited = dict(DOC, properties=dict(DOC["properties"], hostname={"type": "string", "format": "hostname"}))
    monkeypatch.setattr(fastcheck, "_compiled", {})
    monkeypatch.setattr(schema, "_schema_bytes", lambda name: json.dumps(edited).encode())
    for _ in range(2):  # the refusal is remembered, and raised again each time
        with pytest.raises(fastcheck.UnsupportedSchema, match="format"):
            fastcheck.is_valid(RUNC_DEFAULT)
    validate_config(copy.deepcopy(RUNC_DEFAULT))  # jsonschema ignores "format": same verdicts, same words
    for _name, base, change, expected in CASES[:10]:
        with pytest.raises(SpecError) as info:
            validate_config(mutated(base, change))
        assert str(info.value) == expected


def test_jsonschema_has_the_last_word(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should fastcheck ever reject what jsonschema accepts, the config is accepted (and slowly)."""
    monkeypatch.setattr(fastcheck, "checker", lambda name: lambda instance: False)
    validate_config(copy.deepcopy(MAXIMAL))
    with pytest.raises(SpecError):
        validate_config({})


# --- valid configs never load jsonschema ------------------------------------------------------


def test_valid_config_does_not_import_jsonschema(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(MAXIMAL))
    code = (
        "import json, sys\n"
        "from pyrunc.spec.schema import validate_config, validate_state\n"
        f"validate_config(json.load(open({str(config)!r})))\n"
        "validate_state({'ociVersion': '1.2.0', 'id': 'c', 'status': 'created', 'pid': 1, 'bundle': '/b'})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'referencing', 'rpds', 'attrs'))\n"
        "assert not loaded, loaded\n"
    )
    src = str(Path(schema.__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# --- the fixed corpus ---------------------------------------------------------------------------


def _valid_corpus() -> list[Json]:
    configs = [RUNC_DEFAULT, MAXIMAL, *(row[0] for row in _parametrized(test_schema.test_valid_configs))]
    assert len(configs) >= 10
    return configs


def test_valid_configs_of_test_schema() -> None:
    for config in _valid_corpus():
        assert agree(config)


def test_invalid_configs_of_test_schema() -> None:
    """Each CASES entry: both say invalid, and validate_config raises the same message as before."""
    for _name, base, change, expected in CASES:
        config = mutated(base, change)
        assert not agree(config)
        with pytest.raises(SpecError) as info:
            validate_config(config)
        assert str(info.value) == expected
    for (top,) in _parametrized(test_schema.test_top_level_not_an_object):
        assert not agree(top)


def test_states_of_test_schema() -> None:
    fast, slow = fastcheck.checker(STATE_SCHEMA), schema._validator(STATE_SCHEMA).is_valid
    valid: list[Json] = [
        {"ociVersion": "1.2.0", "id": "c1", "status": "running", "pid": 4422, "bundle": "/b"},
        {"ociVersion": "1.0.2-dev", "id": "c1", "status": "paused", "pid": 0, "bundle": "/b", "x": 1},
    ]
    invalid = [row[0] for row in _parametrized(test_schema.test_invalid_states)]
    assert len(invalid) >= 9
    for state in valid:
        assert fast(state) and slow(state)
    for state in invalid:
        assert not fast(state) and not slow(state)


@pytest.mark.parametrize("flags", [[], ["--rootless"]])
def test_runc_spec_output(flags: list[str], tmp_path: Path) -> None:
    runc = shutil.which("runc") or ("/usr/sbin/runc" if os.access("/usr/sbin/runc", os.X_OK) else None)
    if runc is None:
        pytest.skip("runc is not installed")
    subprocess.run([runc, "spec", *flags], cwd=tmp_path, check=True, capture_output=True)
    assert agree(json.loads((tmp_path / "config.json").read_text()))


def test_non_json_python_values_defer_to_jsonschema() -> None:
    """Types json.loads never makes: fastcheck answers False, validate_config follows jsonschema."""
    class Text(str):
        pass

    class Number(enum.IntEnum):
        ZERO = 0

    odd_configs: list[Json] = [
        collections.OrderedDict(RUNC_DEFAULT),  # jsonschema: still an object, valid
        mutated(RUNC_DEFAULT, lambda c: c.update(hostname=Text("h"))),  # valid
        mutated(RUNC_DEFAULT, lambda c: c["process"]["user"].update(uid=Number.ZERO)),  # valid
        mutated(RUNC_DEFAULT, lambda c: c["process"].update(args=("sh",))),  # a tuple is no array
        mutated(RUNC_DEFAULT, lambda c: c["process"]["user"].update(uid=decimal.Decimal(1))),
        mutated(RUNC_DEFAULT, lambda c: c["linux"]["namespaces"][0].update(type=Text("pid"))),
    ]
    for config in odd_configs:
        assert fastcheck.is_valid(config) is False
        slow = schema._validator(CONFIG_SCHEMA).is_valid(config)
        try:
            validate_config(config)
            accepted = True
        except SpecError:
            accepted = False
        assert accepted is slow


# --- single-point mutations of the maximal config ---------------------------------------------


class Spot(NamedTuple):
    """A place in an instance, the (resolved) schema describing it, and the $defs entry
    enclosing it strictly from above (None: the whole config), with that entry's path."""

    path: Path_
    schema: dict[str, Json]
    owner: str | None
    owner_path: Path_


def spots(instance: Json, node: Json = DOC, path: Path_ = (),
          owners: tuple[tuple[str | None, Path_], ...] = ((None, ()),)) -> Iterator[Spot]:
    if isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        node = DEFS[name]
        inner = (*owners, (name, path))
    else:
        inner = owners
    above = [o for o in owners if len(o[1]) < len(path)] or [(None, ())]
    yield Spot(path, node, *above[-1])
    if isinstance(instance, dict):
        props, extra = node.get("properties", {}), node.get("additionalProperties")
        for key, value in instance.items():
            child = props.get(key, extra)
            if isinstance(child, dict):
                yield from spots(value, child, (*path, key), inner)
    elif isinstance(instance, list) and isinstance(node.get("items"), dict):
        for index, value in enumerate(instance):
            yield from spots(value, node["items"], (*path, index), inner)


def get(node: Json, path: Path_) -> Json:
    for part in path:
        node = node[part]
    return node


STRING_PROBES = [
    "", "x", "/", "/a", "a/", "\n/", "/\n", "1.2.0", "1.2.0\n", "1.2", "01.2.0", "1.2.0-", "1.2.0-rc.01",
    "1.2.0-rc.1+b.5", "1.2.0+", "0-3,7", "0-3,7\n", "0-", ",", "7", "RLIMIT_CPU", "RLIMIT_CPU\n", "RLIMIT_",
    "rlimit_cpu", "CAP_SYS_ADMIN", "CAP_", "CAP_X\n", "cap_x", "rwm", "rwx", "mrw\n", "2MB", "0MB", "2mb",
    "64KB\n", "MB:0=1", "MB:", "MB:\n", "MB:0=1\n", "\nMB:", "mb:0",
]


def probes(node: dict[str, Json], current: Json) -> list[Json]:
    """Values to put where `node` applies: type swaps, boundaries, enum members and near misses."""
    values: list[Json] = [None, False, True, 0, -1, 1.0, 0.5, math.nan, "x", [], {}, [current]]
    for key in ("minimum", "maximum", "exclusiveMinimum"):
        if key in node:
            bound = node[key]
            values += [bound - 1, bound, bound + 1, float(bound), -bound]
    options = node.get("enum", []) + ([node["const"]] if "const" in node else [])
    for option in options:
        values += [option, option.lower(), option + "\n", " " + option, option[:-1]]
    if "pattern" in node:
        values += STRING_PROBES
    if isinstance(current, str):
        values += [current + "\n", current.lower(), current[1:], current + "x"]
    if isinstance(current, int) and not isinstance(current, bool):
        values += [float(current), str(current), current + 1, -current - 1]
    if isinstance(current, list) and current:
        values += [current[:1], current + current[:1], current + [None], [*current[1:], 7]]
    return values


def _owner_copy(base: Json, spot: Spot) -> tuple[Json, Json]:
    """A copy of the instance enclosing `spot`, and (in that copy) the parent of `spot`."""
    owner = get(base, spot.owner_path)
    rules = DOC if spot.owner is None else DEFS[spot.owner]
    if set(rules) <= _INDEPENDENT and len(spot.path) > len(spot.owner_path):
        # Properties are then checked one by one, so the other (valid) ones cannot matter:
        # keep the required ones and the one on the way to `spot` (jsonschema is slow on big ones).
        keep = {*rules.get("required", ()), spot.path[len(spot.owner_path)]}
        owner = {key: value for key, value in owner.items() if key in keep}
    owner = copy.deepcopy(owner)
    return owner, get(owner, spot.path[len(spot.owner_path):-1])


_INDEPENDENT = {"$schema", "$id", "$defs", "title", "description", "type", "required", "properties"}


def single_mutations(base: Json) -> Iterator[tuple[str | None, Json]]:
    """(owner, mutated owner instance) for every interesting single change of `base`."""
    for spot in spots(base):
        current = get(base, spot.path)
        if not spot.path:  # the root itself
            for value in probes(spot.schema, current):
                yield None, value
            continue
        key = spot.path[-1]
        for value in probes(spot.schema, current):
            owner, parent = _owner_copy(base, spot)
            parent[key] = value
            yield spot.owner, owner
        owner, parent = _owner_copy(base, spot)
        del parent[key]
        yield spot.owner, owner
        if isinstance(current, dict):
            for name, sub in spot.schema.get("properties", {}).items():
                if name in current:
                    continue
                sub = DEFS[sub["$ref"].rsplit("/", 1)[1]] if "$ref" in sub else sub
                for value in probes(sub, None)[:8]:
                    owner, parent = _owner_copy(base, spot)
                    parent[key][name] = value
                    yield spot.owner, owner


def test_single_point_mutations_of_maximal_config() -> None:
    seen: set[tuple[str | None, str]] = set()
    verdicts = collections.Counter[bool]()
    for owner, instance in single_mutations(MAXIMAL):
        signature = (owner, json.dumps(instance, sort_keys=True))
        if signature in seen:
            continue
        seen.add(signature)
        verdicts[agree(instance, owner)] += 1
    # Sanity: the corpus is large and exercises both answers.
    assert verdicts[True] > 1000 and verdicts[False] > 5000, verdicts


# --- several mutations at once: hypothesis, and seeded batches ------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats(allow_nan=True)
    | st.text(max_size=8) | st.sampled_from(STRING_PROBES)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)

T = TypeVar("T")


class Chooser(Protocol):
    """Where mutate() gets its decisions: hypothesis draws (shrinkable) or a seeded Random (cheap)."""

    def pick(self, options: Sequence[T]) -> T: ...

    def json(self) -> Json: ...


class Drawn:
    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def pick(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(options))

    def json(self) -> Json:
        return self.draw(json_values)


class Seeded:
    """Python's random, for batches: hypothesis spends ~10 ms per drawn example, this ~10 us."""

    SCALARS: list[Json] = [None, True, False, 0, 1, -1, 2**32, 2**63, 2**64, -(2**63) - 1, 1.0, -0.5, 1e300,
                           math.nan, math.inf, "", "x", "\n", "é", *STRING_PROBES]
    KEYS = ["", "a", "type", "path", "names", "major", "limit", *sorted(MAXIMAL)]

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, options: Sequence[T]) -> T:
        return self.rng.choice(options)

    def json(self, depth: int = 3) -> Json:
        kind = self.rng.randrange(6) if depth else 0
        if kind <= 3:
            return self.rng.choice(self.SCALARS)
        size = self.rng.randrange(4)
        if kind == 4:
            return [self.json(depth - 1) for _ in range(size)]
        return {self.rng.choice(self.KEYS): self.json(depth - 1) for _ in range(size)}


def mutate(base: Json, choose: Chooser, root: Json = DOC) -> Json:
    """1-4 changes anywhere in a copy of `base`: schema-guided probes, deletions, additions, random JSON."""
    instance = copy.deepcopy(base)
    for _ in range(choose.pick([1, 1, 2, 3, 4])):
        spot = choose.pick(list(spots(instance, root)))
        how = choose.pick(["probe", "probe", "probe", "delete", "add", "any"])
        current = get(instance, spot.path)
        if how == "delete" and spot.path:
            del get(instance, spot.path[:-1])[spot.path[-1]]
        elif how == "add" and isinstance(current, dict) and spot.schema.get("properties"):
            name, sub = choose.pick(sorted(spot.schema["properties"].items()))
            sub = DEFS[sub["$ref"].rsplit("/", 1)[1]] if "$ref" in sub else sub
            current[name] = choose.pick(probes(sub, None)) if choose.pick([True, False]) else choose.json()
        else:
            value = choose.json() if how == "any" else choose.pick(probes(spot.schema, current))
            if spot.path:
                get(instance, spot.path[:-1])[spot.path[-1]] = value
            else:
                instance = value
    return instance


@st.composite
def mutated_configs(draw: st.DrawFn) -> Json:
    return mutate(draw(st.sampled_from([RUNC_DEFAULT, MAXIMAL])), Drawn(draw))


@settings(FAST_SETTINGS, max_examples=75)
@given(mutated_configs())
def test_mutated_whole_configs(config: Json) -> None:
    agree(config)


def _def_instances() -> dict[str, list[Json]]:
    """Every instance of each $defs entry found in the maximal and runc configs."""
    found: dict[str, list[Json]] = collections.defaultdict(list)
    for base in (MAXIMAL, RUNC_DEFAULT):
        for spot in spots(base):
            if spot.owner is not None and spot.owner_path == spot.path[:-1]:  # a child of a def instance
                value = get(base, spot.owner_path)
                if value not in found[spot.owner]:
                    found[spot.owner].append(value)
    return dict(found)


DEF_INSTANCES = _def_instances()


def test_def_instances_cover_the_deep_types() -> None:
    for name in ("resources", "seccomp", "syscall", "syscallArg", "mount", "hook", "device", "blockIO",
                 "weightDevice", "rdmaLimit", "memory", "cpu", "process", "user", "linux", "intelRdt"):
        assert DEF_INSTANCES.get(name), name


@st.composite
def mutated_def_instances(draw: st.DrawFn) -> tuple[str, Json]:
    name = draw(st.sampled_from(sorted(DEF_INSTANCES)))
    base = draw(st.sampled_from(DEF_INSTANCES[name]))
    return name, mutate(base, Drawn(draw), {"$ref": f"#/$defs/{name}"})


@settings(FAST_SETTINGS, max_examples=150)
@given(mutated_def_instances())
def test_mutated_def_instances(case: tuple[str, Json]) -> None:
    name, instance = case
    agree(instance, name)


@settings(FAST_SETTINGS, max_examples=20)
@given(st.randoms(use_true_random=True))
def test_seeded_mutation_batches(rng: random.Random) -> None:
    """Per example, 10 whole configs and 60 $defs instances, each changed 1-4 times (1400 in all)."""
    choose = Seeded(rng)
    for _ in range(10):
        agree(mutate(rng.choice([RUNC_DEFAULT, MAXIMAL]), choose))
    names = sorted(DEF_INSTANCES)
    for _ in range(60):
        name = rng.choice(names)
        agree(mutate(rng.choice(DEF_INSTANCES[name]), choose, {"$ref": f"#/$defs/{name}"}), name)


@settings(FAST_SETTINGS, max_examples=75)
@given(json_values | st.dictionaries(st.sampled_from(sorted(MAXIMAL)), json_values, max_size=6))
def test_random_json(value: Json) -> None:
    agree(value)


@settings(FAST_SETTINGS, max_examples=75)
@given(st.sampled_from(sorted(DEFS)), json_values)
def test_random_json_per_def(name: str, value: Json) -> None:
    agree(value, name)


# --- hypothesis: random schemas over every implemented keyword -------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
TYPES = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])
SMALL_TEXT = st.text(alphabet="ab\n", max_size=3)
BOUNDS = st.integers(-3, 3) | st.sampled_from([0.5, -1.5, 2.0])
LEAF_KEYWORDS: dict[str, st.SearchStrategy[Json]] = {
    "type": TYPES | st.lists(TYPES, min_size=1, max_size=3, unique=True),
    "minimum": BOUNDS, "maximum": BOUNDS, "exclusiveMinimum": BOUNDS, "exclusiveMaximum": BOUNDS,
    "minLength": st.integers(0, 3), "maxLength": st.integers(0, 3),
    "pattern": st.sampled_from(["^a", "b$", "^a*$", "\n", "a|b", ""]),
    "minItems": st.integers(0, 3), "maxItems": st.integers(0, 3),
    "enum": st.lists(SMALL_TEXT, min_size=1, max_size=3), "const": SMALL_TEXT,
    "required": st.lists(KEYS, max_size=2, unique=True),
    "dependentRequired": st.dictionaries(KEYS, st.lists(KEYS, max_size=2, unique=True), max_size=2),
    "x-message": st.just("ignored"),
}
SCHEMA_KEYWORDS = ["properties", "additionalProperties", "propertyNames", "items", "allOf", "anyOf", "oneOf",
                   "not", "if", "then", "else", "$ref"]


@st.composite
def subschemas(draw: st.DrawFn, depth: int, refs: tuple[str, ...]) -> Json:
    """A small schema: a few value keywords, and (depth permitting) a few that hold schemas.

    Drawn keyword by keyword: hypothesis' recursive/fixed_dictionaries over this many optional
    keys is far too slow to generate."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.booleans())
    node: dict[str, Json] = {}
    for keyword in draw(st.lists(st.sampled_from(sorted(LEAF_KEYWORDS)), max_size=3, unique=True)):
        node[keyword] = draw(LEAF_KEYWORDS[keyword])
    if depth > 0:
        inner = subschemas(depth - 1, refs)
        for keyword in draw(st.lists(st.sampled_from(SCHEMA_KEYWORDS), max_size=2, unique=True)):
            if keyword == "$ref":
                if refs:
                    node["$ref"] = "#/$defs/" + draw(st.sampled_from(refs))
            elif keyword == "properties":
                node[keyword] = draw(st.dictionaries(KEYS, inner, max_size=2))
            elif keyword in ("allOf", "anyOf", "oneOf"):
                node[keyword] = draw(st.lists(inner, min_size=1, max_size=3))
            else:
                node[keyword] = draw(inner)
    if "if" not in node:  # jsonschema ignores a lone then/else; fastcheck refuses it (tested above)
        node.pop("then", None)
        node.pop("else", None)
    return node


# d1 refers to nothing and d0 at most to d1 (no cycles: jsonschema would recurse forever too).
documents = st.tuples(subschemas(3, ("d0", "d1")), subschemas(2, ("d1",)), subschemas(2, ())).map(lambda s: {
    "$schema": fastcheck.DIALECT,
    **(s[0] if isinstance(s[0], dict) else {"allOf": [s[0]]}),
    "$defs": {"d0": s[1], "d1": s[2]},
})

# Every document meets all of these (cheap: no drawing), plus a few drawn ones.
INSTANCE_POOL: list[Json] = [
    None, True, False, 0, 1, -1, 2, 3, -4, 0.5, 1.0, 2.0, -1.5, -3.0, math.nan, math.inf, -math.inf,
    "", "a", "b", "ab", "ba", "aa", "a\n", "\n", "b\n", "aaa", "\na",
    [], [1], ["a"], [None, "b"], [[]], [{}], ["a", "a"], [1, 2.0, 3], [{"a": 1}, {"b": "a"}],
    {}, {"a": 1}, {"a": "a", "b": None}, {"c": []}, {"a": {}, "b": [], "c": "ab"}, {"ab": 1}, {"": 0},
    {"a": {"a": {"a": 1}}}, {"b": "b", "c": "c"}, {"a": [1], "c": 0.5}, {"a": "b", "b": "a", "c": None},
]
small_values = st.recursive(
    st.none() | st.booleans() | st.integers(-4, 4) | st.sampled_from([0.5, 1.0, -1.5, 2.0, math.nan]) | SMALL_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS | SMALL_TEXT, inner, max_size=3),
    max_leaves=6,
)


@settings(FAST_SETTINGS, max_examples=80)
@given(documents, st.lists(small_values, max_size=3))
def test_random_schemas(document: Json, drawn: list[Json]) -> None:
    fast = fastcheck.compile_schema(document)
    slow = STRICT(document, format_checker=None).is_valid
    for instance in INSTANCE_POOL + drawn:
        assert fast(instance) is slow(instance), (document, instance)


def test_recursive_schema() -> None:
    """$defs may refer to themselves; depth beyond the stack is 'not sure' (False), never a crash."""
    document = {
        "$schema": fastcheck.DIALECT,
        "$ref": "#/$defs/tree",
        "$defs": {"tree": {"type": "object", "required": ["v"], "properties": {
            "v": {"type": "integer", "minimum": 0}, "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}}},
    }
    fast = fastcheck.compile_schema(document)
    slow = STRICT(document, format_checker=None).is_valid
    tree: Json = {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}, {"v": 4, "kids": []}]}]}
    assert fast(tree) and slow(tree)
    bad = mutated(tree, lambda t: t["kids"][0]["kids"][1].update(v=-1))
    assert not fast(bad) and not slow(bad)
    for _ in range(sys.getrecursionlimit()):
        tree = {"v": 0, "kids": [tree]}
    assert fast(tree) is False
