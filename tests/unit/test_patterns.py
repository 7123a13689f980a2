"""pyrunc.spec.patterns must answer exactly what `re.search(for_re(...))` answers, for every string.

fastcheck trusts these functions instead of `re` for the schemas' patterns, so a string one
of them accepts and `re` rejects would let a bad config through. Each is compared with `re`
on strings the pattern matches (hypothesis builds them from the regex itself, with and
without surrounding text), on random strings over the characters the pattern cares about
(newlines included: `$` is the end, not before a final one), and on a hand-written corpus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrunc.spec import fastcheck
from pyrunc.spec.patterns import PLAIN, for_re
from pyrunc.spec.schema import CONFIG_SCHEMA, FEATURES_SCHEMA, STATE_SCHEMA, schema_path

ALPHABET = "0123456789abcxyzABKMGTPEBCDRLIMTwrm_-+.,/:\n\x00é٣ \t"
CORPUS = ["eth0", "eth0\n", "a" * 15, "a" * 16, "a" * 15 + "\n", "e:0", "e/0", "e 0", "e\t0", "e\x1c0",
          "c%d", "é" * 15, "", "\n", "\n\n", "/", "x/", "MB:", "mb:", "CAP_", "CAP_A", "CAP_A\n", "CAP_A\n\n",
          "CAP_a", "CAP_A_B", "RLIMIT_", "RLIMIT_NOFILE", "RLIMIT_NO_FILE", "rwm", "rwmx", "rw\n",
          "2MB", "02MB", "2MBB", "2KB\n", "B", "MB", "1٣MB", "0", "0-3", "0-3,5", "0,", ",", "-1",
          "1-", "٣", "1.0.0", "1.0.0\n", "01.0.0", "1.0", "1.0.0-", "1.0.0-rc.1", "1.0.0-01",
          "1.0.0-0a", "1.0.0--", "1.0.0-a..b", "1.0.0+", "1.0.0+b.1", "1.0.0+b..1", "1.0.0+0.01",
          "1.0.0-rc+b", "1.0.0-rc+b+c", "1.2.3-a-b.c-d+e-f.g", "1.0.٣", "1.0.0 ", "1.0.0-é"]


def schema_patterns() -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in (CONFIG_SCHEMA, STATE_SCHEMA, FEATURES_SCHEMA):
        walk(json.loads(Path(schema_path(name)).read_text()))
    return found


def test_every_schema_pattern_has_a_plain_test() -> None:
    """Else a create reaching that pattern would import `re` again (not fail: fastcheck
    falls back to it)."""
    assert sorted(schema_patterns() - set(PLAIN)) == []


@pytest.mark.parametrize("pattern", sorted(PLAIN))
def test_corpus(pattern: str) -> None:
    for s in CORPUS:
        assert PLAIN[pattern](s) is (re.search(for_re(pattern), s) is not None), (pattern, s)


@pytest.mark.parametrize("pattern", sorted(PLAIN))
@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_agrees_with_re(pattern: str, data: st.DataObject) -> None:
    s = data.draw(st.one_of(
        st.from_regex(pattern, fullmatch=True),
        st.from_regex(pattern),
        st.text(alphabet=ALPHABET, max_size=24),
        st.from_regex(pattern, fullmatch=True).map(lambda m: m + "\n"),
        st.tuples(st.from_regex(pattern, fullmatch=True), st.integers(0, 30),
                  st.sampled_from(ALPHABET)).map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1]:]),
    ))
    assert PLAIN[pattern](s) is (re.search(for_re(pattern), s) is not None), (pattern, s)


def test_fastcheck_uses_them() -> None:
    """A pattern with a plain test never reaches `re` (the create path must not import it)."""
    check = fastcheck.compile_schema({"type": "string", "pattern": "^CAP_[A-Z_]+$"})
    assert check("CAP_KILL") and not check("CAP_KILL\n") and not check("CAP_kill")
