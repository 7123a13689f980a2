"""What the container's process sees of itself: pid 1, hostname/domainname, env, cwd,
user/groups, umask, capabilities, rlimits, no_new_privs -- each read from inside and
compared with config.json."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from .conftest import Sandbox
from .helpers import PATH_ENV, SANDBOX_ENV, Bundle


def _status_fields(text: str) -> dict[str, str]:
    """/proc/self/status as {field: value}."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def _cap_mask(names: list[str]) -> int:
    numbers = {
        "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SETGID": 6,
        "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12,
        "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27,
        "CAP_AUDIT_WRITE": 29, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    }
    mask = 0
    for n in names:
        mask |= 1 << numbers[n]
    return mask


def test_pid_1(sandbox: Sandbox) -> None:
    """With a pid namespace the container's process is pid 1 and sees only its own tree."""
    out = sandbox.sh_ok("echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | head -1")
    assert out.split() == ["1", "1"]


def test_hostname(sandbox: Sandbox) -> None:
    """hostname from config.json is set in the new UTS namespace."""
    out = sandbox.sh_ok("cat /proc/sys/kernel/hostname; hostname", hostname="box-7f3a")
    assert out.splitlines() == ["box-7f3a", "box-7f3a"]


@pytest.mark.runc_bug(reason="runc 1.1.5 predates `domainname` (runtime-spec 1.1.0) and "
                            "silently ignores it")
def test_domainname(sandbox: Sandbox) -> None:
    """domainname from config.json is set in the new UTS namespace."""
    out = sandbox.sh_ok("cat /proc/sys/kernel/domainname", hostname="box-7f3a",
                        domainname="example.test")
    assert out == "example.test\n"


def test_env_is_exactly_config(sandbox: Sandbox) -> None:
    """process.env is the environment, values with spaces and '=' and empties intact."""
    env = [PATH_ENV, "FOO=bar baz", "EQ=a=b", "EMPTY=", f"{SANDBOX_ENV}={sandbox.id}"]
    out = sandbox.sh_ok("env", process={"env": env})
    got = set(out.splitlines())
    for item in env:
        assert item in got, f"{item!r} missing from {sorted(got)}"
    # nothing of the runtime's own environment leaks in
    assert not any(line.startswith(("PYRUNC_BIN=", "PYTEST_")) for line in got), got


