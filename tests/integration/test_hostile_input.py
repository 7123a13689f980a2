"""Bad input: every case of tests/corpus/ is refused the same clean way.

The contract (see tests/corpus/README.md): exit status 1, exactly one line on stderr that
names the problem (the JSON path when there is one), the same line as the `msg` of the last
`{"level": "error"}` line of the JSON --log, and nothing left behind -- no state directory,
cgroup, mount or process. A container made beforehand (`precreate`) is left exactly as it
was.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Sandbox
from .helpers import Bundle, Runtime, cgroup_dirs, mounts_under, new_id, reap_children

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _cases() -> list[Any]:
    out = []
    for sub in ("bundles", "flags"):
        for path in sorted((CORPUS / sub).glob("*.json")):
            out.append(pytest.param(path, id=f"{sub}/{path.stem}"))
    return out


CASES = _cases()


def test_corpus_is_big_enough() -> None:
    """The corpus covers every class the issue lists (a guard against an emptied dir)."""
    names = {p.values[0].stem for p in CASES}
    assert len(names) >= 80, len(names)
    for needle in ("json-", "ociversion-", "args-", "cwd-", "namespace-", "rlimit-", "mount-",
                   "root-", "seccomp-", "sysctl-", "idmap-", "id-", "kill-", "console-",
                   "pid-file-"):
        assert any(n.startswith(needle) for n in names), needle


# --------------------------------------------------------------------------------------
# building a case


def _subst(value: Any, ctx: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, repl in ctx.items():
            value = value.replace("{" + key + "}", repl)
        return value
    if isinstance(value, list):
        return [_subst(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _subst(v, ctx) for k, v in value.items()}
    return value


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _edit(config: dict[str, Any], edit: list[Any]) -> None:
    op = edit[0]
    if op == "remove_namespace":
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != edit[1]]
        return
    parts = edit[1].split(".")
    parent = _walk(config, parts[:-1])
    key: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
    if op == "set":
        parent[key] = edit[2]
    elif op == "delete":
        del parent[key]
    elif op == "append":
        parent.setdefault(key, []).append(edit[2])
    elif op == "fill":  # ["fill", path, item, N]: a list of N copies of item
        parent[key] = [edit[2]] * edit[3]
    elif op == "long":  # ["long", path, text, N]: the string text repeated N times
        parent[key] = edit[2] * edit[3]
    else:  # pragma: no cover - a broken corpus file
        raise AssertionError(f"unknown edit {op!r}")


def _write_config(b: Bundle, case: dict[str, Any], ctx: dict[str, str]) -> None:
    for edit in case.get("edits", []):
        _edit(b.config, _subst(edit, ctx))
    b.write()
    raw = case.get("config")
    if raw is None:
        return
    if raw.get("absent"):
        b.config_path.unlink()
    elif "text" in raw:
        b.config_path.write_text(raw["text"])
    elif "b64" in raw:
        b.config_path.write_bytes(base64.b64decode(raw["b64"]))
    elif "append_text" in raw:
        b.config_path.write_text(json.dumps(b.config) + raw["append_text"])
    elif "symlink" in raw:
        b.config_path.unlink()
        b.config_path.symlink_to(raw["symlink"])
    elif raw.get("fifo"):
        b.config_path.unlink()
        os.mkfifo(b.config_path)
    elif "pad_mib" in raw:
        text = json.dumps(b.config)
        b.config_path.write_text(text + " " * ((raw["pad_mib"] << 20) - len(text)))
    elif "nested_depth" in raw:
        n = raw["nested_depth"]
        b.config_path.write_text("[" * n + "]" * n)
    elif "huge_int_at" in raw:
        _edit(b.config, ["set", raw["huge_int_at"], "__HUGE__"])
        b.config_path.write_text(json.dumps(b.config).replace('"__HUGE__"', "1" * raw["digits"]))
    else:  # pragma: no cover
        raise AssertionError(f"unknown config form {raw}")


class _ClosingListener:
    """A console socket that accepts every connection and closes it at once."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.accepted = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def _precreate(sandbox: Sandbox, rt: Runtime, cid: str, how: str) -> dict[str, Any]:
    pre = sandbox.bundle(["sleep", "60"], name="precreated")
    rt.create(pre, cid, out_dir=sandbox.tmp / "out")
    if how == "running":
        rt.run_cmd("start", cid, check=True)
    return rt.wait_status(cid, how)


