"""The systemd driver for a rootless caller: its user manager, reached over its session bus."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from pyrunc.cgroups import dbus, systemd
from pyrunc.errors import UnsupportedError


def test_host_uid_maps_through_uid_map(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrunc.linux import procfs
    podman = "         0       1001          1\n         1     100000      65536\n"
    ranges = procfs.parse_id_map(podman)
    assert ranges == [(0, 1001, 1), (1, 100000, 65536)]
    assert procfs.map_id(ranges, 0) == 1001
    assert procfs.map_id(ranges, 1000) == 100999
    assert procfs.map_id(procfs.parse_id_map("0 0 4294967295\n"), 5) == 5
    assert procfs.map_id(ranges, 70000) is None
    monkeypatch.setattr(procfs, "id_map", lambda name: ranges)
    monkeypatch.setattr(dbus.os, "geteuid", lambda: 1000)
    assert dbus._own_host_uid() == 100999
    monkeypatch.setattr(dbus.os, "geteuid", lambda: 70000)
    assert dbus._own_host_uid() == 70000  # unmapped: as it is
    monkeypatch.setattr(procfs, "id_map", lambda name: None)
    assert dbus._own_host_uid() == 70000


def test_user_manager_root_from_own_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyrunc.cgroups as cg
    monkeypatch.setattr(cg, "own_cgroup", lambda c: "/user.slice/user-1003.slice/user@1003.service/app.slice/run-r1.scope")
    assert systemd.user_manager_root() == "/user.slice/user-1003.slice/user@1003.service"
    monkeypatch.setattr(cg, "own_cgroup", lambda c: "/user.slice/user-1003.slice/session-4.scope")
    with pytest.raises(UnsupportedError, match="not below a systemd user manager"):
        systemd.user_manager_root()


def test_user_default_slice() -> None:
    assert systemd.parse_path(None, "c1", user=True) == ("pyrunc-c1.scope", "user.slice",
                                                          "/user.slice/pyrunc-c1.scope")
    assert systemd.parse_path(None, "c1")[1] == "system.slice"
    assert systemd.parse_path("user.slice:libpod:abc", "x", user=True)[0] == "libpod-abc.scope"


def test_user_bus_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/x/bus")
    assert dbus._user_address() == "unix:path=/x/bus"
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert dbus._user_address() == "unix:path=/run/user/7/bus"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    with pytest.raises(UnsupportedError, match="DBUS_SESSION_BUS_ADDRESS"):
        dbus._user_address()


def test_auth_names_the_given_uid(tmp_path: Path) -> None:
    """The SASL EXTERNAL line carries the uid we pass (the host's), not our euid; a refusal
    is an error that quotes the bus."""
    path = str(tmp_path / "bus")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        data = b""
        while not data.endswith(b"\r\n"):
            data += conn.recv(1024)
        got.append(data)
        conn.sendall(b"REJECTED EXTERNAL\r\n")
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with pytest.raises(ValueError, match="uid 1001 refused: b'REJECTED EXTERNAL'"):
        dbus._open_as(f"unix:path={path}", 1001, 5.0)
    t.join(5)
    srv.close()
    assert got == [b"\0AUTH EXTERNAL " + b"1001".hex().encode() + b"\r\n"]


def test_user_manager_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-root: the user's manager; root of a user namespace: only below a user manager
    (rootless podman), not as a container's systemd; the host's root: the system's."""
    import pyrunc.cgroups as cg
    import pyrunc.rootless as rl
    below = "/user.slice/user-1003.slice/user@1003.service/user.slice/libpod-conmon-x.scope"
    for euid, userns, own, want in [(1003, False, "/system.slice/x.service", True),
                                    (0, True, below, True),
                                    (0, True, "/init.scope", False),
                                    (0, False, below, False)]:
        monkeypatch.setattr(systemd.os, "geteuid", lambda: euid)
        monkeypatch.setattr(rl, "in_user_ns", lambda: userns)
        monkeypatch.setattr(cg, "own_cgroup", lambda c: own)
        assert systemd.user_manager() is want, (euid, userns, own)


def test_root_of_a_userns_below_a_user_manager_is_rootless_with_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """rootless podman with cgroup_manager=systemd runs the runtime as root of its user namespace
    from a user scope: rootless (no device filter: bpf() refuses it there); a container's systemd
    as PID 1 (root of a userns, not below a user manager) is not."""
    import pyrunc.cgroups as cg
    import pyrunc.rootless as rl
    monkeypatch.setattr(rl.os, "geteuid", lambda: 0)
    monkeypatch.setattr(rl, "in_user_ns", lambda: True)
    monkeypatch.setattr(cg, "own_cgroup", lambda c: "/user.slice/user-1005.slice/user@1005.service/user.slice/x.scope")
    assert rl.is_rootless("auto", systemd_cgroup=True) is True
    monkeypatch.setattr(cg, "own_cgroup", lambda c: "/init.scope")
    assert rl.is_rootless("auto", systemd_cgroup=True) is False
    assert rl.is_rootless("auto", systemd_cgroup=False) is True