def test_args_passed_verbatim(sandbox: Sandbox) -> None:
    """process.args reach execve unchanged (no shell splitting, no globbing)."""
    res = sandbox.run(["printf", "[%s]\\n", "a b", "*", "", "$HOME"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == "[a b]\n[*]\n[]\n[$HOME]\n"


def test_cwd(sandbox: Sandbox) -> None:
    """process.cwd is the working directory."""
    assert sandbox.sh_ok("pwd", process={"cwd": "/etc"}) == "/etc\n"


def test_cwd_entered_before_the_user_switch(sandbox: Sandbox) -> None:
    """runc enters process.cwd while still privileged: a cwd that only root (with its
    capabilities) may enter -- /root, 0700, owned by uid 42 -- works for uid 1000, which then
    cannot list it; a cwd that does not exist in the rootfs of the exec'd process is refused
    with runc's words."""
    b = sandbox.bundle(["sh", "-c", "pwd; ls . >/dev/null 2>&1 || echo cannot-list"],
                       process={"cwd": "/root", "user": {"uid": 1000, "gid": 1000}})
    os.chown(b.rootfs / "root", 42, 42)
    os.chmod(b.rootfs / "root", 0o700)
    res = sandbox.rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["/root", "cannot-list"]


def test_args_resolved_via_container_path(sandbox: Sandbox) -> None:
    """A bare command name is looked up in the container's PATH (process.env), inside the
    rootfs -- not in the runtime's PATH or the host's filesystem."""
    b = sandbox.bundle(["mytool", "arg1"],
                       process={"env": ["PATH=/opt/tools:/bin",
                                        f"PYRUNC_TEST_SANDBOX={sandbox.id}"]})
    tools = b.rootfs / "opt" / "tools"
    tools.mkdir(parents=True)
    (tools / "mytool").write_text('#!/bin/sh\necho "mytool ran with $1"\n')
    (tools / "mytool").chmod(0o755)
    res = sandbox.rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout == "mytool ran with arg1\n"


def test_user_uid_gid_additional_gids(sandbox: Sandbox) -> None:
    """user.uid/gid/additionalGids become the real/effective/saved ids and the group list."""
    out = sandbox.sh_ok(
        "id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
        process={"user": {"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000]}},
    )
    lines = out.splitlines()
    assert lines[0] == "1000"
    assert lines[1] == "1000"
    assert set(lines[2].split()) == {"1000", "2000", "3000"}
    status = _status_fields("\n".join(lines[3:]))
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1000"] * 4
    assert sorted(status["Groups"].split()) == ["2000", "3000"]


def test_user_without_additional_gids_has_no_groups(sandbox: Sandbox) -> None:
    """No additionalGids: the supplementary group list is empty (root's host groups must
    not leak in)."""
    out = sandbox.sh_ok("grep -E '^Groups:' /proc/self/status",
                        process={"user": {"uid": 1000, "gid": 1000}})
    assert _status_fields(out)["Groups"] == ""


def test_non_root_user_cannot_write_root_owned(sandbox: Sandbox) -> None:
    """The uid is really dropped: uid 1000 cannot write a root-owned 0755 dir."""
    res = sandbox.sh("touch /etc/x", root={"path": "rootfs", "readonly": False},
                     process={"user": {"uid": 1000, "gid": 1000}})
    assert res.returncode != 0
    assert "Permission denied" in res.stderr


@pytest.mark.parametrize("umask,expect_file", [(0o027, "640"), (0o077, "600"), (0, "666"),
                                               (4294967295, "0"), (0o10022, "644")])
def test_umask(sandbox: Sandbox, umask: int, expect_file: str) -> None:
    """user.umask is applied to the process (and so to files it creates). It is a uint32 in
    the spec; like umask(2) under runc, only its 0777 bits count (4294967295 was refused)."""
    out = sandbox.sh_ok(
        "umask; touch /tmp/f; stat -c %a /tmp/f",
        process={"user": {"uid": 0, "gid": 0, "umask": umask}},
        root={"path": "rootfs", "readonly": False},
    )
    assert out.split() == [f"{umask & 0o777:04o}", expect_file]


@pytest.mark.parametrize("io_priority,expect", [
    ({"class": "IOPRIO_CLASS_BE"}, "best-effort: prio 0"),  # priority is optional (was refused)
    ({"class": "IOPRIO_CLASS_BE", "priority": 6}, "best-effort: prio 6"),
])
def test_io_priority(sandbox: Sandbox, io_priority: dict[str, object], expect: str) -> None:
    """process.ioPriority as ionice reads it back inside; a missing priority is 0, as runc."""
    assert sandbox.sh_ok("ionice", process={"ioPriority": io_priority}).strip() == expect



def test_default_capabilities(sandbox: Sandbox) -> None:
    """The three default caps are exactly the bounding/effective/permitted sets."""
    out = sandbox.sh_ok("grep -E '^(Cap|NoNewPrivs)' /proc/self/status")
    st = _status_fields(out)
    want = _cap_mask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert int(st[key], 16) == want, (key, st[key])
    assert st["NoNewPrivs"] == "1"


def test_custom_capabilities_root(sandbox: Sandbox) -> None:
    """The bounding and inheritable sets are applied as configured. (For uid 0 execve()
    recomputes permitted/effective as inheritable|bounding, so those equal that union.)"""
    bnd = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_NET_BIND_SERVICE"]
    inh = ["CAP_NET_RAW", "CAP_KILL"]
    caps = {"bounding": bnd, "effective": bnd, "permitted": bnd, "inheritable": inh}
    out = sandbox.sh_ok("grep -E '^Cap' /proc/self/status", process={"capabilities": caps})
    st = _status_fields(out)
    assert int(st["CapBnd"], 16) == _cap_mask(bnd)
    assert int(st["CapInh"], 16) == _cap_mask(inh)
    assert int(st["CapPrm"], 16) == _cap_mask(bnd)
    assert int(st["CapEff"], 16) == _cap_mask(bnd)


def test_ambient_capabilities_non_root(sandbox: Sandbox) -> None:
    """For a non-root user the ambient set is what survives execve: permitted = effective
    = ambient, while bounding and inheritable stay as configured."""
    bnd = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_NET_BIND_SERVICE"]
    prm = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]
    inh = ["CAP_NET_RAW", "CAP_KILL"]
    amb = ["CAP_NET_RAW"]
    caps = {"bounding": bnd, "effective": prm, "permitted": prm, "inheritable": inh,
            "ambient": amb}
    out = sandbox.sh_ok("grep -E '^Cap' /proc/self/status",
                        process={"capabilities": caps, "user": {"uid": 1000, "gid": 1000}})
    st = _status_fields(out)
    assert int(st["CapBnd"], 16) == _cap_mask(bnd)
    assert int(st["CapInh"], 16) == _cap_mask(inh)
    assert int(st["CapAmb"], 16) == _cap_mask(amb)
    assert int(st["CapPrm"], 16) == _cap_mask(amb)
    assert int(st["CapEff"], 16) == _cap_mask(amb)


def test_capabilities_above_31(sandbox: Sandbox) -> None:
    """Capabilities past bit 31 (the second word of each capset set) land in every set: for a
    non-root user, ambient (so permitted and effective) needs them permitted and inheritable."""
    caps = ["CAP_KILL", "CAP_SYSLOG", "CAP_WAKE_ALARM"]
    out = sandbox.sh_ok("grep -E '^Cap' /proc/self/status", process={
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted", "inheritable",
                                           "ambient")},
        "user": {"uid": 1000, "gid": 1000}})
    st = _status_fields(out)
    for key in ("CapBnd", "CapInh", "CapAmb", "CapPrm", "CapEff"):
        assert int(st[key], 16) == _cap_mask(caps), (key, st[key])


def test_capabilities_enforced(sandbox: Sandbox) -> None:
    """Without CAP_CHOWN even root cannot chown; with it, it can."""
    script = "touch /tmp/f && chown 1000 /tmp/f && stat -c %u /tmp/f"
    root = {"path": "rootfs", "readonly": False}
    res = sandbox.sh(script, root=root)
    assert res.returncode != 0
    assert "Operation not permitted" in res.stderr
    caps = ["CAP_CHOWN", "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    out = sandbox.sh_ok(script, root=root, process={"capabilities": {
        "bounding": caps, "effective": caps, "permitted": caps}})
    assert out == "1000\n"


