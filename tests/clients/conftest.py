"""Session fixtures that start real container engines on the runtime under test.

Each daemon starts once per session (they are the slow part) and only if a selected test needs it.
The runtime comes from $PYRUNC_BIN (default: `pyrunc` on PATH); `PYRUNC_BIN=/usr/sbin/runc` runs the
same suite against runc to prove the tests themselves. See README.md in this directory.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any, Generator, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests/: rootless_user

from clients_adapters import CtrEngine, DockerEngine, Engine, PodmanEngine  # noqa: E402
from rootless_user import rootless_user  # noqa: E402,F401  (the shared test user)
from clients_support import (  # noqa: E402
    CommandTimeout,
    DOCKER_CLI,
    DOCKER_IMAGE_REF,
    IMAGE_REF,
    PODMAN_IMAGE_REF,
    Containerd,
    Dockerd,
    MountNamespace,
    Podman,
    Runtime,
    build_image_archive,
    build_rootfs_tar,
    close_namespace,
    detect_runtime,
    process_identity,
    reap_stale_sessions,
    session_trees,
)

HERE = Path(__file__).resolve().parent
ENGINES = ("containerd", "docker", "podman")
# After this many hung commands through one engine, its remaining tests error at once: a wedged
# runtime would otherwise cost a full command timeout per test, and CI has 30 minutes for everything.
MAX_TIMEOUTS = int(os.environ.get("PYRUNC_CLIENTS_MAX_TIMEOUTS", "3"))
_timeouts: dict[str, int] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clients: drives real container engines (containerd, dockerd, podman)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/clients, so `-m "not clients"` drops the whole directory."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.clients)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """On failure, attach the runtime calls the engine made for this test's containers: the first
    thing anyone debugging the runtime wants to see."""
    outcome = yield
    report = outcome.get_result()
    eng: Engine | None = getattr(item, "_clients_engine", None)
    if eng is not None and call.excinfo is not None and call.excinfo.errisinstance(CommandTimeout):
        _timeouts[eng.name] = _timeouts.get(eng.name, 0) + 1
    if report.when == "call" and report.failed and eng is not None:
        try:
            text = eng.diagnostics()
        except Exception as exc:  # noqa: BLE001
            text = f"(could not collect: {exc!r})"
        report.sections.append((f"runtime calls made by {eng.name}", text or "(none recorded)"))


def _missing(*tools: str) -> list[str]:
    return [t for t in tools if not (os.path.isabs(t) and os.access(t, os.X_OK)) and shutil.which(t) is None]


@pytest.fixture(scope="session")
def clients_token() -> str:
    """Session-unique tag in every cgroup and namespace name, so cleanup can never hit others' ones."""
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def clients_workdir(clients_token: str) -> Iterator[Path]:
    """One short temp dir for everything (unix socket paths must stay under 108 bytes).

    Removed at the end unless PYRUNC_CLIENTS_KEEP=1 (logs, runtime-calls.log) or a mount is still
    under it (then removing across it would be wrong; we say so instead).
    """
    if os.geteuid() != 0:
        pytest.skip("client engine tests need root")
    missing = _missing("unshare", "nsenter", "script", "busybox")
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)} (tests/clients/setup.sh installs them)")
    reap_stale_sessions(clients_token)
    path = Path(tempfile.mkdtemp(prefix=f"prc-{clients_token}-", dir="/tmp"))
    # lets a later session clean up if this one is killed before its teardown
    (path / "owner").write_text(f"{process_identity()}\n")
    yield path
    if os.environ.get("PYRUNC_CLIENTS_KEEP") == "1":
        print(f"\nkept {path}")
        return
    with open("/proc/self/mountinfo") as f:
        if any(str(path) in line.split()[4] for line in f):
            warnings.warn(f"not removing {path}: something is still mounted under it")
            return
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def runtime(clients_workdir: Path) -> Runtime:
    """The runtime under test ($PYRUNC_BIN), wrapped to record its calls unless PYRUNC_CLIENTS_TRACE=0."""
    binary = os.environ.get("PYRUNC_BIN") or shutil.which("pyrunc")
    if not binary or not (shutil.which(binary) or os.access(binary, os.X_OK)):
        pytest.skip("no runtime to test: set PYRUNC_BIN (e.g. PYRUNC_BIN=/usr/sbin/runc) or put pyrunc on PATH")
    return detect_runtime(binary, clients_workdir, trace=os.environ.get("PYRUNC_CLIENTS_TRACE", "1") != "0")


