"""`spec`: writes runc's default config.json (usable as is) and never overwrites one."""

from __future__ import annotations

import json

from .conftest import Sandbox
from .helpers import Runtime


def test_spec_writes_default_config(sandbox: Sandbox, rt: Runtime) -> None:
    """`spec` in a directory writes config.json there, with runc's defaults."""
    d = sandbox.tmp / "spec-cwd"
    d.mkdir()
    res = rt.run_cmd("spec", cwd=d)
    assert res.returncode == 0, res.stderr
    cfg = json.loads((d / "config.json").read_text())
    assert isinstance(cfg["ociVersion"], str) and cfg["ociVersion"][0].isdigit()
    assert cfg["process"]["args"] == ["sh"]
    assert cfg["process"]["cwd"] == "/"
    assert cfg["process"]["terminal"] is True
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert [n["type"] for n in cfg["linux"]["namespaces"]][:5] == [
        "pid", "network", "ipc", "uts", "mount"]
    dests = [m["destination"] for m in cfg["mounts"]]
    for d_ in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"):
        assert d_ in dests
    caps = cfg["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        assert sorted(caps[kind]) == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert "/proc/kcore" in cfg["linux"]["maskedPaths"]
    assert "/proc/sys" in cfg["linux"]["readonlyPaths"]


def test_spec_cgroup_namespace_only_on_a_pure_v2_host(sandbox: Sandbox, rt: Runtime) -> None:
    """runc's `spec` adds a cgroup namespace only on a pure cgroup v2 host (a v1 or hybrid
    host's containers see their cgroups through the bound host directories instead)."""
    d = sandbox.tmp / "spec-cgroupns"
    d.mkdir()
    rt.run_cmd("spec", cwd=d, check=True)
    types = [n["type"] for n in json.loads((d / "config.json").read_text())["linux"]["namespaces"]]
    with open("/proc/self/mountinfo") as f:
        pure_v2 = any(line.split(" - ")[0].split()[4] == "/sys/fs/cgroup"
                      and line.split(" - ")[1].startswith("cgroup2 ") for line in f)
    assert ("cgroup" in types) == pure_v2, (types, pure_v2)
    assert types[:5] == ["pid", "network", "ipc", "uts", "mount"]


def test_spec_bundle_flag(sandbox: Sandbox, rt: Runtime) -> None:
    """`spec --bundle DIR` writes DIR/config.json."""
    d = sandbox.tmp / "spec-bundle"
    d.mkdir()
    res = rt.run_cmd("spec", "--bundle", str(d))
    assert res.returncode == 0, res.stderr
    assert json.loads((d / "config.json").read_text())["root"]["path"] == "rootfs"


def test_spec_refuses_to_overwrite(sandbox: Sandbox, rt: Runtime) -> None:
    """A second `spec` fails and leaves the existing config.json byte for byte."""
    d = sandbox.tmp / "spec-twice"
    d.mkdir()
    (d / "config.json").write_text('{"mine": true}\n')
    res = rt.run_cmd("spec", cwd=d)
    assert res.returncode == 1
    assert "exist" in res.stderr.lower(), res.stderr
    assert (d / "config.json").read_text() == '{"mine": true}\n'


def test_spec_output_runs(sandbox: Sandbox, rt: Runtime) -> None:
    """The generated config is valid for the runtime itself: with only args/terminal and a
    cgroupsPath changed, it runs a container."""
    b = sandbox.bundle(["true"])
    b.config_path.unlink()
    rt.run_cmd("spec", "--bundle", str(b.path), check=True)
    cfg = json.loads(b.config_path.read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["cat", "/proc/sys/kernel/hostname"]
    cfg["process"]["env"].append(f"PYRUNC_TEST_SANDBOX={sandbox.id}")
    cfg["linux"]["cgroupsPath"] = b.config["linux"]["cgroupsPath"]
    b.config = cfg
    b.write()
    res = rt.run(b, sandbox.new_id())
    assert res.returncode == 0, res.stderr
    assert res.stdout == cfg["hostname"] + "\n"
