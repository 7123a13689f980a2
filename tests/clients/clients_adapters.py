"""One interface over ctr, docker and podman, so each flow is written once and runs through every
engine that has it. An engine without a flow (ctr 1.6 has no `update` or `stop`) skips with a reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pytest

from clients_support import (
    Containerd,
    Dockerd,
    MountNamespace,
    Podman,
    Result,
    Runtime,
    exit_code_from_ctr_delete,
    in_tty,
    parse_table_column,
    run,
    runtime_state,
    unique_name,
    wait_for,
)


class Engine:
    """A container engine as the tests see it. Names made by new_name() are removed at teardown."""

    name = "engine"
    # What the ENGINE itself puts around a runtime create failure (independent of the runtime).
    create_failed_marker = ""
    # Exit status of a foreground run whose entrypoint does not exist.
    missing_binary_status = 0
    # Flows this engine's CLI does not have, with the reason a test skips.
    lacks: dict[str, str] = {}

    def __init__(self, ns: MountNamespace, runtime: Runtime, image: str, workdir: Path) -> None:
        self.ns = ns
        self.runtime = runtime
        self.image = image
        self.workdir = workdir
        self.created: list[str] = []
        self.trace_start = runtime.trace_log.stat().st_size if runtime.trace_log else 0

    def require(self, flow: str) -> None:
        """Skip (before creating anything) when the engine has no such flow."""
        if flow in self.lacks:
            pytest.skip(self.lacks[flow])

    def new_name(self, tag: str) -> str:
        name = unique_name(f"prc-{tag}")
        self.created.append(name)
        return name

    # -- flows; every method fails the test (CommandFailed) unless documented otherwise --
    def run(self, name: str, cmd: Sequence[str], *, tty: bool = False, input: str | None = None,
            check: bool = False) -> Result:
        """Foreground `run --rm`; returns the client's result (exit status = container's)."""
        raise NotImplementedError

    def run_detached(self, name: str, cmd: Sequence[str]) -> None:
        raise NotImplementedError

    def run_with(self, name: str, cmd: Sequence[str], *flags: str) -> Result:
        """Foreground `run --rm FLAGS...` with the engine's own CLI flags (docker's and
        podman's agree on --pid host, --read-only, --tmpfs); not checked."""
        self.require("run_with")
        raise AssertionError("unreachable")

    def exec(self, name: str, cmd: Sequence[str], *, tty: bool = False) -> Result:
        raise NotImplementedError

    def status(self, name: str) -> str:
        """Normalised engine view: running, paused, stopped, or missing."""
        raise NotImplementedError

    def init_pid(self, name: str) -> int:
        raise NotImplementedError

    def runtime_id(self, name: str) -> str:
        """The id the engine gives the runtime (ctr: the name; docker/podman: the full hex id)."""
        raise NotImplementedError

    def runtime_root(self) -> Path | None:
        """The --root the engine gives the runtime (None: the runtime's default, as podman does)."""
        raise NotImplementedError

    def pause(self, name: str) -> None:
        raise NotImplementedError

    def resume(self, name: str) -> None:
        raise NotImplementedError

    def kill(self, name: str, signal: str) -> None:
        """Send a signal by name without the SIG prefix (TERM, KILL)."""
        raise NotImplementedError

    def stop(self, name: str, grace: int) -> Result:
        raise NotImplementedError

    def wait_exit(self, name: str) -> int:
        """Wait for the container to stop and return its exit status."""
        raise NotImplementedError

    def remove(self, name: str) -> None:
        """Force-remove, running or not."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def update_memory(self, name: str, limit: int) -> Result:
        raise NotImplementedError

    def top_pids(self, name: str) -> list[int]:
        """Host pids the engine reports for the container."""
        raise NotImplementedError

    # -- shared --
    def wait_running(self, name: str, timeout: float = 20) -> int:
        """Wait until the engine says running; return the init pid."""
        wait_for(lambda: self.status(name) == "running", timeout, f"{self.name} container {name} running")
        return self.init_pid(name)

    def runtime_state(self, name: str) -> tuple[dict | None, Result]:  # type: ignore[type-arg]
        return runtime_state(self.ns, self.runtime, self.runtime_root(), self.runtime_id(name))

    def cleanup(self) -> None:
        for name in self.created:
            try:
                if self.exists(name):
                    self.remove(name)
            except Exception:  # noqa: BLE001 - teardown goes on; session cleanup is the backstop
                pass

    def calls_since_start(self) -> str | None:
        """Runtime calls recorded since this test started (None: tracing is off). Tests run one at a
        time, so these are this test's calls; ids of failed runs are gone by the time we look."""
        log = self.runtime.trace_log
        if log is None:
            return None
        with open(log, "rb") as f:
            f.seek(self.trace_start)
            return f.read().decode(errors="replace")

    def diagnostics(self) -> str:
        """What the failure report shows: this test's runtime calls."""
        calls = self.calls_since_start()
        return "(tracing off: PYRUNC_CLIENTS_TRACE=0)" if calls is None else calls[-20000:]


