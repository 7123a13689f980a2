"""Checks of the harness itself and of the engine-to-runtime wiring, so that a misconfiguration
shows up as one clear failure instead of every flow failing (or, worse, passing on the wrong runtime).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from clients_support import (
    PODMAN_IMAGE_REF,
    Dockerd,
    Podman,
    Runtime,
    build_image_archive,
    build_rootfs_tar,
    unique_name,
)

pytestmark = pytest.mark.clients


def test_image_archive_is_a_consistent_oci_layout(tmp_path: Path) -> None:
    """index.json -> manifest -> config/layer digests and sizes match their blobs; docker's
    manifest.json points at the same blobs. No engine needed, so this runs without root."""
    rootfs, archive = tmp_path / "rootfs.tar", tmp_path / "image.tar"
    build_rootfs_tar(rootfs)
    digests = build_image_archive(rootfs, archive)
    with tarfile.open(archive) as tf:
        files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, blob in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    (desc,) = json.loads(files["index.json"])["manifests"]
    manifest = json.loads(files[f"blobs/sha256/{desc['digest'][7:]}"])
    assert manifest["config"]["digest"] == f"sha256:{digests['config']}"
    (layer,) = manifest["layers"]
    assert layer["size"] == len(files[f"blobs/sha256/{digests['layer']}"])
    config = json.loads(files[f"blobs/sha256/{digests['config']}"])
    assert config["rootfs"]["diff_ids"] == [f"sha256:{digests['layer']}"]  # uncompressed layer
    (docker_manifest,) = json.loads(files["manifest.json"])
    assert docker_manifest["Config"] == f"blobs/sha256/{digests['config']}"
    with tarfile.open(rootfs) as tf:
        names = set(tf.getnames())
    assert {"bin/busybox", "bin/sh", "etc/passwd"} <= names


def test_podman_passes_json_log_flags(podman: Podman, runtime: Runtime) -> None:
    """conmon only adds `--log-format=json --log FILE` for runtimes whose file name podman knows;
    containers.conf's runtime_supports_json must make that true for the runtime under test, or
    podman shows users the runtime's raw stderr instead of its logged error."""
    if runtime.trace_log is None:
        pytest.skip("needs the call trace (PYRUNC_CLIENTS_TRACE=1)")
    start = runtime.trace_log.stat().st_size
    name = unique_name("prc-json")
    # Whether the container then runs is the flow tests' business: only the flags matter here.
    podman.podman("run", "--rm", "--cgroup-parent", podman.cgroup_parent, "--name", name,
                  PODMAN_IMAGE_REF, "true", check=False)
    with open(runtime.trace_log) as f:
        f.seek(start)
        creates = [ln for ln in f.read().splitlines() if " create " in ln]
    assert creates, "podman never called the runtime"
    assert all("--log-format=json" in ln for ln in creates), "\n".join(creates)


def test_dockerd_uses_and_understands_runtime(dockerd: Dockerd) -> None:
    """docker info lists the runtime as the default, and dockerd could parse `RUNTIME --version`
    (it expects runc's lines: "runc version X", "commit: Y", "spec: Z"; otherwise it reports N/A)."""
    info = json.loads(dockerd.docker("info", "--format", "{{json .}}").stdout)
    assert info["DefaultRuntime"] == dockerd.runtime_name
    assert info["Runtimes"][dockerd.runtime_name]["path"] == dockerd.runtime.path
    assert info["RuncCommit"]["ID"] not in ("", "N/A"), (
        f"dockerd could not parse `{dockerd.runtime.real_path} --version`:\n{dockerd.runtime.version}")
