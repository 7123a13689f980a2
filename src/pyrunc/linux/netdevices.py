"""linux.netDevices (runtime-spec 1.3): move host interfaces into the container's network
namespace, from the runtime's side, through netlink (pyroute2).

pyroute2 costs ~1 s to import on this machine (measured with -X importtime under load;
asyncio and its own modules), so only this module imports it and only a config with
netDevices imports this module. Everything is checked before anything moves (the device
exists, the namespace is not ours, the new name is free there), so a refusal leaves every
device where it was; should a move itself fail, the devices moved so far are moved back.

The kernel drops an interface's addresses and sets it down when it changes namespace: its
permanent global-scope addresses (IPv4 and IPv6) are read first and put back inside, and
the interface is set up, as the spec asks. Nothing moves it back at delete (the spec says
the runtime does not): when the namespace dies the kernel returns physical devices to the
host's namespace and destroys virtual ones (veth, dummy, ...).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any, NamedTuple

from pyrunc.errors import SpecError, SystemError_

if TYPE_CHECKING:
    from pyrunc.spec.config import NetDevice

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
RT_SCOPE_UNIVERSE = 0
IFA_F_PERMANENT = 0x80


class _Address(NamedTuple):
    family: int
    address: str
    prefixlen: int


class _Plan(NamedTuple):
    dev: NetDevice
    host_index: int
    mac: str | None
    addresses: tuple[_Address, ...]
    up: bool  # as it was on the host: a device moved back after a failure is set up again
    host_name: str  # its primary name: the config may name it by an altname, which moves with it


IFF_UP = 0x1


def _err(dev: NetDevice, msg: str) -> SpecError:
    return SpecError(f"config.json: linux.netDevices: network device {dev.host!r}: {msg}")


def _why(exc: Exception) -> str:
    """The errno's words: pyroute2's NetlinkError prints as "(13, 'Permission denied')"."""
    code = getattr(exc, "code", None)
    return os.strerror(code) if isinstance(code, int) and code > 0 else str(exc)


def _addresses(ipr: Any, index: int) -> tuple[_Address, ...]:
    """The addresses the spec says to keep: permanent (not SLAAC/DHCP-made) and global."""
    out = []
    for msg in ipr.get_addr(index=index):
        flags = msg.get_attr("IFA_FLAGS")
        if flags is None:
            flags = msg["flags"]
        if msg["scope"] != RT_SCOPE_UNIVERSE or not flags & IFA_F_PERMANENT:
            continue
        out.append(_Address(msg["family"], msg.get_attr("IFA_ADDRESS"), msg["prefixlen"]))
    return tuple(out)


def _find(ipr: Any, name: str, before: frozenset[int], mac: str | None) -> int:
    """The moved device's index on arrival: the kernel keeps the index when it is free
    there, else picks one; a '%d' name is the kernel's choice too, so what is new settles it."""
    if "%" not in name:
        found = ipr.link_lookup(ifname=name)
        if found:
            return int(found[0])
    found = _locate(ipr, before, mac)
    if found is not None:
        return found
    raise SystemError_(f"network device {name!r} is not in the container's network namespace "
                       "after the move")


def _indexes(ipr: Any) -> frozenset[int]:
    return frozenset(int(link["index"]) for link in ipr.get_links())


def _locate(ipr: Any, before: frozenset[int], mac: str | None) -> int | None:
    """The device that came into `ipr`'s namespace since `before` was read: a joined
    namespace may hold another device under the moved one's old index or even its MAC, and
    touching that one (addresses, a move to the host) would be touching the container's."""
    new = [link for link in ipr.get_links() if int(link["index"]) not in before]
    if len(new) > 1:
        new = [link for link in new if link.get_attr("IFLA_ADDRESS") == mac]
    return int(new[0]["index"]) if len(new) == 1 else None


def _socket_in(target_fd: int, host_fd: int) -> int:
    """A netlink socket of the container's namespace (a socket stays in the namespace it
    was made in). pyroute2's own netns= forks a helper, which at times hung for good in a
    runtime that already had pyroute2's threads: setns(2) here, for this thread only."""
    from pyrunc.linux import syscalls
    syscalls.setns(target_fd, CLONE_NEWNET)
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    finally:
        syscalls.setns(host_fd, CLONE_NEWNET)
    return sock.detach()


class Moved:
    """Devices moved into a container's namespace, held until its create is done. The open
    namespace fd keeps the namespace, and what moved into it, alive even when the init dies
    (an exec that fails, a killed init): a failed create sends the devices home with undo()
    instead of leaving a veth to die with the namespace (it did: any failure after the move,
    a createRuntime hook's or a missing executable, destroyed the host's device)."""

    def __init__(self, target_fd: int, moved: list[tuple[_Plan, int]]) -> None:
        self.target_fd = target_fd
        self.moved = moved

    def undo(self) -> None:
        """Best effort: each device still where it arrived goes home, as after a failed move."""
        from pyroute2 import IPRoute  # type: ignore[import-untyped]
        host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with IPRoute() as host, IPRoute(fileno=_socket_in(self.target_fd, host_fd)) as ctr:
                # A hook may have replaced a device meanwhile: only one with its MAC goes.
                still = [(plan, inside) for plan, inside in self.moved
                         if _mac(ctr, inside) == plan.mac]
                _move_back(ctr, host, host_fd, still)
        except Exception:  # the create's own error is the one to report
            pass
        finally:
            os.close(host_fd)
            self.close()

    def close(self) -> None:
        if self.target_fd >= 0:
            os.close(self.target_fd)
            self.target_fd = -1


