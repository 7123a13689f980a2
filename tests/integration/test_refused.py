"""Configs the runtime must refuse: exit 1, a message on stderr, an error line in the JSON
log, and nothing left behind (no state dir, cgroup, mount or process)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from .conftest import Sandbox
from .helpers import Bundle, Runtime, cgroup_dirs, mounts_under


def _malformed(b: Bundle) -> None:
    b.config_path.write_text('{"ociVersion": "1.0.2", "process": {"args": ["true"]')


def _empty_args(b: Bundle) -> None:
    b.config["process"]["args"] = []
    b.write()


def _bad_namespace(b: Bundle) -> None:
    b.config["linux"]["namespaces"].append({"type": "bogus"})
    b.write()


def _missing_rootfs(b: Bundle) -> None:
    b.config["root"]["path"] = "no-such-rootfs"
    b.write()


def _hostname_without_uts(b: Bundle) -> None:
    b.config["hostname"] = "no-uts"
    b.config["linux"]["namespaces"] = [
        ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "uts"]
    b.write()


BREAKERS: dict[str, Callable[[Bundle], None]] = {
    "malformed-json": _malformed,
    "empty-args": _empty_args,
    "bad-namespace-type": _bad_namespace,
    "missing-rootfs": _missing_rootfs,
    # setting it would rename the host (sethostname in the host's UTS namespace)
    "hostname-without-uts-ns": _hostname_without_uts,
}


def _assert_refused(sandbox: Sandbox, rt: Runtime, b: Bundle, cid: str,
                    res_code: int, stderr: str) -> str:
    """The shared contract of a refused config; returns the last error log message."""
    assert res_code == 1, f"exit {res_code}, stderr {stderr!r}"
    assert stderr.strip(), "refused without a message on stderr"
    entries = rt.log_entries()
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors, f"no error line in the JSON log: {entries}"
    last = errors[-1]
    assert {"level", "msg", "time"} <= set(last)
    assert last["msg"].strip()
    # the message the user saw is the one logged
    assert last["msg"].strip() in stderr or stderr.strip().splitlines()[-1] in last["msg"], (
        last["msg"], stderr)
    # nothing left behind
    assert rt.run_cmd("state", cid).returncode == 1
    assert not (rt.root / cid).exists()
    assert [p.name for p in rt.root.iterdir() if p.is_dir()] == []
    assert cgroup_dirs(b.cgroups_path) == []
    assert mounts_under(b.path) == []
    leaks = sandbox.leaks(settle=1.0)
    assert not leaks, leaks.report()
    return str(last["msg"])


@pytest.mark.parametrize("breaker", list(BREAKERS), ids=list(BREAKERS))
@pytest.mark.parametrize("command", ["run", "create"])
def test_refused_config(sandbox: Sandbox, rt: Runtime, breaker: str, command: str) -> None:
    """Each broken config is refused by `run` and by `create` without side effects."""
    b = sandbox.bundle(["echo", "should-not-run"])
    BREAKERS[breaker](b)
    cid = sandbox.new_id()
    rt.reset_log()
    host_name = socket.gethostname()
    try:
        if command == "run":
            res = rt.run(b, cid)
            assert "should-not-run" not in res.stdout
        else:
            res = rt.create(b, cid, out_dir=sandbox.tmp / "out", check=False)
    finally:
        renamed = socket.gethostname()
        if renamed != host_name:  # undo the damage before failing
            socket.sethostname(host_name)
    assert renamed == host_name, f"the runtime renamed the HOST to {renamed!r}"
    _assert_refused(sandbox, rt, b, cid, res.returncode, res.stderr)


def test_missing_config_json(sandbox: Sandbox, rt: Runtime) -> None:
    """A bundle without config.json is refused cleanly."""
    b = sandbox.bundle(["true"])
    b.config_path.unlink()
    cid = sandbox.new_id()
    rt.reset_log()
    res = rt.run(b, cid)
    _assert_refused(sandbox, rt, b, cid, res.returncode, res.stderr)


def test_missing_executable(sandbox: Sandbox, rt: Runtime) -> None:
    """args[0] not in the rootfs: refused (at create time, as runc does) and cleaned up."""
    b = sandbox.bundle(["/no/such/binary"])
    cid = sandbox.new_id()
    rt.reset_log()
    res = rt.create(b, cid, out_dir=sandbox.tmp / "out", check=False)
    _assert_refused(sandbox, rt, b, cid, res.returncode, res.stderr)


@pytest.mark.pyrunc_only
def test_pyrunc_empty_args_message(sandbox: Sandbox, rt: Runtime) -> None:
    """pyrunc names the JSON path and the problem: `config.json: process.args: [] is too
    short`, on stderr and as the last error log line."""
    b = sandbox.bundle(["true"])
    _empty_args(b)
    rt.reset_log()
    res = rt.run(b, sandbox.new_id())
    want = "config.json: process.args: [] is too short"
    assert res.returncode == 1
    assert want in res.stderr
    assert want in [e for e in rt.log_entries() if e["level"] == "error"][-1]["msg"]


@pytest.mark.pyrunc_only
@pytest.mark.parametrize("breaker,path_fragment", [
    ("malformed-json", "config.json: "),
    ("bad-namespace-type", "config.json: linux.namespaces"),
])
def test_pyrunc_config_error_names_config(sandbox: Sandbox, rt: Runtime, breaker: str,
                                          path_fragment: str) -> None:
    """pyrunc's config errors start with `config.json: <json path>`."""
    b = sandbox.bundle(["true"])
    BREAKERS[breaker](b)
    rt.reset_log()
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 1
    assert path_fragment in res.stderr, res.stderr
    last = [e for e in rt.log_entries() if e["level"] == "error"][-1]
    assert path_fragment in last["msg"]


