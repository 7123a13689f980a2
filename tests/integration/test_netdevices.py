"""linux.netDevices (runtime-spec 1.3): host interfaces moved into the container.

The interfaces are veth devices (this kernel has no dummy driver: `ip link add x type
dummy` is "Unknown device type") that the tests make in the runtime's (host) network
namespace under unique names, with documentation-range addresses (192.0.2.0/24,
2001:db8::/32) that no traffic is ever sent to; each test removes what is left of them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from .conftest import Sandbox
from .helpers import Runtime, wait_for


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _addrs(name: str) -> list[str]:
    """The global addresses of a host interface, as 'ADDR/LEN'."""
    out = json.loads(_ip("-j", "addr", "show", "dev", name).stdout)
    return sorted(f"{a['local']}/{a['prefixlen']}" for a in out[0]["addr_info"]
                  if a.get("scope") == "global")


@pytest.fixture
def dummy() -> Iterator[str]:
    """One end of a veth pair on the host, with an IPv4 and an IPv6 address."""
    name, peer = f"pyd{os.getpid() % 100000}", f"pyp{os.getpid() % 100000}"
    _ip("link", "add", name, "type", "veth", "peer", "name", peer)
    try:
        _ip("addr", "add", "192.0.2.10/24", "dev", name)
        _ip("addr", "add", "2001:db8::10/64", "dev", name, "nodad")
        yield name
    finally:
        _ip("link", "del", name, check=False)
        _ip("link", "del", peer, check=False)


NETDEV_SCRIPT = ("cat /sys/class/net/{n}/operstate /sys/class/net/{n}/flags; "
                 "ip -o addr show dev {n} scope global")


def test_dummy_moved_renamed_with_addresses_and_up(sandbox: Sandbox, dummy: str) -> None:
    """Inside: the device under its new name, up, with both addresses; the host no longer
    has it (a veth is destroyed with the namespace when the container goes)."""
    out = sandbox.sh_ok(NETDEV_SCRIPT.format(n="ctr0"),
                        linux={"netDevices": {dummy: {"name": "ctr0"}}})
    lines = out.splitlines()
    assert int(lines[1], 16) & 0x1, out  # IFF_UP
    assert "inet 192.0.2.10/24" in out and "inet6 2001:db8::10/64" in out, out
    assert wait_for(lambda: not _exists(dummy)), "the device is still on the host"


def test_name_kept_when_not_given(sandbox: Sandbox, dummy: str) -> None:
    out = sandbox.sh_ok("ls /sys/class/net", linux={"netDevices": {dummy: {}}})
    assert sorted(out.split()) == sorted(["lo", dummy])


def test_veth_end_moved_peer_stays_until_delete(sandbox: Sandbox, rt: Runtime) -> None:
    """A veth end moved into a running container: seen inside, its peer on the host;
    deleting the container destroys the pair (the runtime moves nothing back)."""
    a, b = f"pyva{os.getpid() % 100000}", f"pyvb{os.getpid() % 100000}"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        _ip("addr", "add", "192.0.2.20/24", "dev", a)
        bundle = sandbox.bundle(["sleep", "1000"], linux={"netDevices": {a: {"name": "eth0"}}})
        cid = sandbox.new_id()
        rt.create(bundle, cid, out_dir=sandbox.tmp / "out")
        rt.run_cmd("start", cid, check=True)
        pid = rt.state(cid)["pid"]
        inside = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "addr", "show",
                                 "dev", "eth0"], capture_output=True, text=True, check=True)
        assert "inet 192.0.2.20/24" in inside.stdout
        assert not _exists(a) and _exists(b)
        rt.run_cmd("kill", cid, "KILL", check=True)
        rt.wait_status(cid, "stopped")
        rt.run_cmd("delete", cid, check=True)
        assert wait_for(lambda: not _exists(b)), "the veth peer outlived the container"
    finally:
        _ip("link", "del", a, check=False)
        _ip("link", "del", b, check=False)


def test_name_taken_inside_refused_device_stays(sandbox: Sandbox, dummy: str) -> None:
    """A name already taken inside (lo) is refused before anything moves: the error names
    the device, which stays on the host with its addresses."""
    before = _addrs(dummy)
    res = sandbox.sh("true", linux={"netDevices": {dummy: {"name": "lo"}}})
    assert res.returncode == 1, res
    assert res.stderr.strip().endswith(f"network device {dummy!r}: the name 'lo' is taken in "
                                       "the container's network namespace"), res.stderr
    assert _exists(dummy) and _addrs(dummy) == before


@pytest.mark.parametrize("name", ["c%s", "c%d%d", "c0\n"])
def test_name_the_kernel_refuses_device_stays(sandbox: Sandbox, dummy: str, name: str) -> None:
    """The kernel renames a device only after moving it, so a name it refuses ('%' not as
    one '%d', white space) used to fail with the device already inside: the veth died with
    the namespace (a physical one would come home without its addresses). Refused first now."""
    before = _addrs(dummy)
    res = sandbox.sh("true", linux={"netDevices": {dummy: {"name": name}}})
    assert res.returncode == 1, res
    assert f"name: {name!r} is not a valid interface name" in res.stderr, res.stderr
    assert _exists(dummy) and _addrs(dummy) == before


def test_missing_device_refused_before_create(sandbox: Sandbox, rt: Runtime) -> None:
    res = sandbox.sh("true", linux={"netDevices": {"pyrunc-nodev0": {}}})
    assert res.returncode == 1
    assert res.stderr.strip().endswith("network device 'pyrunc-nodev0': no such device on the host")
    assert rt.list_ids() == []


def _flags(name: str) -> int:
    return int(open(f"/sys/class/net/{name}/flags").read(), 16)


def test_address_refused_inside_is_one_line_and_device_comes_back_up(
        sandbox: Sandbox, dummy: str, rt: Runtime) -> None:
    """A joined namespace with IPv6 disabled refuses the device's IPv6 address after the
    move: that was 'internal error: NetlinkError: (13, 'Permission denied')', and the device
    came home down although it had been up. Now one line naming the device and the address,
    and the device is back on the host up, with its addresses (review rev18)."""
    from .test_namespaces import _namespaces
    path = sandbox.add_netns()
    name = os.path.basename(path)
    _ip("netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1")
    _ip("link", "set", dummy, "up")
    before = _addrs(dummy)
    res = sandbox.sh("true", linux={"netDevices": {dummy: {"name": "ctr0"}},
                                    "namespaces": _namespaces(replace={"network": path})})
    assert res.returncode == 1, res
    assert res.stderr.strip().endswith(
        f"network device {dummy!r}: cannot give it its address 2001:db8::10/64 in the "
        "container: Permission denied"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert _exists(dummy) and _addrs(dummy) == before
    assert _flags(dummy) & 0x1, "the device came back down"
    assert rt.list_ids() == []


@pytest.mark.parametrize("failure", [
    {"hooks": {"createRuntime": [{"path": "/bin/false"}]}},
    {"args": ["/pyrunc-no-such-program"]},
], ids=["createRuntime-hook-fails", "exec-fails"])
def test_failed_create_after_the_move_sends_the_device_home(
        sandbox: Sandbox, dummy: str, rt: Runtime, failure: dict[str, object]) -> None:
    """A create that fails after the device moved (a createRuntime hook, a program that is
    not there: the init exits by itself) destroyed the veth with the container's namespace.
    Now it comes back to the host under its own name, with its addresses, up (review rev18)."""
    _ip("link", "set", dummy, "up")
    before = _addrs(dummy)
    args = failure.get("args", ["true"])
    extra = {k: v for k, v in failure.items() if k != "args"}
    res = sandbox.run(args, linux={"netDevices": {dummy: {"name": "ctr0"}}}, **extra)
    assert res.returncode != 0, res
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert _exists(dummy), "the device died with the failed container"
    assert _addrs(dummy) == before
    assert _flags(dummy) & 0x1
    assert rt.list_ids() == []


def test_device_named_by_its_altname(sandbox: Sandbox, dummy: str) -> None:
    """The kernel (and runc's netlink lookup) finds a device by an alternative name; the
    runtime's check read /sys/class/net, which lists primary names only, and refused it
    as "no such device on the host" (review rev18)."""
    alt = f"pyalt{os.getpid() % 100000}"
    _ip("link", "property", "add", "dev", dummy, "altname", alt)
    out = sandbox.sh_ok(NETDEV_SCRIPT.format(n="ctr0"),
                        linux={"netDevices": {alt: {"name": "ctr0"}}})
    assert "inet 192.0.2.10/24" in out, out


def test_device_named_by_its_altname_comes_home_under_its_name(
        sandbox: Sandbox, dummy: str) -> None:
    """A failure after the move sends the device home under its primary name: renaming it
    to the altname the config used fails (the altname moved with it)."""
    alt = f"pyalt{os.getpid() % 100000}"
    _ip("link", "property", "add", "dev", dummy, "altname", alt)
    before = _addrs(dummy)
    res = sandbox.run(["true"], linux={"netDevices": {alt: {"name": "ctr0"}}},
                      hooks={"createRuntime": [{"path": "/bin/false"}]})
    assert res.returncode == 1, res
    assert _exists(dummy) and _addrs(dummy) == before
