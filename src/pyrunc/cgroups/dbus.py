"""systemd's manager over the system bus (or, rootless, the user's session bus), for the
systemd cgroup driver.

The client is jeepney: pure Python, no dependencies, marshalling tested by its own suite;
it costs ~18 ms to import (dbus-fast ~250 ms), and only create, update and delete of a
container made with --systemd-cgroup come here. Each call opens one connection and closes
it: a command makes at most three calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from pyrunc.errors import SystemError_, UnsupportedError

Props = list[tuple[str, tuple[str, Any]]]   # a(sv): (name, (signature, value))

SYSTEMD = "org.freedesktop.systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
JOB_TIMEOUT = 30.0  # as runc: a job not done in 30 s is an error
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
PRIVATE_SOCKET = "/run/systemd/private"  # systemd's own, root's only: no bus daemon between


def _address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


def _user_address() -> str:
    """The caller's session bus, where its systemd user manager answers (as runc's)."""
    addr = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if addr:
        return addr
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if not xdg:
        raise UnsupportedError("--systemd-cgroup as a rootless user: neither "
                               "DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set, so the user's "
                               "systemd cannot be reached; use the cgroupfs driver")
    return f"unix:path={xdg}/bus"


def _own_host_uid() -> int:
    """The euid as the parent user namespace sees it (the bus checks the peer's credentials
    against the uid a client claims: root of rootless podman's namespace is the user there);
    as it is when unmapped or the map cannot be read."""
    from pyrunc.linux.procfs import id_map, map_id
    euid = os.geteuid()
    host = map_id(id_map("uid_map") or [], euid)
    return euid if host is None else host


def _open_as(addr: str, uid: int, timeout: float, direct: bool = False) -> Any:
    """A jeepney connection whose SASL EXTERNAL names `uid` (jeepney's names the euid);
    `direct`: a peer-to-peer one (systemd's private socket), which has no bus to say Hello to."""
    import socket
    from binascii import hexlify
    from jeepney.bus import get_bus  # type: ignore[import-untyped]
    from jeepney.io.blocking import DBusConnection  # type: ignore[import-untyped]
    sock = socket.socket(family=socket.AF_UNIX)
    try:
        sock.settimeout(timeout)
        sock.connect(get_bus(addr))
        sock.sendall(b"\0AUTH EXTERNAL " + hexlify(str(uid).encode()) + b"\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(1024)
            if not chunk:
                break
            reply += chunk
        if not reply.startswith(b"OK "):
            raise ValueError(f"authentication as uid {uid} refused: {reply.strip()!r}")
        sock.sendall(b"BEGIN\r\n")
        sock.settimeout(None)
        return _direct_connection_class()(sock) if direct else DBusConnection(sock)
    except BaseException:
        sock.close()
        raise


def _direct_connection_class() -> Any:
    from jeepney.bus_messages import message_bus  # type: ignore[import-untyped]
    from jeepney.io.blocking import DBusConnection, DBusConnectionBase, Proxy
    from jeepney.io.common import MessageFilters  # type: ignore[import-untyped]

    class Direct(DBusConnection):  # type: ignore[misc]
        """DBusConnection without its Hello: systemd answers on the socket itself."""

        def __init__(self, sock: Any) -> None:
            DBusConnectionBase.__init__(self, sock)
            self._filters = MessageFilters()
            self.bus_proxy = Proxy(message_bus, self)
    return Direct


def connect(user: bool = False) -> "Bus":
    """The system bus, or (user) the caller's session bus and so its systemd user manager,
    with a clear error when systemd or the bus is not there."""
    from pyrunc.cgroups.systemd import check_host
    check_host()
    from jeepney.io.blocking import open_dbus_connection
    addr = _user_address() if user else _address()
    try:
        if user:
            return Bus(_open_as(addr, _own_host_uid(), 5.0))
        return Bus(open_dbus_connection(bus=addr, auth_timeout=5.0))
    except (OSError, ValueError, TimeoutError) as exc:
        first = exc
    if not user and os.geteuid() == 0:
        # No bus daemon (dbus is only a Recommends of systemd), or it is down: root can talk
        # to systemd directly on its private socket, as runc (go-systemd) falls back to.
        try:
            return Bus(_open_as(f"unix:path={PRIVATE_SOCKET}", 0, 5.0, direct=True), direct=True)
        except (OSError, ValueError, TimeoutError) as exc:
            addr += f" ({first}) nor at unix:path={PRIVATE_SOCKET}"
            first = exc
    which = "the user's session bus" if user else "a system bus"
    raise UnsupportedError(f"--systemd-cgroup: cannot reach systemd over D-Bus at {addr} "
                           f"({first}); is {which} running? Otherwise configure the engine "
                           "for the cgroupfs driver (without --systemd-cgroup)") from None


class Bus:
    def __init__(self, conn: Any, direct: bool = False) -> None:
        from jeepney import DBusAddress  # type: ignore[import-untyped]
        self.conn = conn
        self.direct = direct  # systemd's private socket: no bus daemon to route or match
        self.systemd = DBusAddress("/org/freedesktop/systemd1", bus_name=SYSTEMD, interface=MANAGER)

    def close(self) -> None:
        self.conn.close()

    def _call(self, method: str, signature: str | None, body: tuple[Any, ...], what: str,
              interface: str = MANAGER, path: str = "") -> Any:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg  # type: ignore[import-untyped]
        if path:
            target = DBusAddress(path, bus_name=SYSTEMD, interface=interface)
        else:
            target = self.systemd if interface == MANAGER else self.systemd.with_interface(interface)
        msg = new_method_call(target, method, signature, body)
        try:
            return unwrap_msg(self.conn.send_and_get_reply(msg, timeout=JOB_TIMEOUT))
        except DBusErrorResponse as exc:
            detail = exc.data[0] if exc.data else ""
            raise DBusError(f"{what}: systemd says {exc.name}: {detail}", name=exc.name or "") from None
        except (OSError, TimeoutError) as exc:
            raise SystemError_.from_oserror(f"{what}: D-Bus call {method}", exc) from None

    def _run_job(self, method: str, signature: str, body: tuple[Any, ...], unit: str,
                 what: str, queued: Callable[[], None] | None = None) -> None:
        """Call a method that queues a job (then `queued()`), and wait for its JobRemoved."""
        from jeepney import MatchRule, message_bus
        # No sender= : the signal carries systemd's unique name, and jeepney's local filter
        # compares it literally (the bus would match the well-known name, jeepney does not).
        rule = MatchRule(type="signal", interface=MANAGER, member="JobRemoved",
                         path="/org/freedesktop/systemd1")
        if not self.direct:  # directly, systemd sends a subscriber its signals unasked
            self.conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=JOB_TIMEOUT)
        try:
            self._call("Subscribe", None, (), what)  # systemd sends job signals to subscribers
        except DBusError as exc:
            if "AlreadySubscribed" not in exc.name:
                raise
        with self.conn.filter(rule, bufsize=64) as queue:
            (job,) = self._call(method, signature, body, what)
            if queued is not None:
                queued()
            deadline = time.monotonic() + JOB_TIMEOUT
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemError_(f"{what}: systemd job {job} for {unit} not done in "
                                       f"{JOB_TIMEOUT:.0f} s")
                try:
                    sig = self.conn.recv_until_filtered(queue, timeout=left)
                except TimeoutError:
                    continue
                _id, path, _unit, result = sig.body
                if path == job:
                    if result != "done":
                        raise SystemError_(f"{what}: systemd job for {unit} ended with "
                                           f"{result!r} (see journalctl -u {unit})")
                    return

    def start_transient_unit(self, unit: str, props: Props,
                             queued: Callable[[], None] | None = None) -> None:
        """`queued`: called once systemd has made the unit (its start job queued), which
        from then on is the caller's to stop, even if the job fails or times out."""
        self._run_job("StartTransientUnit", "ssa(sv)a(sa(sv))", (unit, "replace", props, []),
                      unit, f"cannot start systemd unit {unit}", queued)

    def _unit_property(self, unit: str, name: str) -> Any:
        """A property of the unit, or None when systemd has no unit of that name loaded
        (GetUnit loads nothing: asking makes no unit, as Get on its object path would)."""
        what = f"cannot look up systemd unit {unit}"
        try:
            (path,) = self._call("GetUnit", "s", (unit,), what)
            ((_sig, value),) = self._call("Get", "ss", ("org.freedesktop.systemd1.Unit", name),
                                          what, "org.freedesktop.DBus.Properties", path)
        except DBusError as exc:
            if exc.name.endswith(".NoSuchUnit") or exc.name.endswith(".UnknownObject"):
                return None  # (UnknownObject: unloaded between the two calls)
            raise
        return value

    def active_state(self, unit: str) -> str | None:
        """The unit's ActiveState, or None when systemd has no such unit loaded."""
        state = self._unit_property(unit, "ActiveState")
        return None if state is None else str(state)

    def invocation_id(self, unit: str) -> str:
        """The id systemd gives each start of the unit (hex), "" when it has no such unit:
        a unit stopped and started again, by anyone, has a new one."""
        value = self._unit_property(unit, "InvocationID")
        return bytes(value).hex() if value else ""

    def reset_failed(self, unit: str) -> None:
        self._call("ResetFailedUnit", "s", (unit,), f"cannot reset failed systemd unit {unit}")

    def set_unit_properties(self, unit: str, props: Props) -> None:
        self._call("SetUnitProperties", "sba(sv)", (unit, True, props),
                   f"cannot set the properties of systemd unit {unit}")

    def ping(self) -> None:
        """A round trip to systemd: it runs its queues (cgroup attributes included) before it
        reads the next call, so what an earlier call queued is done when this returns."""
        self._call("Ping", None, (), "D-Bus Ping of systemd", "org.freedesktop.DBus.Peer")

    def stop_unit(self, unit: str) -> None:
        """Stop the unit and reset a failed state; one already gone is fine."""
        what = f"cannot stop systemd unit {unit}"
        try:
            self._run_job("StopUnit", "ss", (unit, "replace"), unit, what)
        except DBusError as exc:
            if not exc.name.endswith(".NoSuchUnit"):
                raise
        try:
            self._call("ResetFailedUnit", "s", (unit,), what)
        except DBusError:
            pass  # not failed, or gone


class DBusError(SystemError_):
    """systemd answered with an error; `name` is its D-Bus error name."""

    def __init__(self, msg: str, errno: int | None = None, name: str = "") -> None:
        super().__init__(msg, errno)
        self.name = name