def _run_argv(rt: Runtime, argv: list[str], out_dir: Path) -> tuple[int, str]:
    """Run one command with stdio in files (a container that wrongly got created must not
    hold a pipe open); returns (exit status, stderr)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "case.out", "w") as out, open(out_dir / "case.err", "w") as err:
        res = rt.run_cmd(*argv, stdout=out, stderr=err)
    return res.returncode, (out_dir / "case.err").read_text(errors="replace")


@pytest.fixture
def listeners() -> Iterator[list[_ClosingListener]]:
    made: list[_ClosingListener] = []
    yield made
    for lst in made:
        lst.close()


# --------------------------------------------------------------------------------------
# the contract


@pytest.mark.parametrize("case_path", CASES)
def test_bad_input_is_refused_cleanly(sandbox: Sandbox, rt: Runtime, case_path: Path,
                                      listeners: list[_ClosingListener]) -> None:
    case = json.loads(case_path.read_text())
    assert case.get("why") and case.get("expect"), f"{case_path}: needs why and expect"
    # Not registered with the sandbox (whose teardown deletes every id it knows): a case that
    # wrongly leaves a container behind is still found there, through the state dir.
    cid = case["id"] if "id" in case else new_id()
    b = sandbox.bundle(["sleep", "60"])
    ctx = {"bundle": str(b.path), "tmp": str(sandbox.tmp), "id": cid}

    before: dict[str, Any] | None = None
    if case.get("precreate"):
        sandbox.ids.add(cid)
        before = _precreate(sandbox, rt, cid, case["precreate"])
    _write_config(b, case, ctx)
    for name, content in case.get("files", {}).items():
        text = content if isinstance(content, str) else json.dumps(content)
        (sandbox.tmp / name).write_text(text)
    setup = case.get("setup")
    if setup == "console-regular-file":
        (sandbox.tmp / "console.sock").write_text("not a socket\n")
    elif setup == "console-closes-early":
        listeners.append(_ClosingListener(str(sandbox.tmp / "console.sock")))
    elif setup == "root-regular-file":
        (sandbox.tmp / "rootfile").write_text("not a directory\n")
    else:
        assert setup is None, f"unknown setup {setup!r}"

    argv = _subst(case.get("argv", ["create", "--bundle", "{bundle}", "{id}"]), ctx)
    rt.reset_log()
    (sandbox.tmp / "out").mkdir(exist_ok=True)
    tmp_entries = set(os.listdir(sandbox.tmp))
    root_parent_entries = set(os.listdir(rt.root.parent))
    code, stderr = _run_argv(rt, argv, sandbox.tmp / "out")

    # exit 1 (or runc's own status: 255 for a failed exec, 3 for no help topic), one line,
    # the logged line
    assert code == case.get("exit", 1), f"exit {code}, stderr {stderr!r} ({case['why']})"
    lines = stderr.splitlines()
    assert len(lines) == 1 and stderr.endswith("\n") and lines[0].strip(), \
        f"stderr is not exactly one line: {stderr!r}"
    line = lines[0]
    for fragment in _subst(case["expect"], ctx):
        assert fragment in line, f"{fragment!r} not in {line!r} ({case['why']})"
    for fragment in case.get("forbid", []):
        assert fragment not in line, f"{fragment!r} in {line!r} ({case['why']})"
    errors = [e for e in rt.log_entries() if e.get("level") == "error"]
    assert errors, "no error line in the JSON log"
    assert errors[-1]["msg"] == line, (errors[-1], line)

    # nothing left behind
    expected_dirs = {cid} if before is not None else set()
    assert set(os.listdir(rt.root)) == expected_dirs
    assert set(os.listdir(sandbox.tmp)) - tmp_entries - {"runtime.log"} == set()
    assert set(os.listdir(rt.root.parent)) - root_parent_entries - {"runtime.log"} == set()
    assert cgroup_dirs(b.cgroups_path) == []
    assert mounts_under(sandbox.tmp) == []
    leaks = sandbox.leaks(settle=1.0)
    if before is None:
        assert not leaks, leaks.report()
    else:
        assert leaks.state_dirs == [cid] and not leaks.mounts, leaks.report()
        assert [int(p.split()[0]) for p in leaks.processes] == [before["pid"]], leaks.report()
        after = rt.state(cid)
        assert (after["status"], after["pid"]) == (before["status"], before["pid"])
        rt.run_cmd("delete", "--force", cid, check=True)


def _zombies_in_pid_namespaces_of_ours() -> list[int]:
    """Zombie children of this process that live in a nested pid namespace (a container's)."""
    me = str(os.getpid())
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if (fields.get("State", "").strip().startswith("Z") and fields.get("PPid", "").strip() == me
                and len(fields.get("NSpid", "").split()) > 1):
            out.append(int(entry))
    return out


@pytest.mark.parametrize("argv", [
    pytest.param(["exec", "{id}", "/no/such/binary"], id="missing-binary"),
    pytest.param(["exec", "--cwd", "/no/such/dir", "{id}", "true"], id="missing-cwd"),
])
def test_failed_exec_leaves_no_zombie(sandbox: Sandbox, rt: Runtime, argv: list[str]) -> None:
    """A refused foreground `exec` must reap the process it forked into the container. Left
    as a zombie (reparented to the caller), it is a process of the container's pid
    namespace that nobody waits for: the namespace cannot finish dying, and `delete
    --force` then waits on the init and fails to remove the cgroup unless the caller
    happens to reap it."""
    b = sandbox.bundle(["sleep", "60"])
    cid = sandbox.new_id()
    rt.create(b, cid, out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    before = _zombies_in_pid_namespaces_of_ours()
    res = rt.run_cmd(*_subst(argv, {"id": cid}))
    assert res.returncode != 0 and len(res.stderr.splitlines()) == 1, res
    time.sleep(0.3)
    left = sorted(set(_zombies_in_pid_namespaces_of_ours()) - set(before))
    reap_children()  # whatever the verdict, let teardown's delete --force work
    assert not left, f"the failed exec left zombie(s) {left} of the container's pid namespace"


def test_args_env_just_under_the_limit_refused_by_create(sandbox: Sandbox, rt: Runtime) -> None:
    """args+env a few bytes under execve's limit (8 MiB RLIMIT_STACK: 2 MiB) passed the check
    and create, and then the exec through pyrunc-init, which adds its own words, failed
    ("cannot exec pyrunc-init: Argument list too long", exit 127). create refuses it now."""
    limit = 2 << 20
    env = ["PATH=/bin", "HOME=/"]

    def counted(env: list[str]) -> int:  # what the check counts: strings, pointers, filename
        return sum(len(e) + 1 for e in ["true", *env]) + 8 * (1 + len(env)) + 5

    while counted(env) + 120_010 < limit:
        env.append(f"F{len(env)}=" + "x" * 120_000)
    env.append("R=" + "x" * (limit - 1 - counted(env) - 12))
    stack = [{"type": "RLIMIT_STACK", "soft": 8 << 20, "hard": 8 << 20}]
    b = sandbox.bundle(["true"], process={"env": env, "rlimits": stack})
    res = rt.run_cmd("create", "--bundle", str(b.path), sandbox.new_id())
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "more than execve takes (2097152)" in lines[0], res.stderr
    assert rt.list_ids() == []


def test_huge_error_from_the_init_reaches_the_user(sandbox: Sandbox, rt: Runtime) -> None:
    """A 300 kB mount destination: the init's error quoting it was a message the sync
    socket would not take (EMSGSIZE), so create said only "container init exited before it
    was ready (no error reported)". Now the error, shortened in the middle."""
    b = sandbox.bundle(["true"], extra_mounts=[{"destination": "/" + "x" * 300_000,
                                                "type": "tmpfs", "source": "tmpfs"}])
    res = rt.run_cmd("create", "--bundle", str(b.path), sandbox.new_id())
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "characters left out" in lines[0], res.stderr[:300]
    assert "File name too long" in lines[0] and len(lines[0]) < 5000, lines[0][-300:]
    assert rt.list_ids() == [] and not sandbox.leaks()