def _mac(ipr: Any, index: int) -> str | None:
    try:
        links = ipr.get_links(index)
    except Exception:
        return None
    return links[0].get_attr("IFLA_ADDRESS") if links else None


def move(devices: tuple[NetDevice, ...], pid: int) -> Moved:
    """Move `devices` into the network namespace of `pid` (the container's init); the
    caller closes (or, if its create fails, undoes) what it returns."""
    from pyroute2 import IPRoute
    target = f"/proc/{pid}/ns/net"
    try:
        target_fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        raise SystemError_("container init exited before its network devices were moved"
                           ) from None
    try:
        ours, theirs = os.stat("/proc/self/ns/net"), os.fstat(target_fd)
        if (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino):
            raise _err(devices[0], "the container's network namespace is the runtime's own")
        moved = _move(IPRoute, devices, target_fd)
    except BaseException:
        os.close(target_fd)
        raise
    return Moved(target_fd, moved)


def _move(IPRoute: Any, devices: tuple[NetDevice, ...], target_fd: int) -> list[tuple[_Plan, int]]:
    """Check every device, then move, rename and configure each; on a failure the ones
    moved so far go home and the error is raised."""
    host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host, IPRoute(fileno=_socket_in(target_fd, host_fd)) as ctr:
            plans = []
            for dev in devices:
                found = host.link_lookup(ifname=dev.host)
                if not found:
                    raise _err(dev, "no such device on the host")
                index = int(found[0])
                if "%" not in dev.name and ctr.link_lookup(ifname=dev.name):
                    raise _err(dev, f"the name {dev.name!r} is taken in the container's "
                               "network namespace")
                try:
                    link = host.get_links(index)[0]
                    addresses = _addresses(host, index)
                except Exception as exc:  # gone since the lookup
                    raise _err(dev, f"cannot read it on the host: {_why(exc)}") from None
                plans.append(_Plan(dev, index, link.get_attr("IFLA_ADDRESS"), addresses,
                                   bool(link["flags"] & IFF_UP),
                                   link.get_attr("IFLA_IFNAME") or dev.host))
            moved: list[tuple[_Plan, int]] = []
            try:
                for plan in plans:
                    before = _indexes(ctr)
                    try:
                        host.link("set", index=plan.host_index, net_ns_fd=target_fd,
                                  ifname=plan.dev.name)
                    except Exception as exc:
                        # The kernel renames after the move: a refused name or one taken
                        # meanwhile fails with the device already inside. Home it too.
                        stray = _locate(ctr, before, plan.mac)
                        if stray is not None:
                            moved.append((plan, stray))
                        raise _err(plan.dev, "cannot move it into the container: "
                                   f"{_why(exc)}") from None
                    inside = _find(ctr, plan.dev.name, before, plan.mac)
                    moved.append((plan, inside))
                    _configure(ctr, plan, inside)
            except BaseException:
                _move_back(ctr, host, host_fd, moved)
                raise
            return moved
    finally:
        os.close(host_fd)


def _configure(ctr: Any, plan: _Plan, inside: int) -> None:
    """Its addresses back and up, inside. A refusal (IPv6 disabled in a joined namespace,
    an address the namespace will not take) was an internal error, pyroute2's NetlinkError."""
    for a in plan.addresses:
        try:
            ctr.addr("add", index=inside, family=a.family, address=a.address,
                     prefixlen=a.prefixlen)
        except Exception as exc:
            raise _err(plan.dev, f"cannot give it its address {a.address}/{a.prefixlen} in "
                       f"the container: {_why(exc)}") from None
    try:
        ctr.link("set", index=inside, state="up")
    except Exception as exc:
        raise _err(plan.dev, f"cannot set it up in the container: {_why(exc)}") from None


def _move_back(ctr: Any, host: Any, host_fd: int, moved: list[tuple[_Plan, int]]) -> None:
    """Best effort after a failed move: each device home under its own name and addresses."""
    for plan, inside in reversed(moved):
        try:
            before = _indexes(host)
            ctr.link("set", index=inside, net_ns_fd=host_fd, ifname=plan.host_name)
            index = _find(host, plan.host_name, before, plan.mac)
            for a in plan.addresses:
                host.addr("add", index=index, family=a.family, address=a.address,
                          prefixlen=a.prefixlen)
            if plan.up:  # the kernel sets a device down when it changes namespace
                host.link("set", index=index, state="up")
        except Exception:  # the original error is the one to report
            pass
