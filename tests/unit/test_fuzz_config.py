"""Fuzzing config loading as a library (no root, no containers).

Whatever bytes a bundle's config.json holds, `pyrunc.spec.load.load_bundle` (read, JSON
parse, schema check, conversion) returns a Config or raises a PyruncError (normally a
SpecError) with a one-line message -- never another exception, which the CLI could only
report as "internal error". The same for `validate_config` + `convert` on parsed values
and for `process_from_json` (exec --process).
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyrunc.errors import PyruncError
from pyrunc.spec.config import Config, Process, convert, process_from_json
from pyrunc.spec.load import load_bundle
from pyrunc.spec.schema import validate_config

Json = Any

BASE: dict[str, Json] = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0, "additionalGids": [1, 2]},
        "args": ["sh", "-c", "true"],
        "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                         "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
        "consoleSize": {"height": 24, "width": 80},
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "fuzz",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "rprivate"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "rro"]},
    ],
    "hooks": {"prestart": [{"path": "/bin/true", "args": ["true"], "env": ["A=b"], "timeout": 5}]},
    "annotations": {"org.example.key": "value"},
    "linux": {
        "cgroupsPath": "/fuzz/ctr",
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                       {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}],
        "resources": {"devices": [{"allow": False, "access": "rwm"},
                                  {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
                      "memory": {"limit": 1 << 30}, "cpu": {"shares": 512, "cpus": "0-1"},
                      "pids": {"limit": 100}, "unified": {"memory.high": "max"}},
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "rootfsPropagation": "rslave",
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
    },
}


def test_base_config_is_valid() -> None:
    validate_config(copy.deepcopy(BASE))
    cfg = convert(copy.deepcopy(BASE), "/bundle")
    assert isinstance(cfg, Config)


# --------------------------------------------------------------------------------------
# strategies

scalars = (
    st.none() | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["", "/", ".", "..", "../x", "/proc/self/ns/net", "RLIMIT_NOFILE", "RLIMIT_X",
                       "bind", "rbind", "ro", "idmap", "tmpcopyup", "rslave", "c", "p", "SCMP_ACT_ALLOW",
                       "1.0.2", "rootfs", "a\x00b", "\udcff", "pid", "user"])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10) | st.sampled_from(sorted(BASE)), children, max_size=4),
    max_leaves=12,
)


def _paths(doc: Json, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside doc (dict keys and list indices)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, prefix + (i,)))
    return out


@st.composite
def near_valid(draw: st.DrawFn) -> Json:
    """BASE with 1-4 mutations: a value replaced, a key or item removed, a key added."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[key] = draw(json_values)
        elif action == "remove":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent.insert(key, draw(json_values))
    return doc


@st.composite
def mangled_bytes(draw: st.DrawFn) -> bytes:
    """The valid config's bytes with a few insertions, deletions and replacements."""
    data = bytearray(json.dumps(BASE).encode())
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=4)
                     | st.sampled_from([b"{", b"}", b"[", b"]", b",", b'"', b":", b"\\", b"\xff",
                                        b"null", b"1e999", b"-0", b"NaN", b"\\ud800"]))
        if action == "insert":
            data[pos:pos] = chunk
        elif action == "delete":
            del data[pos:pos + len(chunk)]
        else:
            data[pos:pos + len(chunk)] = chunk
    return bytes(data)


# --------------------------------------------------------------------------------------
# the property


def _check_config(cfg: Config, bundle: str) -> None:
    """What a Config promises the runtime, whatever input made it."""
    assert isinstance(cfg, Config)
    assert posixpath.isabs(cfg.root.path)
    assert cfg.bundle == bundle
    if cfg.process is not None:
        assert isinstance(cfg.process, Process)
        assert cfg.process.args and all(isinstance(a, str) for a in cfg.process.args)
        assert posixpath.isabs(cfg.process.cwd)
        types = [rl.type for rl in cfg.process.rlimits]
        assert len(types) == len(set(types))
        for rl in cfg.process.rlimits:
            assert 0 <= rl.soft <= rl.hard
    ns_types = [ns.type for ns in cfg.linux.namespaces]
    assert len(ns_types) == len(set(ns_types))
    for ns in cfg.linux.namespaces:
        assert ns.path is None or posixpath.isabs(ns.path)
    for m in cfg.mounts:
        assert posixpath.isabs(m.destination)
        if m.is_bind:
            assert m.source is not None and posixpath.isabs(m.source)
    for dev in cfg.linux.devices:
        assert posixpath.isabs(dev.path)


def _load_value(value: Json) -> None:
    """validate + convert a parsed value: a Config, or a PyruncError with one line."""
    try:
        validate_config(value)
        cfg = convert(value, "/bundle")
    except PyruncError as exc:
        assert exc.msg and "\n" not in exc.msg, repr(exc.msg)
        return
    _check_config(cfg, "/bundle")


def _load_bytes(data: bytes) -> None:
    """The whole of load_bundle on a real directory holding config.json = data."""
    with tempfile.TemporaryDirectory() as bundle:
        with open(os.path.join(bundle, "config.json"), "wb") as f:
            f.write(data)
        try:
            cfg = load_bundle(bundle)
        except PyruncError as exc:
            assert exc.msg and "\n" not in exc.msg, repr(exc.msg)
            assert exc.msg.startswith("config.json"), exc.msg
            return
        _check_config(cfg, bundle)


SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(json_values)
def test_any_json_value(value: Json) -> None:
    _load_value(value)


@SETTINGS
@given(near_valid())
def test_mutated_config(value: Json) -> None:
    _load_value(value)


@SETTINGS
@given(mangled_bytes())
@example(b"")
@example(b"\xef\xbb\xbf" + json.dumps(BASE).encode())
@example(json.dumps(BASE).encode("utf-16"))
def test_mangled_bytes(data: bytes) -> None:
    _load_bytes(data)


@SETTINGS
@given(st.binary(max_size=64))
def test_random_bytes(data: bytes) -> None:
    _load_bytes(data)


@SETTINGS
@given(near_valid())
def test_mutated_config_through_load_bundle(value: Json) -> None:
    """The same mutations, serialized and read back from disk (json.dumps may emit NaN,
    Infinity or lone surrogates, which json.loads accepts again)."""
    _load_bytes(json.dumps(value).encode("utf-8", "surrogatepass"))


@SETTINGS
@given(json_values | near_valid().map(lambda c: c.get("process", {})))
def test_process_json(value: Json) -> None:
    try:
        proc = process_from_json(value)
    except PyruncError as exc:
        assert exc.msg and "\n" not in exc.msg, repr(exc.msg)
        return
    assert isinstance(proc, Process)
    assert proc.args and posixpath.isabs(proc.cwd)


@pytest.mark.parametrize("data", [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000"),
    pytest.param(b'{"ociVersion": "1.0.2", "root": {"path": "r"}, "x": ' + b"1" * 5000 + b"}",
                 id="int-5000-digits"),
    pytest.param(b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, id="nested-objects"),
])
def test_pathological_json_is_a_spec_error(data: bytes) -> None:
    """Named regressions of what the fuzzer found: json.loads raises RecursionError and plain
    ValueError (int digit limit) besides JSONDecodeError; both must become config errors."""
    _load_bytes(data)