class CtrEngine(Engine):
    """containerd through ctr and the io.containerd.runc.v2 shim (--runc-binary)."""

    name = "containerd"
    create_failed_marker = "OCI runtime create failed"
    missing_binary_status = 1
    lacks = {"stop": "ctr has no stop command (kill covers SIGTERM and SIGKILL)",
             "update": "ctr 1.6 has no update command",
             "run_with": "ctr's run flags are not docker's (--with-ns, --mount)"}

    def __init__(self, cd: Containerd, image: str, workdir: Path) -> None:
        super().__init__(cd.ns, cd.runtime, image, workdir)
        self.cd = cd
        self._ids: dict[str, str] = {}
        self._exec_n = 0

    def _ctr_run(self, name: str, cmd: Sequence[str], *extra: str) -> list[str]:
        return self.cd.ctr_argv("run", *extra, *self.cd.run_flags(), self.image, name, *cmd)

    def run(self, name: str, cmd: Sequence[str], *, tty: bool = False, input: str | None = None,
            check: bool = False) -> Result:
        if tty:
            return run(in_tty(self._ctr_run(name, cmd, "--rm", "-t")), env=self.cd.env, check=check)
        return run(self._ctr_run(name, cmd, "--rm"), env=self.cd.env, check=check, input=input)

    def run_detached(self, name: str, cmd: Sequence[str]) -> None:
        run(self._ctr_run(name, cmd, "-d"), env=self.cd.env)

    def exec(self, name: str, cmd: Sequence[str], *, tty: bool = False) -> Result:
        self._exec_n += 1
        argv = self.cd.ctr_argv("tasks", "exec", *(["-t"] if tty else []), "--exec-id", f"exec{self._exec_n}",
                                "--fifo-dir", str(self.cd.fifo_dir), name, *cmd)
        return run(in_tty(argv) if tty else argv, env=self.cd.env, check=False)

    def status(self, name: str) -> str:
        task = self.cd.tasks().get(name)
        if task is None:
            return "stopped" if self.exists(name) else "missing"
        return task[1].lower()

    def init_pid(self, name: str) -> int:
        return self.cd.tasks()[name][0]

    def runtime_id(self, name: str) -> str:
        return name

    def runtime_root(self) -> Path:
        return self.cd.runtime_root / self.cd.namespace

    def pause(self, name: str) -> None:
        self.cd.ctr("tasks", "pause", name)

    def resume(self, name: str) -> None:
        self.cd.ctr("tasks", "resume", name)

    def kill(self, name: str, signal: str) -> None:
        self.cd.ctr("tasks", "kill", "-s", f"SIG{signal}", name)

    def stop(self, name: str, grace: int) -> Result:
        self.require("stop")
        raise AssertionError("unreachable")

    def wait_exit(self, name: str) -> int:
        wait_for(lambda: self.status(name) == "stopped", 20, f"task {name} to stop")
        return exit_code_from_ctr_delete(self.cd.ctr("tasks", "delete", name))

    def remove(self, name: str) -> None:
        if name in self.cd.tasks():
            self.cd.ctr("tasks", "delete", "-f", name)
        self.cd.ctr("containers", "delete", name)

    def exists(self, name: str) -> bool:
        return name in self.cd.ctr("containers", "ls", "-q").stdout.split()

    def update_memory(self, name: str, limit: int) -> Result:
        self.require("update")
        raise AssertionError("unreachable")

    def top_pids(self, name: str) -> list[int]:
        return [int(p) for p in parse_table_column(self.cd.ctr("tasks", "ps", name).stdout, "PID")]


