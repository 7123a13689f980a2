"""Build glue that pyproject.toml cannot express: the cffi extension and the schemas.

The runtime-spec schemas live at the top of the repository (schemas/); they are
copied into the package at build time so the installed runtime can find them.
"""

import shutil
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


setup(
    cffi_modules=["csrc/build_native.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithSchemas},
)
