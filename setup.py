"""Build glue that pyproject.toml cannot express: the cffi extension, the schemas and the
trampoline.

The runtime-spec schemas live at the top of the repository (schemas/); they are
copied into the package at build time so the installed runtime can find them.
The trampoline (csrc/freestanding/trampoline.c) is a freestanding static program, not part
of the extension: the container's processes exec it from a sealed memfd (see its source).
(The launcher beside it is built by scripts/setup.sh, which knows the install paths.)
"""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "pyrunc" / "schemas"
        target.mkdir(parents=True, exist_ok=True)
        for schema in (ROOT / "schemas").glob("*.json"):
            shutil.copy2(schema, target / schema.name)
        build_trampoline(Path(self.build_lib) / "pyrunc" / "pyrunc-init")


def build_trampoline(out: Path) -> None:
    here = ROOT / "csrc" / "freestanding"
    cc = shlex.split(os.environ.get("CC", "cc"))
    flags = (here / "cflags").read_text().split()
    subprocess.run([*cc, *flags, "-o", str(out), str(here / "trampoline.c")], check=True)
    out.chmod(0o755)


setup(
    cffi_modules=["csrc/build_native.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithSchemas},
)
