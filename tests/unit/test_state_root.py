"""A rootless state root: the user's own, or shared (root's or the user's, writable by a group
or everyone, sticky); in a shared one each container directory must be the user's own. Real
directories with real owners (the tests run as root and chown them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrunc import state
from pyrunc.errors import PyruncError

ME, OTHER = 61000, 61001


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state.os, "geteuid", lambda: ME)


def _dir(path: Path, uid: int, mode: int) -> Path:
    path.mkdir()
    os.chown(path, uid, 0)
    path.chmod(mode)
    return path


def _container(root: Path, cid: str, uid: int, mode: int = 0o711) -> None:
    _dir(root / cid, uid, mode)
    f = root / cid / "state.json"
    f.write_text('{"id": "%s", "pid": 0, "start_time": 0, "bundle": "/", "rootfs": "/", '
                 '"created": "2026-01-01T00:00:00Z", "cgroup_path": ""}' % cid)
    os.chown(f, uid, 0)
    f.chmod(0o600)


@pytest.mark.parametrize(("owner", "mode"), [(ME, 0o1700), (ME, 0o700), (0, 0o1777),
                                             (0, 0o1770), (ME, 0o1775)])
def test_accepted_roots(tmp_path: Path, as_user: None, owner: int, mode: int) -> None:
    root = _dir(tmp_path / "root", owner, mode)
    state.StateStore(str(root), private=True).check_root()


@pytest.mark.parametrize(("owner", "mode", "words"), [
    (OTHER, 0o1777, f"owned by uid {OTHER}"),     # its owner may rename anything in it
    (OTHER, 0o700, f"owned by uid {OTHER}"),
    (0, 0o711, "owned by uid 0"),                 # /run/pyrunc: not shared
    (0, 0o777, "without the sticky bit"),
    (ME, 0o2775, "without the sticky bit"),       # a setgid group directory, as usually made
])
def test_refused_roots(tmp_path: Path, as_user: None, owner: int, mode: int, words: str) -> None:
    root = _dir(tmp_path / "root", owner, mode)
    with pytest.raises(PyruncError, match=words):
        state.StateStore(str(root), private=True).check_root()


def test_in_a_shared_root_only_own_containers_count(tmp_path: Path, as_user: None) -> None:
    root = _dir(tmp_path / "root", 0, 0o1777)
    _container(root, "mine", ME)
    _container(root, "theirs", OTHER)
    _container(root, "loose", ME, mode=0o777)     # ours, but anyone may write in it
    store = state.StateStore(str(root), private=True)
    assert list(store.ids()) == ["mine"]
    assert store.load("mine").id == "mine"
    with pytest.raises(PyruncError, match=f"state directory .* is owned by uid {OTHER}"):
        store.load("theirs")
    with pytest.raises(PyruncError, match="state directory .* is writable by group or others"):
        store.load("loose")


def test_the_hosts_root_is_unchanged(tmp_path: Path) -> None:
    """Root's own --root (not rootless): directories are not checked one by one."""
    root = _dir(tmp_path / "root", 0, 0o711)
    _container(root, "c1", 0)
    assert list(state.StateStore(str(root)).ids()) == ["c1"]
