"""pyrunc.rootless: the mode, the default root and what counts as a limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrunc import rootless
from pyrunc.errors import UsageError
from pyrunc.spec.config import DeviceRule, Resources


def test_explicit_modes() -> None:
    assert rootless.is_rootless("true") is True
    assert rootless.is_rootless("false") is False
    with pytest.raises(UsageError):
        rootless.is_rootless("yes")


def test_auto_follows_the_euid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootless, "in_user_ns", lambda: False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert rootless.is_rootless("auto") is True
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert rootless.is_rootless("auto") is False
    monkeypatch.setattr(rootless, "in_user_ns", lambda: True)  # rootless podman's root
    assert rootless.is_rootless("auto") is True
    assert rootless.is_rootless("auto", systemd_cgroup=True) is False


def test_default_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootless, "in_user_ns", lambda: False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert rootless.default_root() == "/run/user/1000/pyrunc"
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # the host's root ignores it
    assert rootless.default_root() == "/run/pyrunc"
    monkeypatch.setattr(rootless, "in_user_ns", lambda: True)
    monkeypatch.setenv("USER", "alice")
    assert rootless.default_root() == "/run/user/1000/pyrunc"
    monkeypatch.setenv("USER", "root")
    assert rootless.default_root() == "/run/pyrunc"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert rootless.default_root() == "/run/pyrunc"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "run/user/1000")  # relative: invalid, ignored
    assert rootless.default_root() == "/run/pyrunc"


def test_device_rules_are_not_limits() -> None:
    assert not rootless.needs_controllers(None)
    assert not rootless.needs_controllers(Resources())
    assert not rootless.needs_controllers(Resources(devices=(DeviceRule(False, "a", None, None, "rwm"),)))
    assert rootless.needs_controllers(Resources(memory_limit=1 << 20))
    assert rootless.needs_controllers(Resources(unified=(("memory.high", "1M"),)))


def test_every_directory_a_process_joins_must_be_enterable(tmp_path: Path) -> None:
    """Each manager names the directories its join writes (v1: one per hierarchy, the
    unified one too); rootless refuses a cgroup when any of them is not writable."""
    from pyrunc.cgroups.null import NullManager
    from pyrunc.cgroups.systemd import SystemdManager
    from pyrunc.cgroups.v1 import V1Manager
    from pyrunc.cgroups.v2 import V2Manager
    from pyrunc.errors import SystemError_
    mounts = {c: str(tmp_path / c) for c in ("cpu", "memory", "unified")}
    mgr = V1Manager({c: "/ctr" for c in mounts}, mounts)
    assert mgr.dirs() == [str(tmp_path / c / "ctr") for c in mounts]
    for d in mgr.dirs()[:-1]:
        os.makedirs(d)
        (Path(d) / "cgroup.procs").touch()
    with pytest.raises(SystemError_, match="unified/ctr/cgroup.procs"):
        rootless._check_enterable(mgr)
    os.makedirs(mgr.dirs()[-1])
    (Path(mgr.dirs()[-1]) / "cgroup.procs").touch()
    rootless._check_enterable(mgr)
    assert V2Manager("/a/b").dirs() == ["/sys/fs/cgroup/a/b"]
    assert SystemdManager("/s.slice/u.scope").dirs() == ["/sys/fs/cgroup/s.slice/u.scope"]
    assert NullManager().dirs() == []
    rootless._check_enterable(NullManager())


def test_in_user_ns_reads_the_uid_map(monkeypatch: pytest.MonkeyPatch) -> None:
    """The initial namespace maps every uid to itself; anything else is a user namespace
    (an unreadable map, no /proc: taken as the initial one, as before)."""
    import subprocess
    import sys
    from pyrunc.linux import procfs
    assert rootless.in_user_ns() is (procfs.id_map("uid_map") != [(0, 0, 4294967295)])
    probe = "from pyrunc.rootless import in_user_ns; print(in_user_ns())"
    out = subprocess.run(["unshare", "-r", sys.executable, "-I", "-c", probe],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out
    monkeypatch.setattr(procfs, "id_map", lambda name: None)
    assert rootless.in_user_ns() is False
    monkeypatch.setattr(procfs, "id_map", lambda name: [(0, 1001, 1), (1, 100000, 65536)])
    assert rootless.in_user_ns() is True
