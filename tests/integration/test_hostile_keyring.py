"""The session keyring of whoever runs the runtime must not reach the container.

Keys are found and used through the keyrings a process possesses, and the session keyring is
inherited across fork and exec: a container that kept the caller's could read the caller's
keys (issue 15, item 6). Like runc, each container gets a new session keyring `_ses.<id>`,
unless `--no-new-keyring`. The caller here is a wrapper that first makes a session keyring of
its own (so the test never touches the keyrings of the session running the tests) and adds a
key that only a possessor may view or read (its perms are possessor-only): the container's
/proc/keys lists it exactly when the container still possesses it.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from .conftest import Sandbox
from .helpers import CMD_TIMEOUT, Bundle, Runtime
from .test_userns import HOST, USERNS, _chown_tree

# Runs as the runtime's caller: a new anonymous session keyring, a possessor-only key in it,
# then exec of the runtime (argv[2:]). keyctl(2) by number (x86_64 and aarch64 differ).
_WRAPPER = r"""
import ctypes, os, platform, sys
nr = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def check(rc):
    if rc < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return rc
check(libc.syscall(nr[1], ctypes.c_long(1), ctypes.c_void_p(None)))  # JOIN_SESSION_KEYRING
secret = sys.argv[1].encode()
key = check(libc.syscall(nr[0], b"user", secret, b"secret", ctypes.c_size_t(6),
                         ctypes.c_long(-3)))  # add_key(..., KEY_SPEC_SESSION_KEYRING)
check(libc.syscall(nr[1], ctypes.c_long(5), ctypes.c_long(key),
                   ctypes.c_ulong(0x3F000000)))  # SETPERM: possessor only
os.execv(sys.argv[2], sys.argv[2:])
"""


def _with_a_key(rt: Runtime, *args: str) -> tuple[str, str]:
    """Run a runtime command from a caller whose session keyring holds a fresh key; returns
    the key's description and the command's stdout."""
    desc = f"pyrunc-test-{uuid.uuid4().hex[:12]}"
    argv = rt.argv(*args)
    res = subprocess.run([sys.executable, "-c", _WRAPPER, desc, *argv], env=rt._env(),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=CMD_TIMEOUT)
    assert res.returncode == 0, f"{args[0]} exited {res.returncode}: {res.stderr!r}"
    return desc, res.stdout


def _run_with_a_key(rt: Runtime, b: Bundle, cid: str, *flags: str) -> tuple[str, str]:
    return _with_a_key(rt, "run", "--bundle", str(b.path), *flags, cid)


def _keys_bundle(sandbox: Sandbox, **overrides: object) -> Bundle:
    # /proc/keys is masked by the default spec; it is what this test reads.
    linux = {"maskedPaths": [], **overrides.pop("linux", {})}  # type: ignore[dict-item]
    return sandbox.bundle(["cat", "/proc/keys"], linux=linux, **overrides)


def test_caller_session_keyring_is_not_inherited(sandbox: Sandbox, rt: Runtime) -> None:
    """The caller's key is neither listed nor readable inside; the container possesses its
    own `_ses.<id>` keyring instead."""
    cid = sandbox.new_id()
    desc, out = _run_with_a_key(rt, _keys_bundle(sandbox), cid)
    assert desc not in out, f"the container possesses the caller's session keyring:\n{out}"
    assert f"_ses.{cid}:" in out, f"no _ses.{cid} keyring inside:\n{out}"


def test_no_new_keyring_keeps_the_caller_session_keyring(sandbox: Sandbox, rt: Runtime) -> None:
    """--no-new-keyring: the container keeps the caller's session keyring (and so the key),
    as with runc; the control that shows the key is visible when possessed."""
    cid = sandbox.new_id()
    desc, out = _run_with_a_key(rt, _keys_bundle(sandbox), cid, "--no-new-keyring")
    assert desc in out, f"the caller's key should be visible with --no-new-keyring:\n{out}"
    assert f"_ses.{cid}" not in out, out


@pytest.mark.parametrize("no_new_keyring", [False, True])
def test_exec_gets_the_container_keyring(sandbox: Sandbox, rt: Runtime,
                                         no_new_keyring: bool) -> None:
    """An exec'd process joins the container's `_ses.<id>` (nothing new, as runc), never
    the keyring of whoever ran `exec`; with a container created --no-new-keyring it keeps
    the caller's, as runc."""
    b = _keys_bundle(sandbox)
    b.config["process"]["args"] = ["sleep", "30"]
    b.write()
    cid = sandbox.new_id()
    rt.create(b, cid, *(["--no-new-keyring"] if no_new_keyring else []),
              out_dir=sandbox.tmp / "out")
    rt.run_cmd("start", cid, check=True)
    desc, out = _with_a_key(rt, "exec", cid, "cat", "/proc/keys")
    if no_new_keyring:
        assert desc in out, out
        assert f"_ses.{cid}:" not in out, out
    else:
        assert desc not in out, f"the exec'd process possesses the caller's keyring:\n{out}"
        assert f"_ses.{cid}:" in out, out


@pytest.mark.pyrunc_only  # runc's keyring perms in a user namespace are the same; the uid differs
def test_session_keyring_in_a_user_namespace(sandbox: Sandbox, rt: Runtime) -> None:
    """In a user namespace the keyring is the container's root's (its owner is the mapped
    root on the host) and searchable by any of the container's users, as runc makes it; a
    non-root process of the container still possesses it."""
    b = _keys_bundle(sandbox, linux={**USERNS, "maskedPaths": []},
                     process={"user": {"uid": 1000, "gid": 1000}})
    _chown_tree(b.rootfs, HOST, HOST)
    cid = sandbox.new_id()
    desc, out = _run_with_a_key(rt, b, cid)
    assert desc not in out, out
    line = next((ln for ln in out.splitlines() if f"_ses.{cid}:" in ln), "")
    assert line, f"no _ses.{cid} keyring inside:\n{out}"
    fields = line.split()
    perm, uid = int(fields[4], 16), fields[5]
    assert perm & 0x08, f"the keyring is not searchable by others: {line}"
    assert uid == "0", f"the keyring is not the container root's: {line}"