def test_log_lines_are_json(sandbox: Sandbox, rt: Runtime) -> None:
    """--log-format json: every log line is one JSON object with level, msg and time (an
    RFC3339 timestamp); a failing command's last line is its error."""
    from .helpers import RFC3339_RE

    rt.reset_log()
    rt.run_cmd("state", "no-such-container")
    rt.run_cmd("kill", "no-such-container", "KILL")
    entries = rt.log_entries()
    assert len(entries) >= 2
    for e in entries:
        assert isinstance(e, dict)
        assert {"level", "msg", "time"} <= set(e), e
        assert RFC3339_RE.match(e["time"]), e
        assert e["level"] in ("debug", "info", "warning", "error", "fatal", "panic")
    assert entries[-1]["level"] == "error"
    assert "not exist" in entries[-1]["msg"]
    raw = rt.log.read_text()
    assert raw.endswith("\n")
    for line in raw.splitlines():
        json.loads(line)  # one object per line, no pretty-printing


def test_an_early_init_failure_is_always_reported(sandbox: Sandbox, rt: Runtime) -> None:
    """The init fails on the first mount and exits while the runtime still tells it things
    (on a v1 host, that its unified cgroup is joined): its error must reach the user every
    time. It was lost in about half the creates, which said 'Broken pipe' (the runtime's
    send) or 'no error reported' (ECONNRESET read before the queued error message)."""
    b = sandbox.bundle(["true"], extra_mounts=[
        {"destination": "/data", "type": "bind", "source": str(sandbox.tmp / "no-such-dir"),
         "options": ["bind"]}])
    b.config["mounts"].insert(1, b.config["mounts"].pop())  # right after /proc
    # No cgroup namespace (docker and podman on a v1 host): the cgroup join is deferred.
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"]
                                       if ns["type"] != "cgroup"]
    b.write()
    said = []
    for _ in range(32):
        cid = sandbox.new_id()
        res = rt.create(b, cid, out_dir=sandbox.tmp / "out", check=False)
        said.append((res.returncode, res.stderr.strip()))
    want = (1, f"mount source {sandbox.tmp / 'no-such-dir'} for /data: No such file or directory")
    assert [s for s in said if s != want] == [], said
    assert not rt.list_ids()
