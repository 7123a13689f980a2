"""cffi build script for pyrunc._native: compiles csrc/*.c into a private extension."""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "native.h").read_text().split("#define PYRUNC_NATIVE_H", 1)[1].rsplit("#endif", 1)[0])
ffibuilder.set_source(
    "pyrunc._native",
    '#include "native.h"',
    sources=[str(p.relative_to(HERE.parent)) for p in sorted(HERE.glob("*.c"))],
    include_dirs=[str(HERE)],
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror"],
)
