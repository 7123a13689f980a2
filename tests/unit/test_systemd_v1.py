"""The systemd driver on cgroup v1/hybrid hosts (runc's legacy manager): the properties it
sends, the order of its steps, which manager a recorded path gives back. systemd and the
hierarchies are fakes here (a tmp dir, a recording bus); what real systemd does with it is
tests/vm/run-systemd-hybrid.sh's (test_systemd_cgroup.py and the v1 tests of test_cgroups.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pyrunc.cgroups as cg
from pyrunc.cgroups import dbus, systemd as sd, systemd_v1
from pyrunc.cgroups.v1 import V1Manager
from pyrunc.errors import InvalidStateError, SpecError, UnsupportedError
from pyrunc.spec.config import DeviceRule, Resources

U64 = (1 << 64) - 1
SCOPE = "/system.slice/pyrunc-test-a.scope"


def test_v1_resource_properties_are_the_legacy_managers() -> None:
    r = Resources(memory_limit=64 << 20, memory_reservation=32 << 20, memory_swap=128 << 20,
                  cpu_shares=512, cpu_quota=50_000, cpu_period=100_000, cpu_cpus="0-1",
                  cpu_mems="0", pids_limit=42, blkio_weight=300)
    props = dict(sd.resource_properties(r, v1=True))
    assert props == {"MemoryLimit": ("t", 64 << 20), "CPUShares": ("t", 512),
                     "BlockIOWeight": ("t", 300), "CPUQuotaPeriodUSec": ("t", 100_000),
                     "CPUQuotaPerSecUSec": ("t", 500_000), "AllowedCPUs": ("ay", b"\x03"),
                     "AllowedMemoryNodes": ("ay", b"\x01"), "TasksMax": ("t", 42)}
    # v2's names are not sent on v1 (systemd 252 would take them and write nothing)
    v2 = dict(sd.resource_properties(r))
    assert "MemoryMax" in v2 and "CPUWeight" in v2 and "MemoryLimit" not in v2
    unlimited = dict(sd.resource_properties(Resources(memory_limit=-1, pids_limit=-1), v1=True))
    assert unlimited == {"MemoryLimit": ("t", U64), "TasksMax": ("t", U64)}


def test_v1_base_properties_account_block_io() -> None:
    props = dict(sd.base_properties("pyrunc-a.scope", "system.slice", v1=True))
    assert props["BlockIOAccounting"] == ("b", True) and "IOAccounting" not in props
    assert props["Delegate"] == ("b", True)
    assert "IOAccounting" in dict(sd.base_properties("pyrunc-a.scope", "system.slice"))


class FakeBus:
    states: dict[str, str] = {}  # unit -> ActiveState of what systemd already has

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def active_state(self, unit: str) -> str | None:
        return self.states.get(unit)

    def reset_failed(self, unit: str) -> None:
        self.log.append(("reset", unit))

    invocations: dict[str, str] = {}  # unit -> its InvocationID now

    def invocation_id(self, unit: str) -> str:
        return self.invocations.get(unit, "")

    job_result = "done"

    def start_transient_unit(self, unit: str, props: sd.Props, queued: Any = None) -> None:
        self.log.append(("start", unit, dict(props)))
        if queued is not None:
            queued()
        if self.job_result != "done":
            raise dbus.SystemError_(f"job for {unit} ended with {self.job_result!r}")

    def set_unit_properties(self, unit: str, props: sd.Props) -> None:
        self.log.append(("set", unit, dict(props)))

    def ping(self) -> None:
        self.log.append(("ping",))

    def stop_unit(self, unit: str) -> None:
        self.log.append(("stop", unit))

    def close(self) -> None:
        pass


@pytest.fixture
def fake_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], dict[str, str]]:
    """A hybrid host in a tmp dir: freezer (ours), memory and name=systemd (systemd's)."""
    mounts = {c: str(tmp_path / c) for c in ("freezer", "memory", "cpu", "name=systemd")}
    for mp in mounts.values():
        Path(mp, SCOPE.lstrip("/")).mkdir(parents=True)
    Path(mounts["freezer"], SCOPE.lstrip("/"), "freezer.state").write_text("THAWED")
    Path(mounts["cpu"], SCOPE.lstrip("/"), "cpu.cfs_period_us").write_text("100000\n")
    Path(mounts["cpu"], SCOPE.lstrip("/"), "cpu.cfs_quota_us").write_text("-1\n")
    log: list[Any] = []
    monkeypatch.setattr(FakeBus, "states", {})
    monkeypatch.setattr(FakeBus, "invocations", {})
    monkeypatch.setattr(FakeBus, "job_result", "done")
    monkeypatch.setattr(systemd_v1, "hierarchies", lambda: dict(mounts))
    monkeypatch.setattr(dbus, "connect", lambda user=False: FakeBus(log))
    monkeypatch.setattr(sd, "user_manager", lambda: False)
    monkeypatch.setattr(sd, "_start_placeholder", lambda: 4242)
    monkeypatch.setattr(sd.os, "kill", lambda pid, sig: log.append(("kill", pid)))

    def fake_set(self: V1Manager, r: Resources, update: bool = False) -> list[str]:
        state = Path(mounts["freezer"], SCOPE.lstrip("/"), "freezer.state").read_text()
        log.append(("files", update, state))
        return []
    monkeypatch.setattr(V1Manager, "set", fake_set)
    return log, mounts


def test_create_starts_the_unit_then_makes_the_other_hierarchies(fake_host: Any) -> None:
    log, mounts = fake_host
    m = systemd_v1.SystemdV1Manager(SCOPE, "pyrunc-test-a.scope", "system.slice", new=True)
    assert m.path == "systemd:" + SCOPE and m.dirs()[0].endswith("freezer" + SCOPE)
    m.create()
    (step, unit, props), = log
    assert (step, unit) == ("start", "pyrunc-test-a.scope")
    assert props["PIDs"] == ("au", [4242]) and props["BlockIOAccounting"] == ("b", True)
    # at create nothing of the container runs: no freeze; the devices go to systemd first
    # and are applied (ping) before the files are written
    m.set(Resources(memory_limit=1 << 20, devices=()))
    assert [e[0] for e in log[1:]] == ["set", "ping", "files"]
    assert log[1][2]["DevicePolicy"] == ("s", "strict") and log[1][2]["MemoryLimit"] == ("t", 1 << 20)
    assert log[3] == ("files", False, "THAWED")


@pytest.mark.parametrize("state", ["active", "activating", "deactivating", "reloading"])
def test_create_refuses_a_unit_systemd_has_and_then_touches_nothing(fake_host: Any,
                                                                     state: str) -> None:
    """A slice systemd made as another unit's parent has no unit file, and StartTransientUnit
    would take it over; the failed create's cleanup must not stop it either (rev20b F1)."""
    log, mounts = fake_host
    FakeBus.states["pyrunc-test-a.scope"] = state
    m = systemd_v1.SystemdV1Manager(SCOPE, "pyrunc-test-a.scope", "system.slice", new=True)
    with pytest.raises(InvalidStateError, match=f"already exists \\({state}\\)"):
        m.create()
    m.destroy()
    assert log == []
    assert all(Path(mp, SCOPE.lstrip("/")).is_dir() for mp in mounts.values())


def test_create_resets_a_failed_leftover_and_takes_an_inactive_name(fake_host: Any) -> None:
    log, mounts = fake_host
    FakeBus.states["pyrunc-test-a.scope"] = "failed"
    m = systemd_v1.SystemdV1Manager(SCOPE, "pyrunc-test-a.scope", "system.slice", new=True)
    m.create()
    assert [e[:2] for e in log] == [("reset", "pyrunc-test-a.scope"), ("start", "pyrunc-test-a.scope")]
    log.clear()
    FakeBus.states["pyrunc-test-a.scope"] = "inactive"  # loaded, e.g. named by another's After=
    m2 = systemd_v1.SystemdV1Manager(SCOPE, "pyrunc-test-a.scope", "system.slice", new=True)
    m2.create()
    assert [e[0] for e in log] == ["start"]
    for f in Path(mounts["freezer"]).rglob("*.state"):
        f.unlink()
    for f in Path(mounts["cpu"]).rglob("cpu.*"):
        f.unlink()
    m2.destroy()  # started by this create: stopped
    assert log[-1] == ("stop", "pyrunc-test-a.scope")


def test_a_unit_systemd_made_is_stopped_even_when_its_start_job_failed(fake_host: Any) -> None:
    """Once StartTransientUnit queued the job the unit exists and is this create's: a job that
    times out or fails must not leave it (a slice would stay active for ever)."""
    log, mounts = fake_host
    FakeBus.job_result = "timeout"
    recorded: list[bool] = []
    m = systemd_v1.SystemdV1Manager(SCOPE, "pyrunc-test-a.scope", "system.slice", new=True)
    m.on_started = lambda: recorded.append(True)
    with pytest.raises(dbus.SystemError_, match="timeout"):
        m.create()
    assert recorded == [True]  # the state has the path: a later delete stops it too
    for f in Path(mounts["freezer"]).rglob("*.state"):
        f.unlink()
    for f in Path(mounts["cpu"]).rglob("cpu.*"):
        f.unlink()
    m.destroy()
    assert log[-1] == ("stop", "pyrunc-test-a.scope")


def test_delete_leaves_a_unit_started_again_since_alone(fake_host: Any) -> None:
    """The state keeps the InvocationID of the start create made; a unit of that name
    started since (another container, same cgroupsPath) is another's: no kill, no stop."""
    log, mounts = fake_host
    FakeBus.invocations["pyrunc-test-a.scope"] = "aa" * 16
    m = systemd_v1.SystemdV1Manager(SCOPE, "pyrunc-test-a.scope", "system.slice", new=True)
    m.create()
    assert m.invocation == "aa" * 16
    FakeBus.invocations["pyrunc-test-a.scope"] = "bb" * 16
    loaded = systemd_v1.SystemdV1Manager(SCOPE, invocation=m.invocation)
    assert loaded.replaced()
    log.clear()
    with pytest.raises(sd.UnitReplacedError, match="started again"):
        loaded.destroy()
    assert log == [] and all(Path(mp, SCOPE.lstrip("/")).is_dir() for mp in mounts.values())
    # the same start, or none recorded (a state from before), or the unit gone: stopped
    for now, recorded in (("aa" * 16, "aa" * 16), ("bb" * 16, ""), ("", "aa" * 16)):
        FakeBus.invocations["pyrunc-test-a.scope"] = now
        assert not systemd_v1.SystemdV1Manager(SCOPE, invocation=recorded).replaced()


def test_update_of_devices_freezes_around_systemd(fake_host: Any) -> None:
    log, _ = fake_host
    m = systemd_v1.SystemdV1Manager(SCOPE)
    m.set(Resources(devices=(DeviceRule(True, "c", 1, 3, "rwm"),)), update=True)
    assert [e[0] for e in log] == ["set", "ping", "files"]
    assert log[2] == ("files", True, "THAWED")   # thawed again before the files
    # frozen while systemd had it: the freezer file saw FROZEN between
    states: list[str] = []
    orig = m.freeze
    m.freeze = lambda frozen: (states.append(str(frozen)), orig(frozen))  # type: ignore[method-assign]
    m.set(Resources(devices=(DeviceRule(True, "c", 1, 3, "rwm"),)), update=True)
    assert states == ["True", "False"]
    # no rules in the update: the devices are kept, nothing is frozen, no ping
    log.clear(); states.clear()
    m.set(Resources(pids_limit=7), update=True)
    assert [e[0] for e in log] == ["set", "files"] and states == []
    # a paused container stays paused
    m.freeze(True)
    states.clear()
    m.set(Resources(devices=()), update=True)
    assert states == [] and m.is_frozen()


def test_update_of_the_quota_alone_keeps_the_period(fake_host: Any) -> None:
    log, _ = fake_host
    m = systemd_v1.SystemdV1Manager(SCOPE)
    m.set(Resources(cpu_quota=20_000), update=True)
    assert log[0][2]["CPUQuotaPeriodUSec"] == ("t", 100_000)
    assert log[0][2]["CPUQuotaPerSecUSec"] == ("t", 200_000)
    log.clear()
    m.set(Resources(cpu_period=50_000), update=True)   # the quota file says -1: unlimited
    assert log[0][2]["CPUQuotaPerSecUSec"] == ("t", U64)


def test_unified_is_refused_before_systemd_is_asked(fake_host: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = fake_host
    monkeypatch.undo()  # the real V1Manager.set: its refusal
    m = V1Manager({}, {})
    with pytest.raises(SpecError, match="cannot use unified on cgroup v1"):
        systemd_v1.SystemdV1Manager.set(m, Resources(unified=(("memory.high", "1"),)))  # type: ignore[arg-type]
    assert log == []


def test_join_kills_the_placeholder_after_the_unified_hierarchy(fake_host: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    log, mounts = fake_host
    joined: list[str] = []
    monkeypatch.setattr(V1Manager, "join", lambda self, defer=False: joined.append(f"v1 {defer}"))
    monkeypatch.setattr(V1Manager, "adopt", lambda self, pid: joined.append(f"unified {pid}"))
    m = systemd_v1.SystemdV1Manager(SCOPE)
    m._placeholder = 4242
    m.join(defer=False)
    assert joined == ["v1 False"] and log == [("kill", 4242)]
    # hybrid, deferred: the placeholder lives until the init is in the unified hierarchy too
    m._mounts[""] = mounts["memory"]
    m._paths[""] = SCOPE
    m._placeholder = 4243
    log.clear(); joined.clear()
    m.join(defer=True)
    assert log == []
    m.adopt(99)
    assert joined == ["v1 True", "unified 99"] and log == [("kill", 4243)]


def test_destroy_stops_the_unit_then_removes_what_systemd_left(fake_host: Any) -> None:
    log, mounts = fake_host
    for f in Path(mounts["freezer"]).rglob("*.state"):
        f.unlink()
    for f in Path(mounts["cpu"]).rglob("cpu.*"):
        f.unlink()
    m = systemd_v1.SystemdV1Manager(SCOPE)
    m.destroy()
    assert log == [("stop", "pyrunc-test-a.scope")]
    # what systemd does not manage (freezer here) is removed after StopUnit, as the rest
    assert not any(Path(mp, SCOPE.lstrip("/")).exists() for mp in mounts.values())
    assert Path(mounts["freezer"], "system.slice").is_dir()  # the slice's: not the container's


def test_load_gives_the_manager_of_the_host(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(sd, "user_manager", lambda: False)
    monkeypatch.setattr(systemd_v1, "hierarchies", lambda: {"memory": str(tmp_path)})
    monkeypatch.setattr(cg, "is_v2_host", lambda: False)
    m = cg.load("systemd:" + SCOPE)
    assert isinstance(m, systemd_v1.SystemdV1Manager) and m.path == "systemd:" + SCOPE
    assert m.unit == "pyrunc-test-a.scope" and m._dir("memory") == str(tmp_path) + SCOPE
    monkeypatch.setattr(cg, "is_v2_host", lambda: True)
    m2 = cg.load("systemd:" + SCOPE)
    assert type(m2) is sd.SystemdManager and m2.path == "systemd:" + SCOPE


def test_rootless_is_refused_on_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    """As runc's legacy manager: one line, the way out named."""
    monkeypatch.setattr(sd.os.path, "isdir", lambda p: p == "/run/systemd/system")
    monkeypatch.setattr(cg, "is_v2_host", lambda: False)
    monkeypatch.setattr(sd, "user_manager", lambda: True)
    with pytest.raises(UnsupportedError, match="rootless systemd cgroup driver on cgroup v1") as e:
        sd.check_host()
    assert "\n" not in str(e.value) and "cgroupfs" in str(e.value)
    monkeypatch.setattr(sd, "user_manager", lambda: False)
    sd.check_host()  # root: fine on v1 now
