"""pyrunc.jsonio must write exactly what json.dumps writes, and read what json.loads reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrunc import jsonio

scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@given(documents)
def test_dumps_is_json_dumps(doc: Any) -> None:
    assert jsonio.dumps(doc) == json.dumps(doc)
    assert jsonio.dumps(doc, indent=2) == json.dumps(doc, indent=2)


@given(documents)
def test_loads_reads_what_json_writes(doc: Any) -> None:
    for text in (json.dumps(doc), json.dumps(doc, indent=2), " \n" + json.dumps(doc) + "\n"):
        assert jsonio.loads(text) == json.loads(text)
        assert jsonio.loads(text.encode()) == json.loads(text)


def test_state_shaped_document() -> None:
    doc = {"ociVersion": "1.2.0", "id": "c1", "pid": 42, "status": "running",
           "bundle": "/b/ü", "annotations": {"k": "v\n\"q\""}, "owner": "", "x": (1, None)}
    assert jsonio.dumps(doc, indent=2) == json.dumps(doc, indent=2)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "1 2", "nul", '{"a" 1}', "[1] x"])
def test_malformed_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(text)


def test_unserializable_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        jsonio.dumps({"a": object()})


def test_malformed_is_a_value_error_without_json_imported() -> None:
    """_json words its errors with json.decoder, which it only finds if something imported
    it; the create path does not (test_hot_imports), and must still get a ValueError."""
    import subprocess
    import sys
    probe = ("import sys\nfrom pyrunc import jsonio\nassert 'json' not in sys.modules\n"
             "for text in ('{', '[1,]', '{\"a\" 1}', '[1] x', '{\"a\": tru}'):\n"
             "    try:\n        jsonio.loads(text)\n    except ValueError:\n        pass\n"
             "    else:\n        raise SystemExit(f'accepted {text!r}')\nprint('ok')")
    res = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                         timeout=60)
    assert res.stdout.strip() == "ok", res.stderr