class DockerEngine(Engine):
    """dockerd (on our containerd) through Debian's docker client, `--runtime pyrunc`."""

    name = "docker"
    create_failed_marker = "OCI runtime create failed"
    missing_binary_status = 127  # the docker CLI derives 127 from the runtime's message text

    def __init__(self, dk: Dockerd, image: str, workdir: Path) -> None:
        super().__init__(dk.ns, dk.runtime, image, workdir)
        self.dk = dk
        self._ids: dict[str, str] = {}

    def _run_argv(self, name: str, cmd: Sequence[str], *extra: str) -> list[str]:
        return self.dk.docker_argv("run", "--runtime", self.dk.runtime_name, "--network", "none",
                                   "--name", name, *extra, self.image, *cmd)

    def run(self, name: str, cmd: Sequence[str], *, tty: bool = False, input: str | None = None,
            check: bool = False) -> Result:
        if tty:
            return run(in_tty(self._run_argv(name, cmd, "--rm", "-it")), env=self.dk.env, check=check)
        extra = ["--rm", "-i"] if input is not None else ["--rm"]
        return run(self._run_argv(name, cmd, *extra), env=self.dk.env, check=check, input=input)

    def run_detached(self, name: str, cmd: Sequence[str]) -> None:
        run(self._run_argv(name, cmd, "-d"), env=self.dk.env)

    def run_with(self, name: str, cmd: Sequence[str], *flags: str) -> Result:
        return run(self._run_argv(name, cmd, "--rm", *flags), env=self.dk.env, check=False)

    def exec(self, name: str, cmd: Sequence[str], *, tty: bool = False) -> Result:
        if tty:
            return run(in_tty(self.dk.docker_argv("exec", "-it", name, *cmd)), env=self.dk.env, check=False)
        return self.dk.docker("exec", name, *cmd, check=False)

    def _inspect(self, name: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.dk.docker("inspect", "--type", "container", name).stdout)[0]  # type: ignore[no-any-return]

    def status(self, name: str) -> str:
        if not self.exists(name):
            return "missing"
        st = str(self._inspect(name)["State"]["Status"])
        return {"exited": "stopped", "dead": "stopped"}.get(st, st)

    def init_pid(self, name: str) -> int:
        return int(self._inspect(name)["State"]["Pid"])

    def runtime_id(self, name: str) -> str:
        if name not in self._ids:
            self._ids[name] = self._inspect(name)["Id"]
        return self._ids[name]

    def runtime_root(self) -> Path:
        return self.dk.runtime_root

    def pause(self, name: str) -> None:
        self.dk.docker("pause", name)

    def resume(self, name: str) -> None:
        self.dk.docker("unpause", name)

    def kill(self, name: str, signal: str) -> None:
        self.dk.docker("kill", "--signal", signal, name)

    def stop(self, name: str, grace: int) -> Result:
        return self.dk.docker("stop", "-t", str(grace), name)

    def wait_exit(self, name: str) -> int:
        return int(self.dk.docker("wait", name).stdout.strip())

    def remove(self, name: str) -> None:
        self.dk.docker("rm", "-f", name)

    def exists(self, name: str) -> bool:
        res = self.dk.docker("ps", "-aq", "--no-trunc", "--filter", f"name=^/{name}$")
        return bool(res.stdout.strip())

    def update_memory(self, name: str, limit: int) -> Result:
        # --memory-swap too: docker refuses a memory limit above an existing swap limit.
        return self.dk.docker("update", "--memory", str(limit), "--memory-swap", str(2 * limit), name)

    def top_pids(self, name: str) -> list[int]:
        return [int(p) for p in parse_table_column(self.dk.docker("top", name).stdout, "PID")]