def test_no_new_privileges_false(sandbox: Sandbox) -> None:
    """noNewPrivileges false leaves the no_new_privs bit clear."""
    out = sandbox.sh_ok("grep NoNewPrivs /proc/self/status", process={"noNewPrivileges": False})
    assert _status_fields(out)["NoNewPrivs"] == "0"


def test_rlimits(sandbox: Sandbox) -> None:
    """process.rlimits set soft and hard limits (NOFILE below the host's 20000 hard cap)."""
    rl = [
        {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]
    out = sandbox.sh_ok("ulimit -n; cat /proc/self/limits", process={"rlimits": rl})
    lines = out.splitlines()
    assert lines[0] == "1000"
    limits = "\n".join(lines[1:])
    assert re.search(r"^Max open files\s+1000\s+2000\s", limits, re.M), limits
    assert re.search(r"^Max processes\s+300\s+400\s", limits, re.M), limits
    assert re.search(r"^Max core file size\s+0\s+0\s", limits, re.M), limits


def test_rlimit_locks(sandbox: Sandbox) -> None:
    """RLIMIT_LOCKS is an rlimit of getrlimit(2), which the runtime-spec points to, and runc
    sets it; pyrunc refused it as unknown (Python's `resource`, its old table, lacks it)."""
    out = sandbox.sh_ok("cat /proc/self/limits", process={
        "rlimits": [{"type": "RLIMIT_LOCKS", "soft": 10, "hard": 20}]})
    assert re.search(r"^Max file locks\s+10\s+20\s", out, re.M), out


def test_namespaces_are_new(sandbox: Sandbox) -> None:
    """Each configured namespace is a new one: the inode differs from the host's."""
    import os

    kinds = ["pid", "net", "ipc", "uts", "mnt", "cgroup"]
    out = sandbox.sh_ok("; ".join(f"readlink /proc/self/ns/{k}" for k in kinds))
    inside = out.split()
    for kind, link in zip(kinds, inside):
        assert link.startswith(f"{kind}:["), link
        assert link != os.readlink(f"/proc/self/ns/{kind}"), f"{kind} namespace is the host's"


def test_network_namespace_only_loopback(sandbox: Sandbox) -> None:
    """A new network namespace has only lo."""
    out = sandbox.sh_ok("ls /sys/class/net")
    assert out.split() == ["lo"]


def test_unknown_capability_names_warned_and_skipped(sandbox: Sandbox) -> None:
    """Names this kernel does not know (UNKNOWN_CAP, CAP_FOO) are a warning and skipped, as
    runc does (the runtime-spec's schema asks only for strings): the container runs with
    exactly the known ones."""
    known = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    names = [*known, "UNKNOWN_CAP", "CAP_FOO"]
    caps = {k: names for k in ("bounding", "effective", "permitted")}
    res = sandbox.sh("grep -E '^Cap(Bnd|Eff|Prm)' /proc/self/status",
                     process={"capabilities": caps})
    assert res.returncode == 0, res.stderr
    st = _status_fields(res.stdout)
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert int(st[key], 16) == _cap_mask(known), (key, st[key])
    warned = " ".join(e["msg"] for e in sandbox.rt.log_entries()
                      if e.get("level") in ("warning", "warn"))
    assert "UNKNOWN_CAP" in warned and "CAP_FOO" in warned, sandbox.rt.log_entries()


_CAP_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def test_no_capabilities_means_none(sandbox: Sandbox) -> None:
    """issue 15.1: a config without process.capabilities runs with NO capability (runc and
    crun: CapEff 0), never with the init's full root set (which let an image mount a cgroup
    v1 hierarchy and have the host run its release_agent)."""
    out = sandbox.sh_ok("grep -E '^Cap' /proc/self/status", process={"capabilities": None})
    st = _status_fields(out)
    assert {k: int(st[k], 16) for k in _CAP_KEYS} == dict.fromkeys(_CAP_KEYS, 0), st


_K = 1 << 5  # CAP_KILL
# absent set -> (the sets given, each ["CAP_KILL"]; uid; the masks seen inside after execve).
# Sets whose absence would make the kernel refuse the rest (inheritable beyond an empty
# bounding set, effective beyond an empty permitted set) are left out with it.
_ABSENT_SET_CASES = {
    "bounding": (("effective", "permitted"), 0,
                 {"CapBnd": 0, "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}),
    "inheritable": (("bounding", "effective", "permitted"), 1000,
                    {"CapBnd": _K, "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}),
    "permitted": (("bounding", "inheritable"), 1000,
                  {"CapBnd": _K, "CapInh": _K, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}),
    "ambient": (("bounding", "effective", "permitted", "inheritable"), 1000,
                {"CapBnd": _K, "CapInh": _K, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}),
    "effective": (("bounding", "permitted", "inheritable", "ambient"), 1000,
                  {"CapBnd": _K, "CapInh": _K, "CapPrm": _K, "CapEff": _K, "CapAmb": _K}),
}


@pytest.mark.parametrize("absent", sorted(_ABSENT_SET_CASES))
def test_an_absent_capability_set_is_empty(sandbox: Sandbox, absent: str) -> None:
    """Each of the five sets, when absent, is an empty set (read from /proc/self/status
    inside); the effective set's absence is invisible after execve (the ambient set decides),
    so that case shows only that the rest still applies."""
    given, uid, want = _ABSENT_SET_CASES[absent]
    caps = {k: ["CAP_KILL"] if k in given else None  # None: deleted from the default config
            for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
    out = sandbox.sh_ok("grep -E '^Cap' /proc/self/status",
                        process={"capabilities": caps, "user": {"uid": uid, "gid": uid}})
    st = {k: int(v, 16) for k, v in _status_fields(out).items() if k in _CAP_KEYS}
    assert st == want, (absent, st)


@pytest.mark.pyrunc_only
def test_an_effective_capability_not_permitted_is_named(sandbox: Sandbox) -> None:
    """The kernel takes no effective capability that is not permitted (capset: EPERM, runc:
    "unable to apply caps: operation not permitted"): the one line names it and says where it
    is missing (it guessed at the bounding set)."""
    res = sandbox.run(["true"], process={"capabilities": {
        "bounding": ["CAP_CHOWN", "CAP_BPF"], "effective": ["CAP_CHOWN", "CAP_BPF"],
        "permitted": ["CAP_CHOWN"]}})
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "CAP_BPF is effective but not permitted" in lines[0], res
    assert "CAP_CHOWN" not in lines[0] and "bounding" not in lines[0], lines


@pytest.mark.pyrunc_only
def test_a_runtime_without_cap_setpcap_says_why_it_cannot_drop_the_bounding_set(
        sandbox: Sandbox) -> None:
    """Dropping from the bounding set needs CAP_SETPCAP: a runtime started without it (a
    restricted host) failed with a bare 'prctl: Operation not permitted'. The line says what
    and why; nothing is left. (runc skips the bounding set then: the container keeps more.)"""
    line = _run_refused_without(sandbox, "setpcap", sandbox.bundle(["true"]))
    assert "from the container's bounding set" in line and "CAP_SETPCAP" in line, line


def _run_refused_without(sandbox: Sandbox, cap: str, b: Bundle) -> str:
    """`run` of `b` by a runtime whose bounding set lacks `cap`: it must fail in one line
    and leave no container; that line."""
    cid = sandbox.new_id()
    res = subprocess.run(["setpriv", f"--bounding-set=-{cap}",
                          *sandbox.rt.argv("run", "--bundle", str(b.path), cid)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                         env={**os.environ, SANDBOX_ENV: sandbox.rt.sandbox_id})
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res
    assert cid not in sandbox.rt.list_ids()
    return lines[0]


@pytest.mark.pyrunc_only
def test_a_capability_the_runtime_lacks_is_named(sandbox: Sandbox) -> None:
    """A runtime started without a capability (a restricted host: docker --privileged there)
    cannot give it to the container: the one error line names it, so the user knows what to
    drop, and nothing is left behind. (runc: "unable to apply caps: operation not permitted".)"""
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_TIME"]
    line = _run_refused_without(sandbox, "sys_time", sandbox.bundle(["true"], process={
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}}))
    assert "CAP_SYS_TIME" in line and "CAP_KILL" not in line and "CAP_CHOWN" not in line
    assert "CAP_SYS_TIME" in sandbox.rt.log_entries()[-1]["msg"]
