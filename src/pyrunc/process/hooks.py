"""OCI hooks: run with the container state on stdin, in order, each with its timeout.

Who runs which hook, and where, follows the runtime-spec: prestart and
createRuntime by the runtime after the namespaces exist (before pivot_root),
createContainer by the init in the container's namespaces before pivot_root,
startContainer by the init just before exec, poststart by `start`, poststop by
`delete`. A failure of the first four fails the operation; of the last two,
it is a warning.
"""

from __future__ import annotations

import os

from pyrunc import jsonio
from pyrunc.errors import PyruncError
from pyrunc.linux import syscalls as sc
from pyrunc.process import trampoline
from pyrunc.spec.config import Hook

TYPE_CHECKING = False  # typing is for the type checker: its import costs every create
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence


def state_json(state: dict[str, Any], status: str) -> str:
    return jsonio.dumps({**state, "status": status})


def run(phase: str, hooks: Sequence[Hook], state: str, *, first_index: int = 0,
        trampoline_fd: int = -1, cwd: str | None = None) -> None:
    """Run the hooks in order, in `cwd` if given; the first failure raises (naming the hook
    by its index).

    Hooks run inside the container (createContainer, startContainer) are exec'd through
    the sealed pyrunc-init `trampoline_fd`, as the container's own process is: their path
    is the image's, and exec'd straight from here /proc/self/exe would be the interpreter."""
    if not hooks:
        return
    import subprocess  # ~7 ms, and most containers have no hooks
    for i, hook in enumerate(hooks, first_index):
        argv = list(hook.args) or [hook.path]
        env = dict(e.partition("=")[::2] for e in hook.env)
        through = None
        if trampoline_fd >= 0:
            through = _through_trampoline(trampoline_fd, hook.path, argv, env)
        try:
            res = _run_one(subprocess, argv, hook, state, env, through, cwd)
        except subprocess.TimeoutExpired:
            raise PyruncError(f"{phase} hook #{i} ({hook.path}) timed out after {hook.timeout}s") from None
        except OSError as exc:
            raise PyruncError(f"{phase} hook #{i} ({hook.path}): {exc.strerror}", exc.errno) from None
        except subprocess.SubprocessError:  # pyrunc-init itself could not be exec'd
            raise PyruncError(f"{phase} hook #{i} ({hook.path}): cannot exec {trampoline.NAME}") from None
        if res.returncode != 0:
            detail = (res.stderr or res.stdout).decode(errors="replace").strip().splitlines()
            tail = f": {detail[-1]}" if detail else ""
            # runc's words ("error running ... hook #N: signal: bad system call" for a hook
            # that seccomp killed), which its callers match.
            raise PyruncError(f"error running {phase} hook #{i} ({hook.path}): "
                              f"{_how_it_ended(res.returncode)}{tail}")


def _how_it_ended(returncode: int) -> str:
    """Go's words for a failed child, as runc prints them: "exit status 2", "signal: killed"."""
    if returncode > 0:
        return f"exit status {returncode}"
    import signal  # an error path: its enums cost nothing here
    try:
        name = signal.strsignal(-returncode)
    except ValueError:
        name = None
    return f"signal: {(name or f'signal {-returncode}').lower()}"


def _run_one(subprocess: Any, argv: list[str], hook: Hook, state: str, env: dict[str, str],
             through: Callable[[], None] | None, cwd: str | None) -> Any:
    """One hook, in a process group of its own: when it times out or the runtime is
    interrupted (a SIGTERM to create), the whole group is killed, not the hook alone, so
    nothing it started (`sh -c 'sleep 100'`) outlives the failed create."""
    import _signal  # `signal` without its enums (see pyrunc/cli/signals.py)
    proc = subprocess.Popen(argv, executable=hook.path, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            close_fds=True, preexec_fn=through, cwd=cwd, start_new_session=True)
    try:
        out, err = _communicate(subprocess, proc, state.encode(), hook.timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, _signal.SIGKILL)
        except OSError:
            pass  # the group is gone already
        proc.kill()
        proc.wait()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# poll(2), under communicate(), takes its timeout in milliseconds as a C int: 24.8 days.
POLL_MAX_SECONDS = (2**31 - 1) // 1000


def _communicate(subprocess: Any, proc: Any, data: bytes | None,
                 timeout: int | None) -> tuple[bytes, bytes]:
    """proc.communicate with any timeout the spec allows (a positive integer; runc's is a Go
    int): one longer than poll() can take is waited in pieces ("timeout is too large" was an
    internal error from 2147484 s up; the schema let through 2**31-1)."""
    if timeout is None or timeout <= POLL_MAX_SECONDS:
        out, err = proc.communicate(data, timeout=timeout)
        return out, err
    import time
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            out, err = proc.communicate(data, timeout=max(0.0, min(left, POLL_MAX_SECONDS)))
            return out, err
        except subprocess.TimeoutExpired:
            if left <= POLL_MAX_SECONDS:
                raise
            data = None  # sent already: communicate refuses input once it has started


def _through_trampoline(fd: int, path: str, argv: list[str],
                        env: dict[str, str]) -> Callable[[], None]:
    """A preexec_fn that replaces subprocess's own exec (its stdio pipes are in place by
    then, its closing of other fds is not: every fd past stdio is marked close-on-exec)."""
    def become_hook() -> None:
        sc.close_range(3, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
        trampoline.execute(fd, trampoline.argv(path, argv), env)
    return become_hook


def to_records(hooks: Sequence[Hook]) -> list[dict[str, Any]]:
    return [h._asdict() for h in hooks]


def from_records(raw: Sequence[dict[str, Any]]) -> tuple[Hook, ...]:
    return tuple(Hook(r["path"], tuple(r.get("args") or ()), tuple(r.get("env") or ()),
                      r.get("timeout")) for r in raw)