@pytest.fixture(scope="session")
def mount_ns(clients_workdir: Path, clients_token: str) -> Iterator[MountNamespace]:
    """The private mount namespace all engines run in. Its teardown is the backstop: whatever is still
    in it is killed by pid, and the session's cgroup trees are emptied and removed."""
    ns = MountNamespace()
    ns.start()
    try:
        yield ns
    finally:
        # podman 4.3 always writes its blob-info cache there; anything else is news worth a warning.
        close_namespace(ns, session_trees(clients_token), ["/var/lib/containers/cache/"])


@pytest.fixture(scope="session")
def image_files(clients_workdir: Path) -> tuple[Path, Path]:
    """(rootfs.tar, image.tar): the busybox rootfs and the OCI layout archive made from it."""
    rootfs = clients_workdir / "rootfs.tar"
    archive = clients_workdir / "image.tar"
    build_rootfs_tar(rootfs)
    build_image_archive(rootfs, archive)
    return rootfs, archive


@pytest.fixture(scope="session")
def containerd(clients_workdir: Path, mount_ns: MountNamespace, runtime: Runtime, clients_token: str,
               image_files: tuple[Path, Path]) -> Iterator[Containerd]:
    missing = _missing("containerd", "ctr", "containerd-shim-runc-v2")
    if missing:
        pytest.skip(f"containerd not installed ({', '.join(missing)}): run tests/clients/setup.sh")
    cd = Containerd(clients_workdir / "containerd", mount_ns, runtime, f"pyrunc-clients-{clients_token}")
    try:
        cd.start()
        cd.import_image(image_files[1])
        yield cd
    finally:
        try:
            if not _timeouts.get("containerd"):
                cd.remove_all()
        finally:
            cd.stop()


@pytest.fixture(scope="session")
def dockerd(clients_workdir: Path, mount_ns: MountNamespace, runtime: Runtime, containerd: Containerd,
            clients_token: str, image_files: tuple[Path, Path]) -> Iterator[Dockerd]:
    missing = _missing("dockerd", DOCKER_CLI)
    if missing:
        pytest.skip(f"docker not installed ({', '.join(missing)}): run tests/clients/setup.sh")
    dk = Dockerd(clients_workdir / "docker", mount_ns, runtime, containerd,
                 f"/pyrunc-clients-{clients_token}-docker")
    try:
        dk.start()
        dk.import_image(image_files[1], image_files[0])
        yield dk
    finally:
        try:
            if not _timeouts.get("docker"):
                dk.remove_all()
        finally:
            dk.stop()


@pytest.fixture(scope="session")
def podman(clients_workdir: Path, mount_ns: MountNamespace, runtime: Runtime, clients_token: str,
           image_files: tuple[Path, Path]) -> Iterator[Podman]:
    missing = _missing("podman", "conmon")
    if missing:
        pytest.skip(f"podman not installed ({', '.join(missing)}): run tests/clients/setup.sh")
    pm = Podman(clients_workdir / "podman", mount_ns, runtime, f"/pyrunc-clients-{clients_token}-podman")
    pm.setup()
    try:
        pm.import_image(image_files[0])
        yield pm
    finally:
        if not _timeouts.get("podman"):
            pm.remove_all()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, clients_workdir: Path) -> Iterator[Engine]:
    """Each flow once per engine; only the daemons of selected engines are started."""
    if _timeouts.get(request.param, 0) >= MAX_TIMEOUTS:
        pytest.fail(f"{request.param}: {_timeouts[request.param]} commands already hung through this "
                    f"runtime; not waiting on more (PYRUNC_CLIENTS_MAX_TIMEOUTS)", pytrace=False)
    eng: Engine
    if request.param == "containerd":
        cd = request.getfixturevalue("containerd")
        eng = CtrEngine(cd, IMAGE_REF, clients_workdir)
    elif request.param == "docker":
        eng = DockerEngine(request.getfixturevalue("dockerd"), DOCKER_IMAGE_REF, clients_workdir)
    else:
        eng = PodmanEngine(request.getfixturevalue("podman"), PODMAN_IMAGE_REF, clients_workdir)
    request.node._clients_engine = eng
    hung_before = _timeouts.get(request.param, 0)
    try:
        yield eng
    finally:
        # After a hang, cleanup through the same runtime would hang too: leave it to the session
        # backstop (everything in the mount namespace and our cgroups is killed by pid).
        if _timeouts.get(request.param, 0) == hung_before:
            eng.cleanup()