class PodmanEngine(Engine):
    """podman + conmon with `--runtime PATH`, every call inside the namespace."""

    name = "podman"
    # podman's own text when the runtime's message says the command was not found
    create_failed_marker = "OCI runtime attempted to invoke a command that was not found"
    missing_binary_status = 127  # podman derives 127 from the runtime's message text

    def __init__(self, pm: Podman, image: str, workdir: Path) -> None:
        super().__init__(pm.ns, pm.runtime, image, workdir)
        self.pm = pm
        self._ids: dict[str, str] = {}

    def _run_argv(self, name: str, cmd: Sequence[str], *extra: str) -> list[str]:
        return self.pm.podman_argv("run", "--cgroup-parent", self.pm.cgroup_parent, "--name", name,
                                   *extra, self.image, *cmd)

    def run(self, name: str, cmd: Sequence[str], *, tty: bool = False, input: str | None = None,
            check: bool = False) -> Result:
        if tty:
            return run(in_tty(self._run_argv(name, cmd, "--rm", "-it")), env=self.pm.env, check=check)
        extra = ["--rm", "-i"] if input is not None else ["--rm"]
        return run(self._run_argv(name, cmd, *extra), env=self.pm.env, check=check, input=input)

    def run_detached(self, name: str, cmd: Sequence[str]) -> None:
        run(self._run_argv(name, cmd, "-d"), env=self.pm.env)

    def run_with(self, name: str, cmd: Sequence[str], *flags: str) -> Result:
        return run(self._run_argv(name, cmd, "--rm", *flags), env=self.pm.env, check=False)

    def exec(self, name: str, cmd: Sequence[str], *, tty: bool = False) -> Result:
        if tty:
            return run(in_tty(self.pm.podman_argv("exec", "-it", name, *cmd)), env=self.pm.env, check=False)
        return self.pm.podman("exec", name, *cmd, check=False)

    def _inspect(self, name: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.pm.podman("inspect", "--type", "container", name).stdout)[0]  # type: ignore[no-any-return]

    def status(self, name: str) -> str:
        if not self.exists(name):
            return "missing"
        st = str(self._inspect(name)["State"]["Status"])
        return {"exited": "stopped", "configured": "created"}.get(st, st)

    def init_pid(self, name: str) -> int:
        return int(self._inspect(name)["State"]["Pid"])

    def runtime_id(self, name: str) -> str:
        if name not in self._ids:
            self._ids[name] = self._inspect(name)["Id"]
        return self._ids[name]

    def runtime_root(self) -> None:
        return None

    def pause(self, name: str) -> None:
        self.pm.podman("pause", name)

    def resume(self, name: str) -> None:
        self.pm.podman("unpause", name)

    def kill(self, name: str, signal: str) -> None:
        self.pm.podman("kill", "--signal", signal, name)

    def stop(self, name: str, grace: int) -> Result:
        return self.pm.podman("stop", "-t", str(grace), name)

    def wait_exit(self, name: str) -> int:
        return int(self.pm.podman("wait", name).stdout.strip())

    def remove(self, name: str) -> None:
        self.pm.podman("rm", "-f", "-t", "0", name)

    def exists(self, name: str) -> bool:
        return self.pm.podman("container", "exists", name, check=False).returncode == 0

    def update_memory(self, name: str, limit: int) -> Result:
        return self.pm.podman("update", "--memory", str(limit), name)

    def top_pids(self, name: str) -> list[int]:
        # Default descriptors show pids inside the container; `hpid` gives host pids.
        return [int(p) for p in parse_table_column(self.pm.podman("top", name, "hpid", "args").stdout, "HPID")]
