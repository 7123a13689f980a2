"""Fixtures for the integration suite.

Each test gets a `Sandbox`: its own runtime `--root`, JSON `--log`, bundles with their own
rootfs copies and their own `linux.cgroupsPath` (`/pyrunc-test/<uuid>`). Teardown runs
`delete --force` on every container, then checks that nothing is left (state dirs, mounts
under the test's tmp dir, the test's cgroup dirs, processes) -- a leak fails the test --
and finally removes leftovers by force so one broken test cannot poison the next.

Run against the real runc to check the tests themselves:
    PYRUNC_BIN=/usr/sbin/runc python3 -m pytest tests/integration -q -m 'not pyrunc_only'
(`runc_bug` tests then run as strict xfails, `pyrunc_only` ones are skipped; add
`-m 'not pyrunc_only and not runc_bug'` to leave both out.) Against pyrunc:
    PYRUNC_BIN=/opt/pyrunc/bin/pyrunc python3 -m pytest tests/integration -q
Sandboxes live in /dev/shm (see helpers.work_base; $PYRUNC_TEST_TMPDIR overrides); each
test's runtime log is copied to its pytest tmp dir as runtime.log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    CGROUP_DRIVER,
    CGROUP_PARENT,
    CMD_TIMEOUT,
    Bundle,
    Leaks,
    Runtime,
    _killpg,
    build_rootfs_cache,
    cgroup_dirs,
    cgroup_hierarchies,
    copy_rootfs,
    deep_merge,
    default_config,
    describe_pid,
    force_rmdir_cgroup,
    leaked_units,
    new_cgroups_path,
    iter_state_dirs,
    mounts_under,
    new_id,
    process_identity,
    reap_children,
    reap_orphan_cgroups,
    reap_stale_netns,
    reap_stale_sandboxes,
    sandbox_pids,
    set_child_subreaper,
    stop_units,
    walk_unmount,
    work_base,
)

TESTS_DIR = Path(__file__).resolve().parent.parent
CACHE_DIR = TESTS_DIR / ".cache"


def pytest_configure(config: pytest.Config) -> None:
    if CGROUP_DRIVER not in ("cgroupfs", "systemd"):
        raise pytest.UsageError(f"PYRUNC_TEST_CGROUP_DRIVER={CGROUP_DRIVER!r}: "
                                "expected cgroupfs or systemd")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything here `integration`; skip it all, with the reason, when not root."""
    here = Path(__file__).resolve().parent
    skip_root = pytest.mark.skip(reason="integration tests need root (they create containers)")
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(skip_root)


@pytest.fixture(scope="session")
def rootfs_cache() -> Path:
    """A busybox rootfs built once and cached under tests/.cache/."""
    if not os.path.exists("/usr/bin/busybox"):
        pytest.skip("busybox-static (/usr/bin/busybox) is not installed")
    return build_rootfs_cache(CACHE_DIR)


@pytest.fixture(scope="session", autouse=True)
def _session_host_state() -> Iterator[None]:
    """Adopt orphaned container inits so they can be reaped (PID 1 here may not reap);
    clean up sandboxes left by sessions that were killed before their teardown; at the
    end remove the shared `/pyrunc-test` cgroup parent that runc leaves behind in
    every hierarchy (only once, at the end: removing it between tests could race with a
    runtime creating a child under it; rmdir fails harmlessly while anything uses it)."""
    if os.geteuid() == 0:
        set_child_subreaper()
        reap_stale_sandboxes(work_base())
        reap_stale_netns(work_base())
        reap_orphan_cgroups(work_base())
    yield
    reap_children()
    if os.geteuid() == 0:
        for h in cgroup_hierarchies():
            try:
                os.rmdir(h / CGROUP_PARENT)
            except OSError:
                pass


