"""A schema pattern's `$` is ECMA-262's: the end of the string, never "before a final newline".

JSON Schema patterns (ours, the spec's) are ECMA regexes; `re.search` alone would let
"2MB\\n" match "^[1-9][0-9]*[KMG]B$". Each value below must be refused by both deciders:
the fast check (plain tests and its `re` fallback) and the jsonschema validator schema.py
runs to word the error.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from unittest import mock

import pytest
import test_patterns
import test_schema
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrunc.errors import SpecError
from pyrunc.spec import fastcheck, schema
from pyrunc.spec.patterns import PLAIN, for_re

Json = Any
FEATURES = {"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0", "linux": {"capabilities": ["CAP_KILL"]}}


def _config(**linux: Json) -> dict[str, Json]:
    config = copy.deepcopy(test_schema.RUNC_DEFAULT)
    config["linux"].update(linux)
    return config


def _set(config: dict[str, Json], path: tuple[str | int, ...], value: Json) -> dict[str, Json]:
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return config


# (schema, document, path of the string, a good value): value + "\n" must be refused.
CASES = [
    ("hugepage pageSize", schema.CONFIG_SCHEMA,
     _config(resources={"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}),
     ("linux", "resources", "hugepageLimits", 0, "pageSize"), "2MB"),
    ("ociVersion", schema.CONFIG_SCHEMA, _config(), ("ociVersion",), "1.0.0"),
    ("memoryPolicy nodes", schema.CONFIG_SCHEMA, _config(memoryPolicy={"mode": "MPOL_BIND", "nodes": "0"}),
     ("linux", "memoryPolicy", "nodes"), "0"),
    ("execCPUAffinity", schema.CONFIG_SCHEMA,
     _set(_config(), ("process", "execCPUAffinity"), {"initial": "0"}),
     ("process", "execCPUAffinity", "initial"), "0"),
    ("rlimit type", schema.CONFIG_SCHEMA, _config(), ("process", "rlimits", 0, "type"), "RLIMIT_NOFILE"),
    ("device access", schema.CONFIG_SCHEMA,
     _config(resources={"devices": [{"allow": False, "access": "rwm"}]}),
     ("linux", "resources", "devices", 0, "access"), "rwm"),
    ("netDevices name", schema.CONFIG_SCHEMA, _config(netDevices={"eth0": {"name": "eth1"}}),
     ("linux", "netDevices", "eth0", "name"), "eth1"),
    ("features capability", schema.FEATURES_SCHEMA, FEATURES, ("linux", "capabilities", 0), "CAP_KILL"),
]


@pytest.mark.parametrize(("name", "doc", "path", "good"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_final_newline_is_refused(name: str, doc: dict[str, Json], path: tuple[str | int, ...], good: str) -> None:
    good_doc = _set(copy.deepcopy(doc), path, good)
    bad_doc = _set(copy.deepcopy(doc), path, good + "\n")
    check = fastcheck.checker(name)
    validator = schema.validator_for(json.loads(open(schema.schema_path(name)).read()))
    assert check(good_doc) and validator.is_valid(good_doc)
    assert not check(bad_doc), "fast check"
    assert not validator.is_valid(bad_doc), "jsonschema"
    with pytest.raises(SpecError, match=r"\\n"):
        schema._check(name, bad_doc, "doc")


def _dollar_patterns() -> list[str]:
    return sorted(p for p in test_patterns.schema_patterns() if p.endswith("$"))


def test_the_schemas_have_such_patterns() -> None:
    assert len(_dollar_patterns()) >= 8


@pytest.mark.parametrize("pattern", _dollar_patterns())
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_pattern_refuses_a_final_newline(pattern: str, data: st.DataObject) -> None:
    """Through the plain test, fastcheck's `re` fallback and jsonschema, for every `...$` pattern."""
    good = data.draw(st.from_regex(for_re(pattern), fullmatch=True).filter(lambda s: "\n" not in s))
    node = {"type": "string", "pattern": pattern}
    plain = fastcheck.compile_schema(node)
    with mock.patch.object(fastcheck, "PLAIN", {}):  # the same pattern through fastcheck's `re`
        with_re = fastcheck.compile_schema(node)
    validator = schema.validator_for(node)
    for check in (plain, with_re, validator.is_valid):
        assert check(good), (check, good)
        assert not check(good + "\n"), (check, good)


def test_re_fallback_is_used_for_unlisted_patterns() -> None:
    assert "^x$" not in PLAIN
    check = fastcheck.compile_schema({"type": "string", "pattern": "^x$"})
    assert check("x") and not check("x\n")


@pytest.mark.parametrize(("pattern", "expected"), [
    ("^a$", "^a\\Z"),
    ("^[$]$", "^[$]\\Z"),
    ("^\\$$", "^\\$\\Z"),
    ("^[\\]$]x$", "^[\\]$]x\\Z"),
    ("a$|b$", "a\\Z|b\\Z"),
    ("^/", "^/"),
])
def test_for_re(pattern: str, expected: str) -> None:
    assert for_re(pattern) == expected