class Sandbox:
    """Everything one test owns: runtime root, log, bundles, cgroups, host mounts, netns."""

    def __init__(self, pytest_tmp: Path, binary: str, rootfs_cache: Path) -> None:
        self.id = uuid.uuid4().hex[:16]
        #: the test's private work dir (bundles, host dirs, --root, log), see work_base()
        self.tmp = work_base() / f"pyrunc-test-{self.id}"
        self.tmp.mkdir(mode=0o755)
        # lets a later session clean up if this one is killed before teardown
        (self.tmp / "owner").write_text(f"{process_identity()}\n")
        self.pytest_tmp = pytest_tmp
        root = self.tmp / "state"
        root.mkdir()
        self.rt = Runtime(binary, root, self.tmp / "runtime.log", self.id)
        self.rootfs_cache = rootfs_cache
        self.bundles: list[Bundle] = []
        self.own_mounts: list[str] = []
        self.netns: list[str] = []
        self.ids: set[str] = set()

    # factories ------------------------------------------------------------------------

    def bundle(
        self,
        args: Sequence[str] = ("true",),
        *,
        name: str | None = None,
        process: Mapping[str, Any] | None = None,
        linux: Mapping[str, Any] | None = None,
        extra_mounts: Sequence[Mapping[str, Any]] = (),
        **top: Any,
    ) -> Bundle:
        """A bundle with a fresh rootfs copy and a config equal to `runc spec` except for
        `args`; `process`/`linux`/top-level keyword overrides are deep-merged (None deletes
        a key, lists replace), `extra_mounts` are appended."""
        name = name or f"b{len(self.bundles)}"
        path = self.tmp / "bundles" / name
        path.mkdir(parents=True)
        copy_rootfs(self.rootfs_cache, path / "rootfs")
        spec_path, cg = new_cgroups_path()
        config = default_config(args, spec_path, self.id)
        patch: dict[str, Any] = dict(top)
        if process:
            patch["process"] = process
        if linux:
            patch["linux"] = linux
        deep_merge(config, patch)
        config["mounts"].extend(dict(m) for m in extra_mounts)
        b = Bundle(path, config, cg)
        b.write()
        self.bundles.append(b)
        return b

    def host_dir(self, name: str) -> Path:
        """A host directory inside the test's tmp dir (for bind mounts)."""
        d = self.tmp / "host" / name
        d.mkdir(parents=True)
        return d

    def mount_tmpfs(self, path: Path) -> None:
        """Mount a tmpfs on the host at `path` (owned by this test, undone at teardown)."""
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pyrunc-test", str(path)],
                       check=True)
        self.own_mounts.append(str(path))

    def add_netns(self) -> str:
        """`ip netns add` a fresh network namespace; returns its /run/netns path."""
        name = f"pyrunc-test-{self.id}-{len(self.netns)}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self.netns.append(name)
        return f"/run/netns/{name}"

    # shortcuts ------------------------------------------------------------------------

    def run(self, args: Sequence[str], *run_flags: str, timeout: float = CMD_TIMEOUT,
            **overrides: Any) -> subprocess.CompletedProcess[str]:
        """Make a bundle for `args` (with overrides) and `run` it in the foreground."""
        b = self.bundle(args, **overrides)
        return self.rt.run(b, self.new_id(), *run_flags, timeout=timeout)

    def sh(self, script: str, **overrides: Any) -> subprocess.CompletedProcess[str]:
        """`run` a `sh -c script` container and return the result (not checked)."""
        return self.run(["sh", "-c", script], **overrides)

    def sh_ok(self, script: str, **overrides: Any) -> str:
        """`run` a `sh -c script` container, assert exit 0, return its stdout."""
        res = self.sh(script, **overrides)
        assert res.returncode == 0, (
            f"container exited {res.returncode}\nstdout: {res.stdout!r}\nstderr: {res.stderr!r}"
        )
        return res.stdout

    def read_file(self, path: str, **overrides: Any) -> str:
        """Contents of `path` as seen from inside a fresh container."""
        res = self.run(["cat", path], **overrides)
        assert res.returncode == 0, f"cat {path} exited {res.returncode}: {res.stderr!r}"
        return res.stdout

    def new_id(self) -> str:
        """A fresh container id, remembered for teardown."""
        cid = new_id()
        self.ids.add(cid)
        return cid

    # leak checking --------------------------------------------------------------------

    def leaks(self, settle: float = 2.0) -> Leaks:
        """What is left now: state dirs in --root, mounts under the tmp dir (other than the
        test's own host mounts), the bundles' cgroup dirs, and the test's processes. Waits up
        to `settle` seconds for things that are already on their way out."""
        deadline = time.monotonic() + settle
        while True:
            reap_children()
            leaks = Leaks(
                state_dirs=[p.name for p in iter_state_dirs(self.rt.root) if p.is_dir()],
                mounts=[m for p in (self.tmp, self.pytest_tmp) for m in mounts_under(p)
                        if m not in self.own_mounts],
                cgroups=[str(d) for b in self.bundles for d in cgroup_dirs(b.cgroups_path)]
                + leaked_units(b.cgroups_path for b in self.bundles),
                processes=[describe_pid(p) for p in sandbox_pids(self.id, self.tmp)],
            )
            if not leaks or time.monotonic() >= deadline:
                return leaks
            time.sleep(0.05)

    def known_ids(self) -> set[str]:
        ids = set(self.ids)
        ids.update(p.name for p in iter_state_dirs(self.rt.root) if p.is_dir())
        try:
            res = self.rt.run_cmd("list", "-q", timeout=10)
            if res.returncode == 0:
                ids.update(res.stdout.split())
        except subprocess.TimeoutExpired:
            pass
        return ids

    def teardown(self) -> Leaks:
        """Delete every container, check for leaks, then remove leftovers by force."""
        for cid in sorted(self.known_ids()):
            try:
                self.rt.run_cmd("delete", "--force", cid, timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for proc in self.rt.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _killpg(proc)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass  # unkillable (stuck in the kernel): the leak check reports it
            for stream in (proc.stdout, proc.stderr, proc.stdin):
                if stream is not None:
                    stream.close()
        walk_unmount(self.own_mounts)
        self.own_mounts.clear()
        for name in self.netns:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)

        leaks = self.leaks()
        self.force_cleanup()
        return leaks

    def force_cleanup(self) -> None:
        """Kill, unmount and remove whatever is left, whatever the runtime did."""
        for pid in sandbox_pids(self.id, self.tmp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for b in self.bundles:
            for d in cgroup_dirs(b.cgroups_path):
                force_rmdir_cgroup(d)
        stop_units(b.cgroups_path for b in self.bundles)
        reap_children()
        walk_unmount(mounts_under(self.tmp) + mounts_under(self.pytest_tmp))
        if self.rt.log.exists():  # keep the runtime's log with pytest's tmp dirs
            shutil.copy(self.rt.log, self.pytest_tmp / "runtime.log")
        if not mounts_under(self.tmp):
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def sandbox(tmp_path: Path, runtime_bin: str, rootfs_cache: Path) -> Iterator[Sandbox]:
    """A per-test sandbox; fails the test at teardown if the runtime leaked anything."""
    sb = Sandbox(tmp_path, runtime_bin, rootfs_cache)
    yield sb
    leaks = sb.teardown()
    if leaks:
        pytest.fail(f"runtime left things behind after delete --force: {leaks.report()}",
                    pytrace=False)


@pytest.fixture
def rt(sandbox: Sandbox) -> Runtime:
    """The runtime CLI bound to this test's --root and --log."""
    return sandbox.rt


@pytest.fixture
def bundle(sandbox: Sandbox) -> Callable[..., Bundle]:
    """The bundle factory, `bundle(args, process=..., linux=..., extra_mounts=..., **top)`."""
    return sandbox.bundle
